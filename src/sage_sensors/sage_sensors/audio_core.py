"""Audio pipeline core: decode PCM, mix to mono, resample, cut fixed frames, stamp them.

Every microphone backend delivers AudioBlock(samples, rate, t_first) with t_first the capture
time of the block's first sample; AudioPipeline turns any sequence of such blocks into
AudioFrameRecord(s) of exactly `frame_samples` mono S16LE samples at `out_rate`, each stamped
with the capture time of its first sample. No rclpy here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sage_sensors.errors import StreamError
from sage_sensors.resample import Resampler

#: PCM sample formats accepted from files, devices and audio_common (GStreamer names).
SAMPLE_FORMATS = {'S16LE': ('<i2', 32768.0), 'S32LE': ('<i4', 2147483648.0),
                  'F32LE': ('<f4', 1.0), 'U8': ('u1', 128.0), 'S8': ('i1', 128.0)}


#: A block whose stamp disagrees with the samples counted by more than this (s) re-anchors
#: the frame stamps (AudioPipeline).
RESYNC_S = 0.1


@dataclass(frozen=True)
class AudioBlock:
    """Captured audio: samples (n, channels) float32 in [-1, 1], rate in Hz, first-sample stamp."""

    samples: np.ndarray
    rate: int
    t_first: float


@dataclass(frozen=True)
class AudioFrameRecord:
    """One published frame: mono S16LE bytes, stamp of its first sample, and its levels."""

    stamp: float
    sample_rate: int
    data: bytes
    samples: int
    peak: float
    rms: float


def pcm_to_float(data: bytes, sample_format: str, channels: int) -> np.ndarray:
    """Decode interleaved PCM bytes to (n, channels) float32 in [-1, 1].

    Raises:
        StreamError: unknown format, or a byte count that is not whole samples.
    """
    fmt = SAMPLE_FORMATS.get(sample_format.upper())
    if fmt is None:
        raise StreamError(f'unsupported sample format {sample_format!r} '
                          f"(supported: {', '.join(SAMPLE_FORMATS)})")
    if channels < 1:
        raise StreamError(f'channel count {channels} is not positive')
    dtype, scale = np.dtype(fmt[0]), fmt[1]
    frame_bytes = dtype.itemsize * channels
    if len(data) % frame_bytes:
        raise StreamError(f'{len(data)} bytes is not a whole number of {sample_format} '
                          f'x{channels} sample frames')
    raw = np.frombuffer(data, dtype=dtype).reshape(-1, channels)
    if sample_format.upper() == 'U8':
        return ((raw.astype(np.float32) - 128.0) / scale).astype(np.float32)
    return (raw.astype(np.float32) / np.float32(scale)).astype(np.float32)


def float_to_s16le(x: np.ndarray) -> bytes:
    """Encode float samples in [-1, 1] as little-endian int16 (clipped, rounded)."""
    y = np.clip(np.rint(np.asarray(x, dtype=np.float32) * 32767.0), -32768, 32767)
    return bytes(y.astype('<i2').tobytes())


def decode_audio_common(info: Any, data: bytes) -> tuple[np.ndarray, int]:
    """Decode an audio_common capture: AudioInfo fields + AudioData bytes.

    Args:
        info: anything with channels, sample_rate, sample_format, coding_format
            (audio_common_msgs/AudioInfo).
        data: the AudioData payload.

    Returns:
        (samples (n, channels) float32, sample_rate).

    Raises:
        StreamError: compressed coding (mp3) or an unusable format.
    """
    coding = str(getattr(info, 'coding_format', '') or 'wave').lower()
    if coding not in ('wave', 'wav', 'raw', 'pcm'):
        raise StreamError(f"audio_common coding_format {coding!r} is not raw PCM: set the "
                          "capturer's format to 'wave'")
    rate = int(info.sample_rate)
    if rate <= 0:
        raise StreamError(f'audio_common sample_rate {rate} is not positive')
    return pcm_to_float(bytes(data), str(info.sample_format or 'S16LE'),
                        int(info.channels)), rate


class AudioPipeline:
    """Mixes, resamples and frames blocks; stamps frames at the capture time of sample one.

    Stamps come from the sample count since the last anchor (exact spacing, no jitter), and
    the anchor is reset when a block's own stamp disagrees with the count by more than
    `resync_s` (a gap, a device restart or a looping file), so stamps stay at capture time.

    Args:
        out_rate: output sample rate (Hz).
        frame_samples: samples per published frame.
        gain: linear gain applied before clipping.
        resync_s: tolerated disagreement between counted and block stamps.
    """

    def __init__(self, out_rate: int = 16000, frame_samples: int = 512, gain: float = 1.0,
                 resync_s: float = RESYNC_S) -> None:
        self.out_rate = int(out_rate)
        self.frame_samples = int(frame_samples)
        self.gain = float(gain)
        self.resync_s = float(resync_s)
        self._resampler: Resampler | None = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._anchor: float | None = None     # capture time of input sample 0 of the anchor
        self._in_count = 0                    # input samples since the anchor
        self._out_count = 0                   # output samples produced since the anchor
        self.resyncs = 0

    @property
    def frame_s(self) -> float:
        """Duration of one output frame in seconds."""
        return self.frame_samples / self.out_rate

    def reset(self) -> None:
        """Drop partial data and re-anchor on the next block."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._anchor = None
        if self._resampler is not None:
            self._resampler.reset()

    def push(self, block: AudioBlock) -> list[AudioFrameRecord]:
        """Add one captured block; return the frames it completed (possibly none)."""
        samples = np.asarray(block.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.shape[0] == 0:
            return []
        if not np.all(np.isfinite(samples)):
            raise StreamError('audio block holds NaN or infinite samples')
        if self._resampler is None or self._resampler.src_rate != block.rate:
            self._resampler = Resampler(block.rate, self.out_rate)
            self._anchor = None
        if self._anchor is not None:
            expected = self._anchor + self._in_count / block.rate
            if abs(block.t_first - expected) > self.resync_s:
                self.resyncs += 1
                self.reset()
        if self._anchor is None:
            self._anchor = block.t_first
            self._in_count = 0
            self._out_count = 0
        self._in_count += samples.shape[0]
        mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        out = self._resampler.process(mono)
        self._pending = np.concatenate([self._pending, out]) if self._pending.size else out
        frames = []
        n = self.frame_samples
        while self._pending.size >= n:
            chunk, self._pending = self._pending[:n] * self.gain, self._pending[n:]
            first = self._out_count
            self._out_count += n
            stamp = self._anchor + first / self.out_rate - self._resampler.delay_s
            peak = float(np.max(np.abs(chunk)))
            rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
            frames.append(AudioFrameRecord(stamp, self.out_rate, float_to_s16le(chunk), n,
                                           min(peak, 1.0), rms))
        return frames
