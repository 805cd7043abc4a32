"""Domain errors of the encoders package."""
from sage_common.errors import SageError


class EncoderError(SageError):
    """An encoder cannot run (missing model file, bad configuration, runtime failure)."""


class InputError(EncoderError):
    """One input is malformed (bad encoding, size or sample rate); the input is skipped."""


class ModelError(EncoderError):
    """A model file is missing, has the wrong shapes, or cannot be loaded."""
