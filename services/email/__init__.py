"""The email service: order confirmations, queued, rendered (Jinja2) and sent to an outbox."""
