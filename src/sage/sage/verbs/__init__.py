"""One module per `sage` verb (sage.cli registers them)."""
