"""What a realistic scene is before it is rendered (`sage_eval.realistic` plans it,
`sage_eval.scene_render` writes it into a bag): its settings (`SceneConfig`), the kinds of event
it labels (`KINDS`) and everything that happens in it (`Scene`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sage_eval.room import SAMPLE_RATE
from sage_eval.scenario import Event


@dataclass(frozen=True)
class SceneConfig:
    """Settings of a realistic scene (defaults: the nano robot in WAKE).

    Attributes:
        camera_hz: camera rate in WAKE (nano's states.wake.camera_fps).
        rest_camera_hz: camera rate in REST (the camera-rate self effect steps to it).
        imu_hz: IMU rate.
        size: camera (width, height).
        hfov_rad: horizontal field of view (62.2 degrees: the nano camera's nominal lens).
        budget_hz: orchestrator ticks per second (one AtpBudget each).
        budget_low, budget_high: ATP per encoder per tick, and the self effect's step.
        warmup_s: start the scorer ignores (statistics warm up).
        gap_s: calm time between events (uniform range).
        min_calm_s: the full program extends its end until its calm time reaches this.
        self_effects: include the camera-rate and budget steps.
        self_hold_s: how long a self effect (5 fps, 6 ATP) holds before stepping back.
        repeats: repeated stimuli before the changed one (0 = no repeat block).
        repeat_gap_s: time between repeats.
    """

    camera_hz: float = 15.0
    rest_camera_hz: float = 5.0
    imu_hz: float = 100.0
    size: tuple[int, int] = (224, 224)
    hfov_rad: float = 1.0856
    budget_hz: float = 10.0
    budget_low: float = 2.0
    budget_high: float = 6.0
    warmup_s: float = 20.0
    gap_s: tuple[float, float] = (16.0, 24.0)
    min_calm_s: float = 300.0
    self_effects: bool = True
    self_hold_s: float = 25.0
    repeats: int = 8
    repeat_gap_s: float = 5.0


# What an event of each kind is (modality, counted for recall); the bench scores on it.
KINDS: dict[str, tuple[str, bool]] = {
    'object_appears': ('vision', True), 'lights_change': ('vision', True),
    'clap': ('audio', True), 'speech_in_silence': ('audio', True),
    'speech_after_noise': ('audio', True), 'shake': ('imu', True),
    'turn_still_image': ('imu', True), 'repeat': ('audio', True),
    'changed': ('audio', True), 'self_effect': ('', False), 'ambient': ('audio', False),
}


@dataclass
class Scene:
    """Everything that happens, before rendering (times in s from the scene start)."""

    cfg: SceneConfig
    duration: float
    audio: np.ndarray
    events: list[Event] = field(default_factory=list)
    objects: list[tuple[float, np.ndarray, np.ndarray, int, int]] = field(default_factory=list)
    gains: list[tuple[float, float]] = field(default_factory=list)  # (from t, factor)
    shakes: list[tuple[float, float, float, int]] = field(default_factory=list)  # (t, s, Hz, px)
    turns: list[tuple[float, float]] = field(default_factory=list)  # (start, peak rad/s)
    rates: list[tuple[float, float]] = field(default_factory=list)  # (from t, camera Hz)
    budgets: list[tuple[float, float]] = field(default_factory=list)  # (from t, ATP)
    vent: tuple[float, float] | None = None  # fully on .. starts ramping off

    def add_sound(self, t: float, x: np.ndarray) -> None:
        i = int(round(t * SAMPLE_RATE))
        j = min(self.audio.size, i + x.size)
        if i < j:
            self.audio[i:j] += x[:j - i]

    def label(self, kind: str, start: float, end: float, name: str, modality: str = '',
              **kw: Any) -> None:
        mod, target = KINDS[kind]
        self.events.append(Event(kind, modality or mod, start, end, name,
                                 target=kw.pop('target', target), **kw))
