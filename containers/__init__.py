"""Running the shop under docker compose on a machine without a container registry.

- ``daemon``: a Docker daemon of our own (state under ``.cache/dockerd/`` or a temporary
  directory, no iptables, no IP forwarding, no default bridge, stopped by PID) and the compose
  stack running on it (``Stack.find()`` finds it again from another process).
- ``images``: the images built offline: a Debian base image from mmdebstrap, a wheelhouse built
  on the host, and the project's one image built from them.
- ``python -m containers up|down|status``: what ``make compose-up`` / ``make compose-down`` run.
"""
