"""Arousal: signal intensity from an encoder's raw features or an IMU window (no state of its
own; the audio background and the gravity estimate are the caller's).

Every reference scale is the value that gives arousal 0.63 (`saturate(x / ref)`).
"""
from __future__ import annotations

import numpy as np

from sage_snarc.audio_scene import AudioBackground
from sage_snarc.imu import ImuWindow
from sage_snarc.robust import saturate
from sage_snarc.snarc_config import ArousalConfig, ImuArousal

FLOOR_DB = -50.0  # lowest room background (dBFS) audio rises are measured from
# The most risen band, beyond the room's own fluctuation BAND_FLOOR_DB, rising BAND_REF_DB above
# its background gives arousal 0.63: a punch 11 dB over a fan in level stands far out where the
# fan is quiet (BAND_REF_DB 0: level rises only).
BAND_REF_DB = 18.0
BAND_FLOOR_DB = 6.0


def latent_arousal(m: str, f: dict[str, float], cfg: ArousalConfig,
                   background: AudioBackground) -> tuple[float, float | None]:
    """(arousal, conflict activity or None) of a latent from its raw features."""
    if m == 'vision':
        a = max(saturate(f.get('motion', 0.0) / cfg.vision.motion_ref),
                saturate(abs(f.get('brightness_change', 0.0))
                         / cfg.vision.brightness_change_ref))
        return a, a
    if m == 'audio':
        au = cfg.audio
        # The newest hop is the only new audio in a window; encoders older than the hop
        # features give the window's level instead.
        level = f.get('hop_db', f.get('rms_db'))
        peak = f.get('hop_peak_db', level)
        if level is None or peak is None:
            return 0.0, None
        base = background.base(level, FLOOR_DB)
        loud = saturate(max(0.0, peak - base) / au.range_db)
        onset = saturate(f.get('hop_onset_db', 0.0) / au.onset_ref_db)
        return max(loud, onset), onset
    if m == 'language':
        return max(cfg.language.base,
                   saturate(f.get('length', 0.0) / cfg.language.length_ref)), None
    return 0.0, None


def band_arousal(sound: np.ndarray | None) -> float:
    """Arousal of the most risen band: a sound loud only where the room is quiet (a punch
    over a fan) barely moves the level, but stands far out of those bands."""
    ref = BAND_REF_DB
    if sound is None or ref <= 0.0 or sound.size == 0:
        return 0.0
    rise = float(sound.max()) - BAND_FLOOR_DB
    return saturate(max(0.0, rise) / ref)


def imu_embedding(w: ImuWindow, gravity: np.ndarray,
                  cfg: ImuArousal) -> tuple[np.ndarray, float]:
    """(embedding, arousal) of an IMU window: acceleration without gravity and rotation, each
    over its reference scale; arousal from the window's strongest sample."""
    embedding = np.concatenate([(w.accel_mean - gravity) / cfg.accel_ref,
                                w.gyro_mean / cfg.gyro_ref]).astype(np.float32)
    arousal = max(saturate(w.dyn_max / cfg.accel_ref), saturate(w.gyro_max / cfg.gyro_ref))
    return embedding, arousal
