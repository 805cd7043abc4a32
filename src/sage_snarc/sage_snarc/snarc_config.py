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
    min: float = param('weights.min')
    decay_s: float = param('weights.decay_s')
    power: float = param('combine.power')

    def base(self) -> np.ndarray:
        """Profile weights in axis order (AXES)."""
        return np.array([float(getattr(self, a)) for a in AXES])


@dataclass(frozen=True)
class StatsConfig:
    """Robust running statistics shared by surprise and novelty."""

    window: int = param('stats.window')
    min_count: int = param('stats.min_count')


@dataclass(frozen=True)
class SurpriseConfig:
    """Per-channel predictors and the code-grid change."""

    alpha: float = param('surprise.alpha')
    beta: float = param('surprise.beta')
    z_ref: float = param('surprise.z_ref')
    combine_channels: int = param('surprise.combine_channels')
    channels_vision: tuple[str, ...] = param('surprise.channels.vision', channel_list)
    channels_audio: tuple[str, ...] = param('surprise.channels.audio', channel_list)
    codes_block: int = param('surprise.codes.block')
    codes_stride: int = param('surprise.codes.stride')
    codes_margin: int = param('surprise.codes.margin')
    codes_floor: float = param('surprise.codes.floor')
    colour_change_floor: float = param('surprise.colour_change.floor')
    grey_change_floor: float = param('surprise.grey_change.floor')
    codes_audio_hop_cells: int = param('surprise.codes.audio_hop_cells')

    def channels(self, modality: str) -> tuple[str, ...] | None:
        """The profile's channels of a modality (None: it has no setting)."""
        return {'vision': self.channels_vision, 'audio': self.channels_audio}.get(modality)


@dataclass(frozen=True)
class NoveltyConfig:
    """Nearest-distance novelty, the memory index, and voice onsets."""

    window: int = param('novelty.window')
    z_ref: float = param('novelty.z_ref')
    min_scale: float = param('novelty.min_scale')
    rel_min_scale: float = param('novelty.rel_min_scale')
    exact_max: int = param('novelty.exact_max')
    nprobe: int = param('novelty.nprobe')
    seed: int = param('novelty.seed')
    voice_min_prob: float = param('novelty.voice.min_prob')
    voice_sure_prob: float = param('novelty.voice.sure_prob')
    voice_gap_s: float = param('novelty.voice.gap_s')
    voice_onset_s: float = param('novelty.voice.onset_s')


@dataclass(frozen=True)
class VisionArousal:
    """Reference scales of vision arousal (value at ref -> 0.63)."""

    motion_ref: float = param('arousal.vision.motion_ref')
    brightness_change_ref: float = param('arousal.vision.brightness_change_ref')


@dataclass(frozen=True)
class AudioArousal:
    """Audio arousal over the tracked room background, and the room-change rules."""

    floor_db: float = param('arousal.audio.floor_db')
    range_db: float = param('arousal.audio.range_db')
    onset_ref_db: float = param('arousal.audio.onset_ref_db')
    band_ref_db: float = param('arousal.audio.band_ref_db')
    band_floor_db: float = param('arousal.audio.band_floor_db')
    background_window: int = param('arousal.audio.background_window')
    room_drop_db: float = param('arousal.audio.room_drop_db')
    room_drop_hops: int = param('arousal.audio.room_drop_hops')
    room_band_drop_db: float = param('arousal.audio.room_band_drop_db')
    room_band_count: int = param('arousal.audio.room_band_count')
    room_band_hops: int = param('arousal.audio.room_band_hops')
    room_rise_db: float = param('arousal.audio.room_rise_db')
    room_rise_flux_db: float = param('arousal.audio.room_rise_flux_db')
    room_rise_hops: int = param('arousal.audio.room_rise_hops')


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
    tau_s: float = param('reward.tau_s')
    learning_rate: float = param('reward.learning_rate')
    extinction_rate: float = param('reward.extinction_rate')
    kernel_width: float = param('reward.kernel_width')
    max_prototypes: int = param('reward.max_prototypes')
    decay_s: float = param('reward.decay_s')


@dataclass(frozen=True)
class ConflictConfig:
    """Cross-modal conflict and stream liveness."""

    pairs: tuple[tuple[str, str, float], ...] = param('conflict.pairs', _pairs)
    window_s: float = param('conflict.window_s')
    lag_s: float = param('conflict.lag_s')
    audio_offset_s: float = param('conflict.audio_offset_s')
    liveness_s: float = param('liveness_s')


@dataclass(frozen=True)
class HabituationConfig:
    """Habituation traces, episodes and stimulus descriptors."""

    rate: float = param('habituation.rate')
    max_drop: float = param('habituation.max_drop')
    recovery_s: float = param('habituation.recovery_s')
    match_dist: float = param('habituation.match_dist')
    near_miss: float = param('habituation.near_miss')
    radius_spreads: float = param('habituation.radius.spreads')
    radius_quantile: float = param('habituation.radius.quantile')
    radius_min: float = param('habituation.radius.min')
    radius_exemplars: int = param('habituation.radius.exemplars')
    episode_gap_s: float = param('habituation.episode_gap_s')
    novelty_gate: float = param('habituation.novelty_gate')
    baseline_alpha: float = param('habituation.baseline_alpha')
    audio_min_rise_db: float = param('habituation.audio_min_rise_db')
    max_traces: int = param('habituation.max_traces')


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
    """IMU windows and gravity."""

    window_s: float = param('imu.window_s')
    gravity: float = param('imu.gravity')
    gravity_alpha: float = param('imu.gravity_alpha')


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
