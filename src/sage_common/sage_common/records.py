"""Plain records passed between node cores (no rclpy): the seam between packages.

Encoder cores return LatentRecord, the SNARC core takes LatentRecord/ImuRecord and returns
SalienceRecord, the memory and orchestrator cores consume both. `sage_common.convert` maps
them to and from sage_interfaces messages; the offline replay uses the records directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sage_common.vocabulary import AXES, MODALITIES

__all__ = ['AXES', 'MODALITIES', 'grids', 'ImuRecord', 'LatentRecord', 'RewardRecord',
           'SalienceRecord', 'StateRecord', 'model_name']


def model_name(model_version: str) -> str:
    """The version name in a latent's model_version: 'v0002' of 'v0002:1a2b3c4d'.

    The name is the model folder's version (what /sage/models/live names); the digest after
    ':' tells apart builds of one name (sage_encoders.model_files.model_identity).
    """
    return model_version.split(':', 1)[0]


@dataclass(frozen=True)
class LatentRecord:
    """One encoded input (mirror of sage_interfaces/Latent).

    codes is a (grid_height, grid_width) uint16 array, or None for language; codes_initial the
    grid before refinement (None when there was no refinement).
    embedding is a 1-D float32 array. features maps a feature name to its value.
    """

    stamp: float
    modality: str
    input_seq: int
    codes: np.ndarray | None
    codebook_size: int
    embedding: np.ndarray
    features: dict[str, float] = field(default_factory=dict)
    recon_error: float = -1.0
    iterations: int = 0
    energy_initial: float = 0.0
    energy_final: float = 0.0
    converged: bool = False
    halt_reason: str = 'none'
    atp_spent: float = 0.0
    encode_ms: float = 0.0
    preview_format: str = ''
    preview: bytes = b''
    text: str = ''
    codes_initial: np.ndarray | None = None
    model_version: str = ''  # the encoder model that made it ('<version>:<digest>'; '' unknown)

    @property
    def scored_codes(self) -> np.ndarray | None:
        """The grid salience is scored on: before refinement when there is one."""
        return self.codes_initial if self.codes_initial is not None else self.codes


@dataclass(frozen=True)
class ImuRecord:
    """One IMU sample in SI units: accel (3,) m/s^2, gyro (3,) rad/s, orientation (4,) xyzw."""

    stamp: float
    input_seq: int
    accel: np.ndarray
    gyro: np.ndarray
    orientation: np.ndarray | None = None


@dataclass(frozen=True)
class SalienceRecord:
    """SNARC's score of one input (mirror of sage_interfaces/Salience)."""

    stamp: float
    modality: str
    input_seq: int
    surprise: float
    novelty: float
    arousal: float
    reward: float
    conflict: float
    salience: float
    threshold: float
    attend: bool

    def axes(self) -> dict[str, float]:
        """The five axis scores by name."""
        return {a: float(getattr(self, a)) for a in AXES}


@dataclass(frozen=True)
class RewardRecord:
    """A reward signal in [-1, 1]."""

    stamp: float
    value: float
    source: str = ''


@dataclass(frozen=True)
class StateRecord:
    """The metabolic state as published (mirror of sage_interfaces/MetabolicState)."""

    stamp: float
    state: str
    previous: str
    reason: str
    dwell_s: float
    atp_reserve: float
    memory_pressure: str


def grids(msg: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(codes, codes_initial) of a Latent message (rclpy or rosbags), None where absent."""
    shape = (int(msg.grid_height), int(msg.grid_width))
    if not (shape[0] and shape[1]):
        return None, None
    codes = np.asarray(msg.codes, dtype=np.uint16).reshape(shape)
    initial = getattr(msg, 'codes_initial', None)  # bags recorded before the field existed
    if initial is None or len(initial) != codes.size:
        return codes, None
    return codes, np.asarray(initial, dtype=np.uint16).reshape(shape)
