"""Errors of the mailbox. The compiled core raises these classes too (by error code)."""
from __future__ import annotations

from sage_common.errors import SageError


class MailboxError(SageError):
    """Base of every mailbox error.

    Attributes:
        code: the core's error code, e.g. ``'stale'``, ``'layout_mismatch'``.
    """

    default_code = 'mailbox'

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.default_code


class SegmentError(MailboxError):
    """A segment cannot be created or attached: missing, mismatched, corrupt, not ready."""

    default_code = 'segment'


class BadInput(MailboxError, ValueError):
    """A size, dtype, shape, encoding, option or descriptor is refused."""

    default_code = 'invalid_argument'


class StaleFrame(MailboxError):
    """The slot no longer holds the described frame (the writer moved on)."""

    default_code = 'stale'


class MailboxBusy(MailboxError):
    """Every slot is leased or being written; nothing blocks, try again later."""

    default_code = 'busy'


class WriteAbandoned(MailboxError):
    """A write was taken over because its writer looked dead; the data was dropped."""

    default_code = 'abandoned'


class UsedAfterFork(MailboxError):
    """A handle made before fork() was used in the child: make a new one there."""

    default_code = 'used_after_fork'


class CudaUnavailable(MailboxError):
    """No CUDA runtime or device (the CPU path keeps working), or a CUDA call failed."""

    default_code = 'cuda_unavailable'


_BY_CODE: dict[str, type[MailboxError]] = {
    'invalid_argument': BadInput,
    'wrong_size': BadInput,
    'wrong_type': BadInput,
    'bad_descriptor': BadInput,
    'not_found': SegmentError,
    'already_exists': SegmentError,
    'layout_mismatch': SegmentError,
    'corrupt': SegmentError,
    'not_ready': SegmentError,
    'retired': SegmentError,
    'too_many_participants': SegmentError,
    'system': SegmentError,
    'stale': StaleFrame,
    'busy': MailboxBusy,
    'abandoned': WriteAbandoned,
    'used_after_fork': UsedAfterFork,
    'cuda_unavailable': CudaUnavailable,
    'cuda': CudaUnavailable,
}


def error_class(code: str) -> type[MailboxError]:
    """The exception class for a core error code (MailboxError for unknown codes)."""
    return _BY_CODE.get(code, MailboxError)
