"""Domain errors of the SNARC package."""
from sage_common.errors import SageError


class SnarcError(SageError):
    """Bad SNARC configuration or state (e.g. a checkpoint that does not match the params)."""


class ReplayError(SageError):
    """A bag cannot be replayed (missing file, unreadable topic, missing encoder)."""


class ScenarioError(SageError):
    """A scenario cannot be generated or scored (missing tool, bad labels)."""
