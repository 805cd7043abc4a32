"""Bring-up: profiles, the environment a graph runs in, node groups, composition, the supervisor,
`sage launch`, the launch description, and the systemd service."""
