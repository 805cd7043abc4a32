"""sage_encoders."""
