"""sage_sensors."""
