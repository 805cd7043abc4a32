"""Domain errors of the evaluation tooling."""
from sage_common.errors import SageError


class ReplayError(SageError):
    """A bag cannot be replayed (missing file, unreadable topic, missing encoder)."""


class ScenarioError(SageError):
    """A scenario cannot be generated or scored (missing tool, bad labels)."""
