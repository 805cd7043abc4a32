"""Frames through a focus tensor mailbox (FTM): the API the camera and the encoder call.

The camera writes each frame once into shared memory and publishes a small descriptor
(``sage_interfaces/FrameRef``) on DDS; the encoder reads the frame in place::

    writer = FrameWriter('sage_frames', slots=4, max_bytes=1280 * 720 * 3)
    desc = writer.write(frame, stamp)              # frame: (H, W, 3) uint8, 'rgb8'
    ref = FrameRef(segment=desc.segment, slot=desc.slot, sequence=desc.sequence, ...)

    reader = FrameReader('sage_frames')
    image = reader.read(ref.slot, ref.sequence)     # read-only np.ndarray view, no copy

A view is guaranteed stable while it is alive and its lease (``lease_ms``, default 1 s) has not
expired: the writer skips leased slots. Copy a frame you keep longer (``read_copy``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sage_cuda_mailbox import _mailbox
from sage_cuda_mailbox.errors import BadInput, SegmentError

# Frame encodings the mailbox accepts: channels and element type (as sensor_msgs/Image).
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    'rgb8': (3, np.dtype(np.uint8)),
    'bgr8': (3, np.dtype(np.uint8)),
    'rgba8': (4, np.dtype(np.uint8)),
    'bgra8': (4, np.dtype(np.uint8)),
    'mono8': (1, np.dtype(np.uint8)),
    'mono16': (1, np.dtype(np.uint16)),
    '8UC1': (1, np.dtype(np.uint8)),
    '8UC3': (3, np.dtype(np.uint8)),
    '8UC4': (4, np.dtype(np.uint8)),
    '16UC1': (1, np.dtype(np.uint16)),
    '32FC1': (1, np.dtype(np.float32)),
}


@dataclass(frozen=True)
class FrameDescriptor:
    """Where a written frame lives; the fields of a ``sage_interfaces/FrameRef`` and more."""

    segment: str
    slot: int
    sequence: int
    width: int
    height: int
    step: int
    encoding: str
    stamp: float
    shape: tuple[int, ...]
    dtype: str


class FrameRefLike(Protocol):
    """Anything shaped like ``sage_interfaces/FrameRef`` (the message or a FrameDescriptor)."""

    segment: str
    slot: int
    sequence: int
    width: int
    height: int
    encoding: str


def segment_key(name: str) -> str:
    """A segment name without its optional leading slash (how descriptors carry it)."""
    return name[1:] if name.startswith('/') else name


def frame_shape(encoding: str, height: int, width: int) -> tuple[int, ...]:
    """Array shape of a frame of this encoding and size.

    Raises:
        BadInput: unknown encoding.
    """
    if encoding not in ENCODINGS:
        raise BadInput(f"unsupported frame encoding '{encoding}' "
                       f"(one of: {', '.join(ENCODINGS)})", 'wrong_type')
    channels = ENCODINGS[encoding][0]
    return (height, width) if channels == 1 else (height, width, channels)


def check_frame(frame: object, encoding: str) -> np.ndarray:
    """Check that `frame` is an image of `encoding` and return it C-contiguous.

    Raises:
        BadInput: not an ndarray, or a shape or dtype that does not match the encoding.
    """
    if not isinstance(frame, np.ndarray):
        raise BadInput(f'a frame must be a numpy array, got {type(frame).__name__}', 'wrong_type')
    if encoding not in ENCODINGS:
        raise BadInput(f"unsupported frame encoding '{encoding}' "
                       f"(one of: {', '.join(ENCODINGS)})", 'wrong_type')
    channels, dtype = ENCODINGS[encoding]
    shape_ok = (frame.ndim == 3 and frame.shape[2] == channels) or (
        frame.ndim == 2 and channels == 1)
    if not shape_ok or frame.dtype != dtype:
        want = '(height, width)' if channels == 1 else f'(height, width, {channels})'
        raise BadInput(f'a {encoding} frame must be {want} {dtype}, '
                       f'got {frame.shape} {frame.dtype}', 'wrong_type')
    return frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)


class FrameWriter:
    """Writes frames into an FTM segment (creating it, or reusing a compatible one).

    Args:
        segment_name: shared-memory name from the profile (letters, digits, '_', '-', '.').
        slots: frames held at once (readers lease them; 4 covers a 30 Hz camera and one
            encoder comfortably).
        max_bytes: bytes of the largest frame (1280 * 720 * 3 for 720p rgb8).
        encoding: default encoding of written frames.
        replace_mismatched: replace an existing segment of another geometry (a restart with a
            new resolution) instead of failing; its readers re-attach by name.
        unlink_on_close: remove the segment name on close().

    Raises:
        BadInput: bad name, slots or max_bytes.
        SegmentError: the segment cannot be created (or is mismatched and not replaced).
    """

    def __init__(self, segment_name: str, slots: int = 4, max_bytes: int = 1280 * 720 * 3, *,
                 encoding: str = 'rgb8', replace_mismatched: bool = True,
                 unlink_on_close: bool = True) -> None:
        if encoding not in ENCODINGS:
            raise BadInput(f"unsupported frame encoding '{encoding}'", 'wrong_type')
        try:
            self._ftm = _mailbox.Ftm.create(segment_name, slots, max_bytes, 'create_or_attach')
        except SegmentError as err:
            if not replace_mismatched or err.code not in ('layout_mismatch', 'corrupt',
                                                          'not_ready'):
                raise
            self._ftm = _mailbox.Ftm.create(segment_name, slots, max_bytes, 'replace')
        self._writer: _mailbox.FtmWriter | None = self._ftm.writer()
        self._segment = segment_key(segment_name)
        self._encoding = encoding
        self._unlink_on_close = unlink_on_close

    @property
    def segment(self) -> str:
        """Segment name as descriptors carry it."""
        return self._segment

    @property
    def slots(self) -> int:
        return self._ftm.slots

    @property
    def max_bytes(self) -> int:
        return self._ftm.max_bytes

    def write(self, frame: np.ndarray, stamp: float,
              encoding: str | None = None) -> FrameDescriptor:
        """Copy `frame` into a free slot (one copy, into shared memory) and describe it.

        Args:
            frame: (H, W, C) or (H, W) array matching `encoding`.
            stamp: capture time in seconds (propagated to readers).
            encoding: overrides the writer's default encoding.

        Returns:
            The descriptor to publish (e.g. as a FrameRef).

        Raises:
            BadInput: wrong shape, dtype or encoding, or larger than max_bytes.
            MailboxBusy: every slot is leased by readers (nothing blocks; drop the frame).
        """
        if self._writer is None:
            raise BadInput('the FrameWriter is closed')
        enc = encoding or self._encoding
        frame = check_frame(frame, enc)
        if frame.nbytes > self._ftm.max_bytes:
            raise BadInput(f'a {frame.shape} {enc} frame needs {frame.nbytes} bytes, segment '
                           f'{self._segment} holds at most {self._ftm.max_bytes}', 'wrong_size')
        slot, sequence = self._writer.write(frame, float(stamp), enc)
        height, width = int(frame.shape[0]), int(frame.shape[1])
        return FrameDescriptor(segment=self._segment, slot=slot, sequence=sequence, width=width,
                               height=height, step=int(frame.strides[0]), encoding=enc,
                               stamp=float(stamp), shape=tuple(int(d) for d in frame.shape),
                               dtype=str(frame.dtype))

    def close(self) -> None:
        """Stop writing; with unlink_on_close, retire and remove the segment name."""
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if self._unlink_on_close:
            self._ftm.retire()
            _mailbox.unlink(self._segment)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameReader:
    """Reads frames of an FTM segment in place.

    Args:
        segment_name: the writer's segment name.
        lease_ms: how long a returned view is guaranteed stable (the writer skips it).

    Raises:
        SegmentError: no such segment (start the writer first), or it is not an FTM.
    """

    def __init__(self, segment_name: str, *, lease_ms: int = 1000) -> None:
        if lease_ms <= 0 or lease_ms > 60000:
            raise BadInput(f'lease_ms must be 1..60000, got {lease_ms}')
        self._reader: _mailbox.FtmReader | None = _mailbox.FtmReader(segment_name)
        self._segment = segment_key(segment_name)
        self._lease_ms = int(lease_ms)

    @property
    def segment(self) -> str:
        return self._segment

    def _get(self) -> _mailbox.FtmReader:
        if self._reader is None:
            raise BadInput('the FrameReader is closed')
        return self._reader

    def read_view(self, slot: int, sequence: int) -> _mailbox.TensorView:
        """Lease frame `(slot, sequence)` and return the view object (buffer + DLPack).

        ``torch.from_dlpack(view)`` and ``np.asarray(view)`` share its memory; the lease
        lasts while the view (or anything made from it) is alive, up to lease_ms.

        Raises:
            StaleFrame: the slot moved on (the descriptor is too old).
            BadInput: slot out of range or sequence 0.
            MailboxBusy: every lease entry of the slot is taken.
        """
        return self._get().acquire(int(slot), int(sequence), self._lease_ms)

    def read(self, slot: int, sequence: int, *, expect_shape: tuple[int, ...] | None = None,
             expect_dtype: str | np.dtype | None = None) -> np.ndarray:
        """Return frame `(slot, sequence)` as a read-only ndarray view (no copy).

        Raises:
            StaleFrame: the slot moved on.
            BadInput: bad descriptor, or the frame does not have the expected shape/dtype.
        """
        view = self.read_view(slot, sequence)
        array = np.asarray(view)
        if expect_shape is not None and tuple(array.shape) != tuple(expect_shape):
            view.release()
            raise BadInput(f'frame ({slot}, {sequence}) is {array.shape}, expected '
                           f'{tuple(expect_shape)}', 'wrong_type')
        if expect_dtype is not None and array.dtype != np.dtype(expect_dtype):
            view.release()
            raise BadInput(f'frame ({slot}, {sequence}) is {array.dtype}, expected '
                           f'{np.dtype(expect_dtype)}', 'wrong_type')
        return array

    def read_ref(self, ref: FrameRefLike) -> np.ndarray:
        """Read the frame a FrameRef (or FrameDescriptor) describes, checking its geometry.

        Raises:
            BadInput: the ref names another segment, or the frame's shape/dtype differ.
            StaleFrame: the slot moved on.
        """
        if segment_key(ref.segment) != self._segment:
            raise BadInput(f"descriptor is for segment '{ref.segment}', this reader reads "
                           f"'{self._segment}'", 'bad_descriptor')
        shape = frame_shape(ref.encoding, int(ref.height), int(ref.width))
        return self.read(ref.slot, ref.sequence, expect_shape=shape,
                         expect_dtype=ENCODINGS[ref.encoding][1])

    def read_copy(self, slot: int, sequence: int) -> np.ndarray:
        """Return an owned, writable copy of frame `(slot, sequence)` (no lease kept).

        Raises:
            StaleFrame: the slot moved on, before or during the copy.
        """
        return np.asarray(self._get().read_copy(int(slot), int(sequence)))

    def latest(self) -> tuple[int, int] | None:
        """(slot, sequence) of the newest frame, if any."""
        return self._get().latest()

    def wait_newer(self, after_sequence: int, timeout: float) -> bool:
        """Block (GIL released) until a frame newer than `after_sequence` exists."""
        return self._get().wait_newer(int(after_sequence), float(timeout))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
