"""SNARC's parameters parsed once into frozen dataclasses (no rclpy).

`snarc_params.PARAMS` stays the one source of names, defaults, ranges and descriptors (the
profile YAML, ROS parameters and `sage params` read it); each field here names the parameter
it holds (`param`), and `SnarcConfig.from_values` builds every group from a resolved
name -> value mapping, converting each value once. A runtime parameter change builds a new
config (`SnarcCore.reconfigured`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

import numpy as np

from sage_common.vocabulary import AXES, STATE_KEYS
from sage_snarc.conflict import parse_pairs
from sage_snarc.snarc_params import channel_list

PARAM = 'param'
CONVERT = 'convert'


def param(name: str, convert: Callable[[Any], Any] | None = None) -> Any:
    """A config field holding ROS parameter `name` (converted by its type, or `convert`)."""
    return field(metadata={PARAM: name, CONVERT: convert})


def _pairs(text: Any) -> tuple[tuple[str, str, float], ...]:
    return tuple(parse_pairs(str(text)))


@dataclass(frozen=True)
class WeightsConfig:
    """Axis weights, their reward-driven adaptation and the power mean combining the axes."""

    surprise: float = param('weights.surprise')
    novelty: float = param('weights.novelty')
    arousal: float = param('weights.arousal')
    reward: float = param('weights.reward')
    conflict: float = param('weights.conflict')
    learning_rate: float = param('weights.learning_rate')
    power: float = param('combine.power')

    def base(self) -> np.ndarray:
        """Profile weights in axis order (AXES)."""
        return np.array([float(getattr(self, a)) for a in AXES])


@dataclass(frozen=True)
class StatsConfig:
    """Robust running statistics shared by surprise and novelty."""

    window: int = param('stats.window')


@dataclass(frozen=True)
class SurpriseConfig:
    """What surprise predicts per modality, and how strong an error is news."""

    z_ref: float = param('surprise.z_ref')
    channels_vision: tuple[str, ...] = param('surprise.channels.vision', channel_list)
    channels_audio: tuple[str, ...] = param('surprise.channels.audio', channel_list)

    def channels(self, modality: str) -> tuple[str, ...] | None:
        """The profile's channels of a modality (None: it has no setting)."""
        return {'vision': self.channels_vision, 'audio': self.channels_audio}.get(modality)


@dataclass(frozen=True)
class NoveltyConfig:
    """Nearest-distance novelty and the memory index."""

    window: int = param('novelty.window')
    z_ref: float = param('novelty.z_ref')
    nprobe: int = param('novelty.nprobe')


@dataclass(frozen=True)
class VisionArousal:
    """Reference scales of vision arousal (value at ref -> 0.63)."""

    motion_ref: float = param('arousal.vision.motion_ref')
    brightness_change_ref: float = param('arousal.vision.brightness_change_ref')


@dataclass(frozen=True)
class AudioArousal:
    """Reference scales of audio arousal over the tracked room background."""

    range_db: float = param('arousal.audio.range_db')
    onset_ref_db: float = param('arousal.audio.onset_ref_db')


@dataclass(frozen=True)
class ImuArousal:
    """Reference scales of IMU arousal."""

    accel_ref: float = param('arousal.imu.accel_ref')
    gyro_ref: float = param('arousal.imu.gyro_ref')


@dataclass(frozen=True)
class LanguageArousal:
    """Arousal of a text input."""

    base: float = param('arousal.language.base')
    length_ref: float = param('arousal.language.length_ref')


@dataclass(frozen=True)
class ArousalConfig:
    """Arousal per modality."""

    vision: VisionArousal
    audio: AudioArousal
    imu: ImuArousal
    language: LanguageArousal


@dataclass(frozen=True)
class RewardConfig:
    """Reward association."""

    ref: float = param('reward.ref')
    window_s: float = param('reward.window_s')
    learning_rate: float = param('reward.learning_rate')
    extinction_rate: float = param('reward.extinction_rate')
    decay_s: float = param('reward.decay_s')


@dataclass(frozen=True)
class ConflictConfig:
    """Cross-modal conflict and stream liveness."""

    pairs: tuple[tuple[str, str, float], ...] = param('conflict.pairs', _pairs)
    window_s: float = param('conflict.window_s')
    lag_s: float = param('conflict.lag_s')
    liveness_s: float = param('liveness_s')


@dataclass(frozen=True)
class HabituationConfig:
    """Habituation strength, depth and recovery."""

    rate: float = param('habituation.rate')
    max_drop: float = param('habituation.max_drop')
    recovery_s: float = param('habituation.recovery_s')


@dataclass(frozen=True)
class ThresholdConfig:
    """Adaptive attend threshold and its offset per metabolic state."""

    initial: float = param('threshold.initial')
    min: float = param('threshold.min')
    max: float = param('threshold.max')
    target_rate_hz: float = param('threshold.target_rate_hz')
    gain: float = param('threshold.gain')
    offset_wake: float = param('threshold.offset.wake')
    offset_focus: float = param('threshold.offset.focus')
    offset_rest: float = param('threshold.offset.rest')
    offset_dream: float = param('threshold.offset.dream')
    offset_crisis: float = param('threshold.offset.crisis')

    def offsets(self) -> dict[str, float]:
        """Offset per metabolic state name (WAKE, FOCUS, ...)."""
        return {s.upper(): float(getattr(self, f'offset_{s}')) for s in STATE_KEYS}


@dataclass(frozen=True)
class ImuConfig:
    """IMU windows."""

    window_s: float = param('imu.window_s')


@dataclass(frozen=True)
class NodeConfig:
    """What only the rclpy shell reads."""

    imu_queue_depth: int = param('imu_queue_depth')
    before_refinement: bool = param('before_refinement')
    diagnostics_period_s: float = param('diagnostics_period_s')
    state_file: str = param('state_file')
    memory_preload_k: int = param('memory.preload_k')


@dataclass(frozen=True)
class SnarcConfig:
    """Every SNARC parameter, grouped."""

    weights: WeightsConfig
    stats: StatsConfig
    surprise: SurpriseConfig
    novelty: NoveltyConfig
    arousal: ArousalConfig
    reward: RewardConfig
    conflict: ConflictConfig
    habituation: HabituationConfig
    threshold: ThresholdConfig
    imu: ImuConfig
    node: NodeConfig

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> 'SnarcConfig':
        """Build from a complete, resolved parameter mapping (`params.resolve` over PARAMS).

        Raises:
            KeyError: a parameter a field names is missing.
        """
        built: SnarcConfig = _build(cls, values)
        return built


def _build(cls: Any, values: Mapping[str, Any]) -> Any:
    hints = get_type_hints(cls)
    args: dict[str, Any] = {}
    for f in fields(cls):
        kind = hints[f.name]
        if is_dataclass(kind):
            args[f.name] = _build(kind, values)
            continue
        raw = values[f.metadata[PARAM]]
        convert = f.metadata[CONVERT] or kind
        args[f.name] = convert(raw)
    return cls(**args)


def param_names(cls: Any = SnarcConfig) -> list[str]:
    """Every parameter name the config's fields hold (for the one-field-per-parameter test)."""
    out: list[str] = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            out.extend(param_names(hints[f.name]))
        else:
            out.append(f.metadata[PARAM])
    return out
