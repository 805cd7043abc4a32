"""The one preprocessing path shared by training and inference (numpy + OpenCV, no torch).

Vision: any ROS image encoding -> RGB uint8 (`rgb_from_buffer` / `rgb_from_array`) -> resize to
the model side (`resize_rgb`, the frame the encoder keeps for retraining) -> float32 in [-1, 1]
laid out (1, 3, S, S) (`scale_rgb`; both: `preprocess_rgb`).

Audio: int16 PCM -> float in [-1, 1] -> log-mel power in dB (`log_mel_db`) -> normalised
(`normalise_mel`), laid out (1, 1, n_mels, frames) by `preprocess_audio`. The audio model's
front end is its own (`model_mel`: what its metadata records, `MODEL_MEL` for new models);
the encoder's level and spectrum features keep the default `MelConfig`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from sage_encoders.errors import InputError, ModelError

# Encodings accepted from sensor_msgs/Image, with their channel count.
CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
SUPPORTED_ENCODINGS = tuple(CHANNELS)
# Frames larger than this (pixels) are rejected: nothing SAGE runs on sends 4K frames.
MAX_PIXELS = 4096 * 4096


def rgb_from_array(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an image array in a supported encoding to RGB.

    Alpha is dropped (not composited); mono is replicated to three channels.

    Args:
        arr: (H, W) or (H, W, C) uint8 array in `encoding`.
        encoding: one of SUPPORTED_ENCODINGS.

    Returns:
        (H, W, 3) uint8 C-contiguous RGB array.

    Raises:
        InputError: unsupported encoding, wrong dtype or channel count, or zero size.
    """
    enc = encoding.lower()
    if enc not in CHANNELS:
        raise InputError(f"unsupported image encoding '{encoding}' "
                         f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if arr.dtype != np.uint8:
        raise InputError(f'image dtype must be uint8, got {arr.dtype}')
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != CHANNELS[enc]:
        raise InputError(f'{enc} image must have {CHANNELS[enc]} channels, got shape {arr.shape}')
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f'image has zero size {arr.shape[1]}x{arr.shape[0]}')
    if enc == 'rgb8':
        out = arr
    elif enc == 'bgr8':
        out = arr[:, :, ::-1]
    elif enc == 'mono8':
        out = np.repeat(arr, 3, axis=2)
    elif enc == 'rgba8':
        out = arr[:, :, :3]
    else:  # bgra8
        out = arr[:, :, 2::-1]
    return np.ascontiguousarray(out)


def rgb_from_buffer(data: bytes | bytearray | memoryview | np.ndarray, width: int, height: int,
                    step: int, encoding: str) -> np.ndarray:
    """Decode a sensor_msgs/Image payload to RGB, checking every size field.

    Args:
        data: the raw bytes (step * height of them).
        width: pixels per row.
        height: rows.
        step: bytes per row (>= width * channels; row padding is dropped).
        encoding: one of SUPPORTED_ENCODINGS.

    Returns:
        (height, width, 3) uint8 RGB array.

    Raises:
        InputError: unsupported encoding, zero or huge size, step too small, or
            len(data) != step * height.
    """
    enc = encoding.lower()
    if enc not in CHANNELS:
        raise InputError(f"unsupported image encoding '{encoding}' "
                         f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if width <= 0 or height <= 0:
        raise InputError(f'image has zero size {width}x{height}')
    if width * height > MAX_PIXELS:
        raise InputError(f'image {width}x{height} is larger than {MAX_PIXELS} pixels')
    row = width * CHANNELS[enc]
    if step < row:
        raise InputError(f'image step {step} is smaller than width*channels = {row}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise InputError(f'image data has {buf.size} bytes, expected step*height = '
                         f'{step}*{height} = {step * height}')
    arr = buf.reshape(height, step)[:, :row].reshape(height, width, CHANNELS[enc])
    return rgb_from_array(arr, enc)


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB frame to size x size, the model's input frame before scaling.

    Non-square frames are squashed (no crop), so the whole field of view is encoded. A frame
    already at size x size is returned as is (not copied).

    Args:
        rgb: (H, W, 3) uint8 RGB.
        size: model input side in pixels (a multiple of the model stride).

    Returns:
        (size, size, 3) uint8 RGB.
    """
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    # INTER_AREA averages when shrinking (no aliasing); linear when enlarging.
    interp = cv2.INTER_AREA if h * w > size * size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def scale_rgb(rgb: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB -> (1, 3, S, S) float32 in [-1, 1], the network's layout."""
    x = rgb.astype(np.float32) * (1.0 / 127.5) - 1.0  # (S, S, 3)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # (1, 3, S, S)


def preprocess_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB frame to size x size and scale it to [-1, 1] (resize_rgb, scale_rgb).

    Args:
        rgb: (H, W, 3) uint8 RGB.
        size: model input side in pixels (a multiple of the model stride).

    Returns:
        (1, 3, size, size) float32 array in [-1, 1].
    """
    return scale_rgb(resize_rgb(rgb, size))


def rgb_from_model(x: np.ndarray) -> np.ndarray:
    """Inverse of preprocess_rgb's scaling: (3, S, S) in [-1, 1] -> (S, S, 3) uint8."""
    img = np.clip((x.transpose(1, 2, 0) + 1.0) * 127.5, 0, 255)
    return np.ascontiguousarray(img.round().astype(np.uint8))


@dataclass(frozen=True)
class MelConfig:
    """Log-mel front end of the audio puzzle encoder.

    Defaults: 16 kHz, 1.024 s windows (16384 samples = 32 AudioFrames of 512), STFT hop 256
    (two STFT frames per 32 ms AudioFrame), 64 frames x 64 mel bands per window.
    """

    sample_rate: int = 16000
    window_samples: int = 16384
    n_fft: int = 512
    hop: int = 256
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    # dB normalisation: x = (db - db_offset) / db_scale; -100 dB floor (int16 silence).
    db_floor: float = -100.0
    db_offset: float = -50.0
    db_scale: float = 25.0

    @property
    def frames(self) -> int:
        """STFT frames per window."""
        return self.window_samples // self.hop


# Front end of the audio models trained from now on: 2048-sample STFT frames (128 ms), every
# 16 ms as before. With 512 the lowest mel bands hold one FFT bin each, so a room's steady
# noise leaves a periodogram ripple there that is new in every window: 98 % of the old
# model's error on a day of one room, and nothing a model can learn from another day. Longer
# frames average more bins into each low band. A day-1 fine-tune of a model retrained on each
# front end (probe harness, tuning rooms 0 and 2, day-2 error after/before): 512 0.91 (room 0);
# 1024 0.81 and 0.67; 2048 0.77 and 0.51; 4096 0.47 (room 0), not taken: 256 ms frames leave a
# 1 s window four independent time slices, too few for speech.
MODEL_MEL = MelConfig(n_fft=2048)


def model_mel(meta: Mapping[str, Any], sample_rate: int | None = None,
              window_samples: int | None = None) -> MelConfig:
    """The log-mel front end an audio model was trained with (its metadata's preprocess.mel;
    the default MelConfig for metadata without one), at the caller's rate and window.

    Raises:
        ModelError: the recorded front end is not a MelConfig (unknown or missing fields).
    """
    recorded = (meta.get('preprocess') or {}).get('mel')
    try:
        mel = MelConfig(**recorded) if recorded else MelConfig()
    except TypeError as err:
        raise ModelError(f'model metadata preprocess.mel is not a log-mel front end: {err}'
                         ) from err
    return replace(mel, sample_rate=sample_rate or mel.sample_rate,
                   window_samples=window_samples or mel.window_samples)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """Triangular HTK mel filters, (n_fft // 2 + 1, n_mels) float32, area-normalised."""
    n_bins = cfg.n_fft // 2 + 1
    freqs = np.linspace(0.0, cfg.sample_rate / 2.0, n_bins)
    mels = np.linspace(_hz_to_mel(np.array(cfg.fmin)), _hz_to_mel(np.array(cfg.fmax)),
                       cfg.n_mels + 2)
    edges = _mel_to_hz(mels)
    fb = np.zeros((n_bins, cfg.n_mels), dtype=np.float64)
    for m in range(cfg.n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[:, m] = np.maximum(0.0, np.minimum(up, down)) * (2.0 / max(hi - lo, 1e-9))
    return fb.astype(np.float32)


@lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def pcm_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1)."""
    return pcm.astype(np.float32) * (1.0 / 32768.0)


def log_mel_db(samples: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Log-mel power spectrogram in dB of one window.

    Args:
        samples: (cfg.window_samples,) float32 in [-1, 1].
        cfg: front-end settings.

    Returns:
        (n_mels, frames) float32 dB values, floored at cfg.db_floor.
    """
    n = cfg.frames
    # Pad the tail so every hop starts a full n_fft frame: frames = window / hop exactly.
    padded = np.concatenate([samples, np.zeros(cfg.n_fft - cfg.hop, np.float32)])
    idx = np.arange(cfg.n_fft)[None, :] + cfg.hop * np.arange(n)[:, None]
    frames = padded[idx] * _hann(cfg.n_fft)  # (frames, n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, bins)
    mel = power.astype(np.float32) @ mel_filterbank(cfg)  # (frames, n_mels)
    db = 10.0 * np.log10(np.maximum(mel, 1e-12))
    return np.maximum(db, cfg.db_floor).T.astype(np.float32)  # (n_mels, frames)


def normalise_mel(db: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Scale dB values to roughly [-2, 2] for the network."""
    return ((db - cfg.db_offset) / cfg.db_scale).astype(np.float32)


def preprocess_audio(samples: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """One window of float samples -> (1, 1, n_mels, frames) float32 network input."""
    return normalise_mel(log_mel_db(samples, cfg), cfg)[None, None]


def pcm_from_bytes(data: bytes | bytearray | memoryview | np.ndarray, encoding: str,
                   channels: int) -> np.ndarray:
    """Decode an AudioFrame payload to mono int16 (channels averaged).

    Raises:
        InputError: encoding other than S16LE, zero channels, or a byte count that is not a
            whole number of samples.
    """
    if encoding.upper() != 'S16LE':
        raise InputError(f"unsupported audio encoding '{encoding}' (only S16LE)")
    if channels < 1:
        raise InputError(f'audio frame has {channels} channels')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size % (2 * channels):
        raise InputError(f'audio frame has {buf.size} bytes, not a multiple of '
                         f'2 bytes x {channels} channels')
    pcm = buf.view('<i2')
    if channels == 1:
        return pcm.astype(np.int16)
    frames = pcm.reshape(-1, channels).astype(np.int32)
    return np.round(frames.mean(1)).astype(np.int16)
