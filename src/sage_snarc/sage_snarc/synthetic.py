"""Deterministic synthetic inputs for SNARC tests and benchmarks (no encoders needed).

Latents imitate the puzzle encoders: an embedding that stays near a scene vector with small
noise, a code grid that flickers in a few cells, and the raw features the encoders report.
Stimuli are other unit vectors mixed into the scene.
"""
from __future__ import annotations

import numpy as np

from sage_common.records import ImuRecord, LatentRecord

GRAVITY = 9.80665


class SyntheticWorld:
    """A seeded source of vision/audio latents and IMU samples."""

    def __init__(self, seed: int = 0, dim: int = 32) -> None:
        self.rng = np.random.default_rng(seed)
        self.dim = dim
        self.scene = self.direction()
        self.room = self.direction()
        self._grid = self.rng.integers(0, 128, size=(30, 30)).astype(np.uint16)
        self._agrid = self.rng.integers(0, 64, size=(16, 16)).astype(np.uint16)
        self._seq = {'vision': 0, 'audio': 0}

    def direction(self) -> np.ndarray:
        """A new random unit vector (a stimulus never seen before)."""
        v = self.rng.normal(size=self.dim)
        return v / np.linalg.norm(v)

    @staticmethod
    def _stimulus_codes(stimulus: np.ndarray, codebook: int) -> np.ndarray:
        """A 10x10 code patch that depends on the stimulus (its own set of codes)."""
        order = np.argsort(stimulus)[-4:]  # the stimulus' strongest components
        patch = order[np.arange(100) % 4].reshape(10, 10) * 7 % codebook
        return np.tile(patch, (2, 1))[:16, :10] if codebook < 100 else patch

    def _next(self, modality: str) -> int:
        seq = self._seq[modality]
        self._seq[modality] += 1
        return seq

    def vision(self, t: float, stimulus: np.ndarray | None = None, strength: float = 0.5,
               motion: float = 0.001, brightness_change: float = 0.0) -> LatentRecord:
        """A camera frame's latent: the scene, plus a stimulus when one is in view."""
        emb = self.scene + 0.002 * self.rng.normal(size=self.dim)
        codes = self._grid.copy()
        flicker = self.rng.integers(0, codes.size, size=10)
        codes.flat[flicker] = self.rng.integers(0, 128, size=flicker.size)
        if stimulus is not None:
            emb = emb + strength * stimulus
            codes[:10, :10] = self._stimulus_codes(stimulus, 128)
        return LatentRecord(
            stamp=t, modality='vision', input_seq=self._next('vision'), codes=codes,
            codebook_size=128, embedding=emb.astype(np.float32),
            features={'brightness': 0.45 + 0.0005 * self.rng.normal(),
                      'brightness_change': brightness_change,
                      'motion': motion * (1.0 + 0.1 * self.rng.normal())},
            recon_error=0.02 + 0.0005 * self.rng.normal())

    def audio(self, t: float, sound: np.ndarray | None = None, rms_db: float = -52.0,
              onset: float = 0.05) -> LatentRecord:
        """An audio window's latent: room noise, plus a sound."""
        emb = self.room + 0.01 * self.rng.normal(size=self.dim)
        codes = self._agrid.copy()
        codes.flat[self.rng.integers(0, codes.size, size=8)] = 3
        if sound is not None:
            emb = emb + 0.8 * sound
            codes[:, 10:12] = self._stimulus_codes(sound, 64)[:16, :2]
        return LatentRecord(
            stamp=t, modality='audio', input_seq=self._next('audio'), codes=codes,
            codebook_size=64, embedding=emb.astype(np.float32),
            features={'rms': 10 ** (rms_db / 20.0), 'rms_db': rms_db + 0.05 * self.rng.normal(),
                      'onset': onset},
            recon_error=0.013 + 0.0003 * self.rng.normal())

    def imu(self, t: float, gyro_z: float = 0.0, accel_x: float = 0.0) -> ImuRecord:
        """One IMU sample: gravity, noise, an optional yaw rate and forward acceleration."""
        accel = np.array([accel_x, 0.0, GRAVITY]) + 0.03 * self.rng.normal(size=3)
        gyro = np.array([0.0, 0.0, gyro_z]) + 0.004 * self.rng.normal(size=3)
        return ImuRecord(stamp=t, input_seq=0, accel=accel, gyro=gyro)
