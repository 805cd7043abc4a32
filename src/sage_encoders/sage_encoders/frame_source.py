"""Vision encoder side of the frame mailbox: read a FrameRef's frame in place.

sage_cuda_mailbox is imported only when the profile enables the mailbox.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from sage_encoders.errors import InputError


class FrameDropped(InputError):
    """The camera already reused the frame's slot: a normal drop for a lagging reader."""


class MailboxFrames:
    """Attaches to the camera's segment on first use (and again if its name changes)."""

    def __init__(self, lease_ms: int) -> None:
        # lazy: keeps the compiled mailbox out of this module's import
        import sage_cuda_mailbox
        self._mb = sage_cuda_mailbox
        self._lease_ms = lease_ms
        self._reader: Any = None

    def _reader_for(self, segment: str) -> Any:
        if self._reader is None or self._reader.segment != segment:
            try:
                self._reader = self._mb.FrameReader(segment, lease_ms=self._lease_ms)
            except self._mb.MailboxError as err:
                raise InputError(f"cannot attach frame segment '{segment}': {err}") from err
        return self._reader

    @contextmanager
    def read(self, ref: Any) -> Iterator[np.ndarray]:
        """The (H, W, 3) uint8 RGB frame a FrameRef names, leased while the block runs.

        Raises:
            InputError: stale or malformed descriptor, wrong encoding, missing segment.
        """
        if ref.encoding != 'rgb8':
            raise InputError(f"FrameRef encoding '{ref.encoding}' is not rgb8")
        reader = self._reader_for(ref.segment)
        try:
            view = reader.read_view(ref.slot, ref.sequence)
        except self._mb.StaleFrame as err:
            raise FrameDropped(str(err)) from err
        except self._mb.MailboxError as err:
            raise InputError(f'frame ({ref.slot}, {ref.sequence}) refused: {err}') from err
        try:
            frame = np.asarray(view)
            if frame.shape != (ref.height, ref.width, 3) or frame.dtype != np.uint8:
                raise InputError(f'frame is {frame.shape} {frame.dtype}, FrameRef says '
                                 f'{ref.height}x{ref.width} rgb8')
            yield frame
        finally:
            view.release()
