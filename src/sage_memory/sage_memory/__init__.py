"""sage_memory."""
