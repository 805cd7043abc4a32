"""Domain errors shared by every SAGE package."""


class SageError(Exception):
    """Base of every SAGE domain error; shells catch it at the callback boundary."""


class ParamError(SageError):
    """A parameter value is invalid (the message names the parameter)."""
