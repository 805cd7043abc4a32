"""sage."""
