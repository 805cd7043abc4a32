"""Arousal: signal intensity from an encoder's raw features or an IMU window (no state of its
own; the learnt room and the gravity estimate are the caller's).

Every reference scale is the value that gives arousal 0.63 (`saturate(x / ref)`).
"""
from __future__ import annotations

import numpy as np

from sage_snarc.background import Background
from sage_snarc.imu import ImuWindow
from sage_snarc.robust import saturate
from sage_snarc.snarc_config import ArousalConfig, AudioArousal, ImuArousal

# Scale of the speech probability among the room's dB features: a phrase the detector is
# sure of (0.5) lies 10 units above a quiet room, ten of the 1 dB spread floor.
VOICE_DB = 20.0


def latent_arousal(m: str, f: dict[str, float],
                   cfg: ArousalConfig) -> tuple[float, float | None]:
    """(arousal, conflict activity or None) of a latent from its raw features."""
    if m == 'vision':
        a = max(saturate(f.get('motion', 0.0) / cfg.vision.motion_ref),
                saturate(abs(f.get('brightness_change', 0.0))
                         / cfg.vision.brightness_change_ref))
        return a, a
    if m == 'audio':
        # How far the hop stands out of the room is the caller's (room_arousal); the onset
        # is the conflict activity.
        if f.get('hop_db', f.get('rms_db')) is None:
            return 0.0, None
        onset = saturate(f.get('hop_onset_db', 0.0) / cfg.audio.onset_ref_db)
        return 0.0, onset
    if m == 'language':
        return max(cfg.language.base,
                   saturate(f.get('length', 0.0) / cfg.language.length_ref)), None
    return 0.0, None


def bands_of(features: dict[str, float]) -> np.ndarray | None:
    """The newest hop's spectral band levels (dB, sage_encoders.audio_core.hop_spectrum's
    band_00..) in band order, or None when the encoder sent none."""
    names = sorted(k for k in features if k.startswith('band_'))
    if not names:
        return None
    return np.array([features[k] for k in names], dtype=np.float64)


def room_arousal(excess: np.ndarray | None, centre: np.ndarray | None, x: np.ndarray,
                 cfg: AudioArousal) -> float:
    """Arousal of a hop's peak level, onset or spectral band that stands beyond the learnt
    room (Background.excess > 0), by how far (dB) it rises above the room's centre: the room
    says whether anything stands out, the rise how loud it is. A sound loud only where the
    room is quiet (a punch over a fan) barely moves the level but stands out of those bands."""
    if excess is None or centre is None or excess.size == 0:
        return 0.0
    out = excess > 0.0
    if not out.any():
        return 0.0
    return saturate(float((x - centre)[out].max()) / cfg.range_db)


def hear_room(room: Background, stamp: float, feats: dict[str, float],
              cfg: AudioArousal) -> tuple[np.ndarray | None, float, bool]:
    """(foreground spectrum, arousal, whether the room explains it) of an audio window,
    measured against the learnt room of its peak level, onset, speech probability and bands;
    then the room learns the window."""
    level = feats.get('hop_db', feats.get('rms_db'))
    if level is None:
        return None, 0.0, False
    bands = bands_of(feats)
    # The speech probability is a feature of the room too (VOICE_DB per unit, beside levels
    # in dB): distant talk is the room's, a phrase in a quiet room stands out.
    head = [feats.get('hop_peak_db', level), feats.get('hop_onset_db', 0.0),
            VOICE_DB * feats.get('voice', 0.0)]
    x = np.concatenate([head, bands if bands is not None else []])
    excess, centre = room.excess(x), room.centre()
    sound = None
    if bands is not None and centre is not None and centre.shape == x.shape:
        sound = np.maximum(bands - centre[len(head):], 0.0)
    arousal = room_arousal(excess, centre, x, cfg)
    # What stands out of the room is learnt at the room's bound, not as it is: a sound
    # repeated every two seconds would otherwise fill its fifth of the window and hide the
    # next new sound; a lasting change still raises the room.
    bound = room.bound()
    room.update(stamp, x if bound is None or bound.shape != x.shape else np.minimum(x, bound))
    return sound, arousal, excess is not None and float(excess.max()) <= 0.0


def imu_embedding(w: ImuWindow, gravity: np.ndarray,
                  cfg: ImuArousal) -> tuple[np.ndarray, float]:
    """(embedding, arousal) of an IMU window: acceleration without gravity and rotation, each
    over its reference scale; arousal from the window's strongest sample."""
    embedding = np.concatenate([(w.accel_mean - gravity) / cfg.accel_ref,
                                w.gyro_mean / cfg.gyro_ref]).astype(np.float32)
    arousal = max(saturate(w.dyn_max / cfg.accel_ref), saturate(w.gyro_max / cfg.gyro_ref))
    return embedding, arousal
