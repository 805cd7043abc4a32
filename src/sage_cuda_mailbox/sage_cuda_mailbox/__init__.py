"""Shared-memory mailbox for frames and tensors: the fast path beside DDS.

Two mailbox kinds live in named POSIX shared-memory segments (mode 0600):

* PBM, peripheral broadcast mailbox: fixed-size records, many producers, many consumers each
  with its own cursor; when full it rejects (``'reject'``) or overwrites the oldest record
  (``'overwrite'``, torn reads detected and discarded).
* FTM, focus tensor mailbox: slots holding a tensor or frame with its metadata, read in place
  under a lease (numpy buffer protocol and DLPack, so ``torch.from_dlpack`` shares the memory).

``FrameWriter``/``FrameReader`` are what the camera and the vision encoder call. The compiled
core is the private module ``_mailbox``; this package is its typed facade.
"""
from __future__ import annotations

from typing import Literal

try:
    from sage_cuda_mailbox import _mailbox  # noqa: F401 - fail early with a build hint
except ImportError as err:  # pragma: no cover - depends on the build
    raise ImportError(
        'sage_cuda_mailbox._mailbox is not built: run '
        'src/sage_cuda_mailbox/scripts/build.sh <venv>') from err

from sage_cuda_mailbox._mailbox import (  # noqa: E402
    Ftm,
    FtmLoan,
    FtmReader,
    FtmWriter,
    LAYOUT_VERSION,
    MAX_CONSUMERS,
    MAX_PRODUCERS,
    Pbm,
    PbmConsumer,
    PbmLoan,
    PbmProducer,
    TensorView,
    cuda_available,
    cuda_device_code_built,
    cuda_unavailable_reason,
    exists,
    unlink,
)
from sage_cuda_mailbox.errors import (  # noqa: E402
    BadInput,
    CudaUnavailable,
    MailboxBusy,
    MailboxError,
    SegmentError,
    StaleFrame,
    UsedAfterFork,
    WriteAbandoned,
)
from sage_cuda_mailbox.frames import (  # noqa: E402
    ENCODINGS,
    FrameDescriptor,
    FrameReader,
    FrameWriter,
)

Policy = Literal['reject', 'overwrite']
OpenMode = Literal['create', 'create_or_attach', 'replace']


def create_pbm(name: str, record_size: int, capacity: int = 1024, policy: Policy = 'reject',
               mode: OpenMode = 'create') -> Pbm:
    """Create a PBM segment.

    Args:
        name: segment name (letters, digits, '_', '-', '.').
        record_size: bytes of one record.
        capacity: slots, a power of two.
        policy: 'reject' (push returns False when full) or 'overwrite' (oldest is replaced).
        mode: 'create' (fail if it exists), 'create_or_attach' (attach if the geometry
            matches), 'replace' (retire and recreate).

    Raises:
        BadInput: bad sizes, policy or name.
        SegmentError: exists already, or exists with another geometry.
    """
    return Pbm.create(name, record_size, capacity, policy, mode)


def attach_pbm(name: str, ready_timeout_s: float = 1.0) -> Pbm:
    """Attach to an existing PBM segment (its header is validated).

    Raises:
        SegmentError: missing, not a PBM, corrupt or never initialised.
    """
    return Pbm.attach(name, int(ready_timeout_s * 1000))


def create_ftm(name: str, slots: int, max_bytes: int, mode: OpenMode = 'create') -> Ftm:
    """Create an FTM segment of `slots` slots of `max_bytes` each.

    Raises:
        BadInput: bad sizes or name.
        SegmentError: exists already, or exists with another geometry.
    """
    return Ftm.create(name, slots, max_bytes, mode)


def attach_ftm(name: str, ready_timeout_s: float = 1.0) -> Ftm:
    """Attach to an existing FTM segment.

    Raises:
        SegmentError: missing, not an FTM, corrupt or never initialised.
    """
    return Ftm.attach(name, int(ready_timeout_s * 1000))


__all__ = [
    'BadInput', 'CudaUnavailable', 'ENCODINGS', 'FrameDescriptor', 'FrameReader', 'FrameWriter',
    'Ftm', 'FtmLoan', 'FtmReader', 'FtmWriter', 'LAYOUT_VERSION', 'MAX_CONSUMERS',
    'MAX_PRODUCERS', 'MailboxBusy', 'MailboxError', 'OpenMode', 'Pbm', 'PbmConsumer', 'PbmLoan',
    'PbmProducer', 'Policy', 'SegmentError', 'StaleFrame', 'TensorView', 'UsedAfterFork',
    'WriteAbandoned', 'attach_ftm', 'attach_pbm', 'create_ftm', 'create_pbm', 'cuda_available',
    'cuda_device_code_built', 'cuda_unavailable_reason', 'exists', 'unlink',
]
