"""Domain errors of the SNARC package."""
from sage_common.errors import SageError


class SnarcError(SageError):
    """Bad SNARC configuration or state (e.g. a checkpoint that does not match the params)."""

