"""The encoders' newest inputs at encoder resolution, kept for the memory node (pure: no rclpy).

Sleep retrains the encoders on what SNARC attended, so when memory stores an experience it
asks the encoder that produced it for that input (service Topic.encoder_input(modality)). The
encoder keeps a short ring of what its model encoded: vision the frame resized to the model's
input (uint8 RGB, before scaling), audio the int16 window. Keeping is a reference to an array
nobody writes afterwards; the JPEG / zlib encoding happens only when an input is asked for.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
import threading
import zlib

import cv2
import numpy as np

# An input is found by its counter AND its stamp: an encoder that restarted counts from 0
# again, and its input 12 is not the one memory stored as 12 before the restart. Stamps
# round-trip through builtin_interfaces/Time (ns) and float seconds (~0.2 us at today's epoch),
# so 1 ms is far above that noise and far below a sensor period (camera 33 ms, audio hop 256 ms).
STAMP_TOLERANCE_S = 1e-3
# zlib's own default speed/size trade-off: windows are compressed on request only.
ZLIB_LEVEL = 6
INT16_MIN, INT16_MAX = -32768, 32767

JPEG = 'jpeg'
# Full-resolution colour (4:4:4): the default 4:2:0 halves the chroma the encoder is retrained
# on (measured on skimage photos at 240 px, quality 90: 35 -> 37 dB PSNR for +30 % bytes).
# OpenCV before 4.6 has no such flag and writes 4:2:0.
_JPEG_444 = ([cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
             if hasattr(cv2, 'IMWRITE_JPEG_SAMPLING_FACTOR') else [])
S16LE_ZLIB = 's16le-zlib'


@dataclass(frozen=True)
class InputAnswer:
    """An answer to one request, field for field the EncoderInput response."""

    found: bool
    message: str
    format: str = ''
    data: bytes = b''
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    samples: int = 0


def jpeg_input(rgb: np.ndarray, quality: int) -> InputAnswer:
    """A (H, W, 3) uint8 RGB frame as JPEG (format 'jpeg', colour not subsampled)."""
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality), *_JPEG_444])
    if not ok:
        return InputAnswer(False, f'JPEG encoding of a {rgb.shape} frame failed')
    h, w = rgb.shape[:2]
    return InputAnswer(True, f'{w}x{h} jpeg', JPEG, buf.tobytes(), width=w, height=h)


def int16_samples(window: np.ndarray) -> np.ndarray:
    """Mono samples as int16 little-endian.

    int16 stays as it is; float samples are taken in [-1, 1] scaled by 32768, the inverse of
    preprocess.pcm_to_float; anything outside the int16 range is clipped.
    """
    if np.issubdtype(window.dtype, np.floating):
        window = np.round(window.astype(np.float64) * 32768.0)
    return np.clip(window, INT16_MIN, INT16_MAX).astype('<i2')


def s16le_zlib_input(window: np.ndarray, sample_rate: int) -> InputAnswer:
    """An audio window as zlib-compressed int16 little-endian samples (format 's16le-zlib')."""
    pcm = int16_samples(np.asarray(window).reshape(-1))
    return InputAnswer(True, f'{pcm.size} samples at {sample_rate} Hz, s16le-zlib',
                       S16LE_ZLIB, zlib.compress(pcm.tobytes(), ZLIB_LEVEL),
                       sample_rate=int(sample_rate), samples=int(pcm.size))


def kept_frame(fmt: str, data: bytes) -> np.ndarray:
    """A stored vision input -> the (H, W, 3) uint8 RGB frame the encoder kept (the inverse
    of `jpeg_input`).

    Raises:
        ValueError: another format, or the bytes do not decode.
    """
    if fmt != JPEG:
        raise ValueError(f'vision input format {fmt!r}, expected {JPEG}')
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:  # an empty buffer raises instead of returning None
        raise ValueError(f'JPEG does not decode: {err}') from err
    if bgr is None:
        raise ValueError('JPEG does not decode')
    return np.ascontiguousarray(bgr[:, :, ::-1])


def kept_window(fmt: str, data: bytes, sample_rate: int, rate: int, n: int) -> np.ndarray:
    """A stored audio input -> the (n,) int16 window the encoder kept (the inverse of
    `s16le_zlib_input`).

    A shorter window is zero padded at the start, a longer one keeps its newest samples (the
    encoder's ring holds the newest window).

    Args:
        fmt, data: the stored format and bytes.
        sample_rate: the input's recorded rate (0 = not recorded).
        rate: the rate the model expects.
        n: the model's window in samples.

    Raises:
        ValueError: another format or sample rate, or the bytes do not decompress.
    """
    if fmt != S16LE_ZLIB:
        raise ValueError(f'audio input format {fmt!r}, expected {S16LE_ZLIB}')
    if sample_rate and sample_rate != rate:
        raise ValueError(f'sample rate {sample_rate}, model expects {rate}')
    try:
        raw = zlib.decompress(data)
    except zlib.error as err:
        raise ValueError(f'zlib: {err}') from err
    if len(raw) % 2 or not raw:
        raise ValueError(f'{len(raw)} bytes is not a whole number of int16 samples')
    pcm = np.frombuffer(raw, '<i2')
    if len(pcm) < n:
        pcm = np.concatenate([np.zeros(n - len(pcm), np.int16), pcm])
    return pcm[-n:].astype(np.int16)


@dataclass(frozen=True)
class _Kept:
    input_seq: int
    stamp: float
    array: np.ndarray


class InputRing:
    """The newest `keep` inputs by (input_seq, stamp); encoded on request.

    Thread safe: the encoder's callback puts while a service callback on another executor
    thread looks up. The lock covers the ring only; encoding runs outside it on the kept
    array, which nobody writes once put.

    Attributes:
        encode: turns a kept array into a found InputAnswer (jpeg_input, s16le_zlib_input
            with their settings bound); replaceable at runtime.
    """

    def __init__(self, keep: int, encode: Callable[[np.ndarray], InputAnswer],
                 tolerance_s: float = STAMP_TOLERANCE_S) -> None:
        self.encode = encode
        self.tolerance_s = float(tolerance_s)
        self._lock = threading.Lock()
        self._ring: deque[_Kept] = deque(maxlen=max(0, int(keep)))

    @property
    def keep(self) -> int:
        """How many inputs the ring holds at most (0 = off)."""
        return self._ring.maxlen or 0

    @property
    def enabled(self) -> bool:
        """False when keep is 0: callers skip the copy they would hand over."""
        return self.keep > 0

    def __len__(self) -> int:
        return len(self._ring)

    def resize(self, keep: int) -> None:
        """Change how many inputs are kept (the newest stay)."""
        keep = max(0, int(keep))
        with self._lock:
            if keep != self._ring.maxlen:
                self._ring = deque(self._ring, maxlen=keep)

    def put(self, input_seq: int, stamp: float, array: np.ndarray) -> None:
        """Keep one input; the oldest leaves when the ring is full.

        Args:
            input_seq: the Latent's input_seq.
            stamp: the Latent's stamp (s).
            array: what the model encoded; handed over: the caller never writes it again.
        """
        if not self.enabled:
            return
        with self._lock:
            self._ring.append(_Kept(int(input_seq), float(stamp), array))

    def lookup(self, stamp: float, input_seq: int) -> InputAnswer:
        """The input with this counter and stamp, encoded; found=False says why not."""
        seq, stamp = int(input_seq), float(stamp)
        with self._lock:
            keep = self.keep
            kept = list(self._ring)
        what = f'input_seq {seq} at {stamp:.3f} s'
        if not keep:
            return InputAnswer(False, f'{what}: no inputs are kept (training_input.keep 0)')
        if not kept:
            return InputAnswer(False, f'{what}: nothing encoded yet')
        for item in reversed(kept):  # the newest are asked for most
            if item.input_seq != seq:
                continue
            if abs(item.stamp - stamp) > self.tolerance_s:
                return InputAnswer(False, f'{what}: input_seq {seq} kept here is stamped '
                                          f'{item.stamp:.3f} s (the encoder restarted?)')
            answer = self.encode(item.array)
            if not answer.found:
                return answer
            return InputAnswer(True, f'{what}: {answer.message}', answer.format, answer.data,
                               answer.width, answer.height, answer.sample_rate,
                               answer.samples)
        oldest, newest = kept[0], kept[-1]
        if seq < oldest.input_seq:
            return InputAnswer(False, f'{what} is older than the {keep} inputs kept '
                                      f'(oldest: input_seq {oldest.input_seq})')
        if seq > newest.input_seq:
            return InputAnswer(False, f'{what} is newer than the newest input kept '
                                      f'(input_seq {newest.input_seq}; the encoder '
                                      'restarted?)')
        return InputAnswer(False, f'{what} is not among the {len(kept)} inputs kept '
                                  f'(input_seq {oldest.input_seq}..{newest.input_seq})')
