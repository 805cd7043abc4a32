"""Domain errors of the orchestrator package."""
from sage_common.errors import SageError


class OrchestratorError(SageError):
    """Bad orchestrator configuration (plugin list, state effects, remote targets)."""


class BadInputError(OrchestratorError):
    """One input (plugin report, salience, reward) is malformed; it is rejected and counted."""


class PressureReadError(OrchestratorError):
    """A /proc or cgroup file is missing or does not parse; the reading is skipped."""


class PersistError(OrchestratorError):
    """Orchestrator state cannot be saved or loaded (unwritable dir, corrupt file)."""
