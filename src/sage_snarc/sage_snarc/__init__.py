"""sage_snarc."""
