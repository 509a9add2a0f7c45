"""The gateway: the public REST API under ``/api``, sign-up, login and sessions."""
