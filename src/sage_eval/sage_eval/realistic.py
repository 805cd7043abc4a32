"""Realistic labelled scenes: rosbag2 (MCAP) bags from real photos, speech and sounds.

`make_realistic_scene(out_bag, seed)` writes a bag with the topics the graph consumes and the
labels JSON beside it, in the format of `sage_eval.scenario` (`ScenarioLabels`, `Event`,
`labels_path`), so the offline replay and every scorer read it as they read the synthetic scenes:

- /sage/camera/image_raw  rgb8 224x224 at the WAKE rate (15 fps): a slow pan over a panorama of
  evaluation photos (`media.EVAL_PHOTOS`) with shot and read noise, auto-exposure drift and small
  exposure steps (not events), a JPEG round trip (quality 70-90);
- /sage/audio/frames      S16LE 16 kHz mono, 512-sample frames: pink/brown room noise and mains
  hum (50 or 60 Hz and harmonics) at -60..-48 dBFS, a fan at -30 dBFS in some seeds, a stretch
  of ventilation noise;
- /sage/imu/data          100 Hz: gravity, the pan's slow yaw, noise, bias and bias drift;
- /sage/budget            AtpBudget at the orchestrator's 10 Hz tick: 2 ATP per encoder.

Events (kind, modality; `Event.target` = counted for recall): object_appears (vision: a soft-
edged cut-out of another photo pasted into the world, stays), lights_change (vision: a brightness
step), clap (audio: `media.IMPACT_SOUNDS`), speech_in_silence and speech_after_noise (audio:
conversation utterances cut at their transcript times, the CMU ARCTIC sentence), shake (imu; the
image shakes too), turn_still_image (imu: a yaw turn while the image stays still), repeat (the
same impact eight times; only the first is a target) then changed (another sound). The robot's
own effects are 'self_effect' events that must not be attended: the camera stepping 15 -> 5 fps
and back (the bag holds frames at the new rate), the budget stepping 2 -> 6 ATP and back.
'ambient' events (ventilation ramping on or off) are neither targets nor calm.

Seeds: TUNING_SEEDS may be looked at while tuning; REPORT_SEEDS only for reported figures.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
import json
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.errors import WriterError

from sage_eval import media
from sage_eval.camera_model import cutout, resize_to_height, SensorNoise
from sage_eval.errors import ScenarioError
from sage_eval.room import (at_active, at_peak, coloured_noise, envelope, fan, faded, mains_hum,
                            SAMPLE_RATE)
from sage_eval.scenario import calm_spans, FRAME_SAMPLES, labels_path, ScenarioLabels, T0
from sage_eval.scene_plan import Scene, SceneConfig
from sage_eval.scene_render import Look, MARGIN_PX, PLUGINS, TURN_S, write_scene

TUNING_SEEDS = tuple(range(0, 40))
REPORT_SEEDS = tuple(range(100, 120))
SEED_SETS = {'tuning': TUNING_SEEDS, 'report': REPORT_SEEDS}
# Part of the cache key of generated scenes: bump it whenever the content changes.
GENERATOR_VERSION = 3
PROGRAMS = ('full', 'short')
MAX_SCENE_S = 900.0


# The short program: each stimulus kind once, no self effects and no repeat block (~80 s).
SHORT = SceneConfig(warmup_s=10.0, gap_s=(5.0, 6.0), min_calm_s=0.0, self_effects=False,
                    repeats=0)
# The short program with little calm between stimuli (~36 s): for graph tests that play a
# scene into live nodes, where every second of bag is a second of CI.
COMPACT = replace(SHORT, warmup_s=3.0, gap_s=(1.0, 1.5))
# Levels (dBFS RMS unless a peak): a quiet room through a robot microphone with its gain set for
# speech at 1 m; a hand clap or a slammed door near the robot peaks close to full scale.
FLOOR_DB = (-60.0, -48.0)
HUM_DB = (-62.0, -50.0)
FAN_DB = -30.0
FAN_EVERY = 3  # seeds with seed % FAN_EVERY == 1 have a fan running all the time
VENT_DB = (-42.0, -34.0)
VENT_RAMP_S = 8.0
SPEECH_DB = (-30.0, -22.0)  # active speech level
CLAP_PEAK_DB = (-8.0, -2.0)
REPEAT_PEAK_DB = (-12.0, -8.0)
MIN_UTTERANCE_S = 0.8
# Camera: sensor gain (DN per electron), read noise, JPEG quality, light changes.
SENSOR_GAIN = (0.06, 0.2)
READ_DN = (0.8, 2.0)
JPEG_QUALITY = (70, 90)
LIGHTS_DIM = (0.5, 0.7)  # brightness factor of a light going off (the next one restores it)
OBJECT_SIDE_PX = (56, 96)
SHAKE_HZ = (6.0, 10.0)
SHAKE_PX = (3, 6)  # image jitter during a shake
SHAKE_S = (0.6, 1.2)
TURN_RATE = (0.6, 1.0)  # rad/s peak of a turn the image does not follow

@lru_cache(maxsize=16)
def sound(name: str) -> np.ndarray:
    """A media sound (`media.load_audio`) cut to where it is loud, faded in and out."""
    x = media.load_audio(name)
    loud = np.flatnonzero(np.abs(x) > 0.02 * float(np.max(np.abs(x))))
    return faded(x[loud[0]:loud[-1] + 1] if loud.size else x)


def speech_clips() -> list[tuple[str, np.ndarray]]:
    """(name, samples) of every conversation utterance of MIN_UTTERANCE_S or more, and the
    CMU ARCTIC sentence."""
    conv = media.load_audio('conversation')
    clips = [(f'speech:{u.speaker}:{u.text}',
              faded(conv[int(u.start * SAMPLE_RATE):int(u.end * SAMPLE_RATE)]))
             for u in media.utterances() if u.end - u.start >= MIN_UTTERANCE_S]
    return clips + [('speech:arctic_a0007', sound('arctic_a0007'))]


def _plan(scene: Scene, rng: np.random.Generator, per: int, pano_free: list[str]) -> None:
    """Place the events (`per` of each kind) one after another with calm gaps (order shuffled
    by the seed)."""
    cfg = scene.cfg
    items = [k for k in ('object', 'lights', 'clap', 'speech_silence', 'shake', 'turn')
             for _ in range(per)] + (['camera_rate', 'budget'] if cfg.self_effects else [])
    items = [items[i] for i in rng.permutation(len(items))]
    items.insert(int(rng.integers(0, len(items) + 1)), 'vent')
    if cfg.repeats:  # last: habituation to an impact must not fade later claps
        items.append('repeat_block')
    clips = speech_clips()
    order = list(rng.permutation(len(clips)))
    impacts = [media.IMPACT_SOUNDS[i] for i in rng.permutation(len(media.IMPACT_SOUNDS))]
    objects = [pano_free[i] for i in rng.permutation(len(pano_free))]
    dimmed = False

    def gap() -> float:
        return float(rng.uniform(*cfg.gap_s))

    def speech(t: float, kind: str) -> float:
        name, x = clips[order.pop(0) % len(clips)] if order else clips[0]
        scene.add_sound(t, at_active(x, float(rng.uniform(*SPEECH_DB))))
        scene.label(kind, t, t + x.size / SAMPLE_RATE, name)
        return x.size / SAMPLE_RATE

    t = cfg.warmup_s
    for k, item in enumerate(items):
        if item == 'object':
            side = int(rng.integers(*OBJECT_SIDE_PX))
            name = objects[k % len(objects)]
            patch, alpha = cutout(media.photo(name), side, rng)
            scene.objects.append((t, patch, alpha, int(rng.integers(10, cfg.size[0] - side - 10)),
                                  int(rng.integers(10, cfg.size[1] - side - 10))))
            scene.label('object_appears', t, t + 0.5, f'object:{name}')
        elif item == 'lights':
            f = float(rng.uniform(*LIGHTS_DIM))
            scene.gains.append((t, 1.0 / f if dimmed else f))
            scene.label('lights_change', t, t + 0.1, 'lights_on' if dimmed else 'lights_dim')
            dimmed = not dimmed
        elif item == 'clap':
            name = impacts[k % len(impacts)]
            x = at_peak(sound(name), float(rng.uniform(*CLAP_PEAK_DB)))
            scene.add_sound(t, x)
            scene.label('clap', t, t + x.size / SAMPLE_RATE, f'impact:{name}')
        elif item == 'speech_silence':
            t += speech(t, 'speech_in_silence')
        elif item == 'shake':
            dur = float(rng.uniform(*SHAKE_S))
            scene.shakes.append((t, dur, float(rng.uniform(*SHAKE_HZ)),
                                 int(rng.integers(SHAKE_PX[0], SHAKE_PX[1] + 1))))
            scene.label('shake', t, t + dur, 'shake')
        elif item == 'turn':
            scene.turns.append((t, float(rng.uniform(*TURN_RATE))))
            scene.label('turn_still_image', t, t + TURN_S, 'turn_still_image')
        elif item in ('camera_rate', 'budget'):
            back = t + cfg.self_hold_s
            if item == 'camera_rate':
                scene.rates += [(t, cfg.rest_camera_hz), (back, cfg.camera_hz)]
                for s, a, b in ((t, cfg.camera_hz, cfg.rest_camera_hz),
                                (back, cfg.rest_camera_hz, cfg.camera_hz)):
                    scene.label('self_effect', s, s + 0.1, f'camera_rate:{a:g}->{b:g}',
                                modality='vision')
            else:
                scene.budgets += [(t, cfg.budget_high), (back, cfg.budget_low)]
                for s, a, b in ((t, cfg.budget_low, cfg.budget_high),
                                (back, cfg.budget_high, cfg.budget_low)):
                    for _, modality in PLUGINS:
                        scene.label('self_effect', s, s + 0.1, f'budget:{a:g}->{b:g}',
                                    modality=modality)
            t = back
        elif item == 'vent':
            on = t + VENT_RAMP_S
            scene.label('ambient', t, on, 'ventilation_on')
            t = on + gap()
            for _ in range(per):
                t += speech(t, 'speech_after_noise') + gap()
            scene.vent = (on, t)
            scene.label('ambient', t, t + VENT_RAMP_S, 'ventilation_off')
            t += VENT_RAMP_S
        else:  # repeat block
            stim = at_peak(sound(impacts[0]), float(rng.uniform(*REPEAT_PEAK_DB)))
            changed = impacts[1]
            for i in range(cfg.repeats):
                s = t + i * cfg.repeat_gap_s
                scene.add_sound(s, stim)
                scene.label('repeat', s, s + stim.size / SAMPLE_RATE, f'impact:{impacts[0]}',
                            series='repeat0', index=i, target=(i == 0))
            s = t + cfg.repeats * cfg.repeat_gap_s
            x = at_peak(sound(changed), 20 * np.log10(float(np.max(np.abs(stim)))))
            scene.add_sound(s, x)
            scene.label('changed', s, s + x.size / SAMPLE_RATE, f'impact:{changed}',
                        series='repeat0', index=cfg.repeats)
            t = s + x.size / SAMPLE_RATE
        t += gap()
    scene.duration = t


def _background(rng: np.random.Generator, room: np.random.Generator, n: int,
                vent: tuple[float, float] | None, fan_on: bool
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Room noise: its levels, mains frequency and colour drawn from `room`, samples from rng
    (the same generator unless the scene is another day in a given room)."""
    floor_db = float(room.uniform(*FLOOR_DB))
    hum_db = float(room.uniform(*HUM_DB))
    mains = float(room.choice([50.0, 60.0]))
    x = coloured_noise(rng, n, float(room.uniform(1.0, 2.0)), floor_db)
    x += mains_hum(n, mains, hum_db, float(rng.uniform(0, np.pi)))
    if fan_on:
        x += fan(rng, n, FAN_DB)
    vent_db = float(rng.uniform(*VENT_DB))
    if vent is not None:
        x += coloured_noise(rng, n, 1.7, vent_db) * envelope(n, vent[0] - VENT_RAMP_S, vent[1],
                                                             VENT_RAMP_S)
    return x, {'floor_dbfs': floor_db, 'hum_dbfs': hum_db, 'mains_hz': mains,
               'fan_dbfs': FAN_DB if fan_on else None, 'vent_dbfs': vent_db}


def _realistic_background(rng: np.random.Generator, room: np.random.Generator, n: int,
                          scene: Scene, room_seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    return _background(rng, room, n, scene.vent, room_seed % FAN_EVERY == 1)


def _sensor(room: np.random.Generator) -> SensorNoise:
    return SensorNoise(float(room.uniform(*SENSOR_GAIN)), float(room.uniform(*READ_DN)),
                       int(room.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))


# (room generator, scene generator, samples, planned scene, the room's seed) -> (samples,
# the levels and sources to record in the labels)
Background = Callable[[np.random.Generator, np.random.Generator, int, Scene, int],
                      tuple[np.ndarray, dict[str, Any]]]


@dataclass(frozen=True)
class Family:
    """A family of scenes: the events are planned alike; the room differs.

    Attributes:
        name: labels' program prefix and cache tag ('realistic', 'busy').
        version: generator version (part of the cache key: bump it when the content changes).
        programs: program -> (settings, events of each kind).
        background: the room's sound (`Background`).
        sensor: the camera's sensor noise, drawn from the room's generator.
        look: the camera's exposure drift and the body's vibration (`scene_render.Look`).
    """

    name: str
    version: int
    programs: dict[str, tuple[SceneConfig, int]]
    background: Background
    sensor: Callable[[np.random.Generator], SensorNoise]
    look: Look = Look()


REALISTIC = Family('realistic', GENERATOR_VERSION,
                   {'full': (SceneConfig(), 2), 'short': (SHORT, 1)}, _realistic_background,
                   _sensor)


@dataclass
class _Built:
    """A planned scene with what rendering needs next."""

    scene: Scene
    pano: np.ndarray
    noise: SensorNoise
    labels: ScenarioLabels
    rng: np.random.Generator


def _build(seed: int, program: str, cfg: SceneConfig | None, room: int | None = None,
           family: Family = REALISTIC) -> _Built:
    if program not in family.programs:
        raise ScenarioError(f"unknown {family.name} program '{program}' "
                            f"({', '.join(family.programs)})")
    cfg = cfg or family.programs[program][0]
    rng = np.random.default_rng(seed)
    # What makes the place and the robot (panorama, room noise levels, fan, camera sensor)
    # comes from the room's generator; with no room it is the scene's own, draw for draw.
    place = rng if room is None else np.random.default_rng(room)
    try:
        pano, pano_names = _panorama(place, cfg.size[1] + 2 * MARGIN_PX)
        free = [p for p in media.EVAL_PHOTOS if p not in pano_names
                and not (p.startswith('motorcycle') and any(q.startswith('motorcycle')
                                                            for q in pano_names))]
        scene = Scene(cfg, 0.0, np.zeros(0, np.float32), gains=[(0.0, 1.0)],
                       rates=[(0.0, cfg.camera_hz)], budgets=[(0.0, cfg.budget_low)])
        # Plan on a buffer longer than any program, then cut it to the scene's length.
        scene.audio = np.zeros(int(MAX_SCENE_S * SAMPLE_RATE), np.float32)
        _plan(scene, rng, family.programs[program][1], free)
    except media.MediaError as err:
        raise ScenarioError(str(err)) from err
    duration = scene.duration
    calm = calm_spans(duration, cfg.warmup_s, scene.events)
    calm_s = sum(b - a for a, b in calm)
    if calm_s < cfg.min_calm_s:
        duration += cfg.min_calm_s - calm_s
        calm = calm_spans(duration, cfg.warmup_s, scene.events)
    if duration > MAX_SCENE_S:
        raise ScenarioError(f'scene of {duration:.0f} s exceeds {MAX_SCENE_S:.0f} s')
    scene.duration = duration
    n_audio = int(duration * SAMPLE_RATE) // FRAME_SAMPLES * FRAME_SAMPLES
    try:
        background, levels = family.background(rng, place, n_audio, scene,
                                               seed if room is None else room)
    except media.MediaError as err:
        raise ScenarioError(str(err)) from err
    scene.audio = scene.audio[:n_audio] + background
    noise = family.sensor(place)
    events = sorted((replace(e, start=T0 + e.start, end=T0 + e.end) for e in scene.events),
                    key=lambda e: (e.start, e.kind, e.modality))
    labels = ScenarioLabels(
        seed=seed, program=f'{family.name}_{program}', duration_s=duration, start=T0,
        warmup_s=cfg.warmup_s, events=events, calm=[(T0 + a, T0 + b) for a, b in calm],
        settings={'generator_version': family.version, 'config': asdict(cfg),
                  'panorama': pano_names, 'sensor': asdict(noise), **levels,
                  'camera_rates': scene.rates, 'budgets': scene.budgets,
                  **({} if room is None else {'room': room})})
    return _Built(scene, pano, noise, labels, rng)


def plan_realistic_scene(seed: int, program: str = 'full', cfg: SceneConfig | None = None,
                         room: int | None = None, family: Family = REALISTIC) -> ScenarioLabels:
    """The labels `make_scene` would write for these arguments, without the bag.

    Raises:
        ScenarioError: unknown program or missing media.
    """
    return _build(seed, program, cfg, room, family).labels


def make_realistic_scene(out_bag: Path, seed: int, program: str = 'full',
                         cfg: SceneConfig | None = None, room: int | None = None
                         ) -> ScenarioLabels:
    """Write a realistic labelled scene bag (MCAP) and its labels JSON beside it.

    Args:
        out_bag: bag folder to create (must not exist).
        seed: everything random (layout, content, levels, noise) derives from it.
        program: 'full' (every kind twice, >= cfg.min_calm_s calm) or 'short' (each once,
            about 80 s, with the SHORT settings unless cfg is given).
        cfg: scene settings.
        room: another day in the room of this seed: the panorama, the room noise's levels,
            mains frequency, colour and fan, and the camera's sensor noise come from it;
            events, their content, the pan and every noise sample from `seed` (None: all
            from `seed`, the room of its own).

    Returns:
        The labels (also written to `labels_path(out_bag)`).

    Raises:
        ScenarioError: unknown program, missing media, or the bag cannot be written.
    """
    return make_scene(out_bag, seed, program, cfg, room)


def make_scene(out_bag: Path, seed: int, program: str = 'full', cfg: SceneConfig | None = None,
               room: int | None = None, family: Family = REALISTIC) -> ScenarioLabels:
    """`make_realistic_scene` for a scene of any family (`Family`): the same arguments."""
    built = _build(seed, program, cfg, room, family)
    out_bag = Path(out_bag)
    try:
        with Writer(out_bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            write_scene(writer, built.scene, built.pano, built.noise, built.rng, family.look)
    except (WriterError, FileExistsError) as err:
        raise ScenarioError(f'cannot write scene bag {out_bag}: {err}') from err
    labels_path(out_bag).write_text(json.dumps(built.labels.to_json(), indent=1))
    return built.labels


def _panorama(rng: np.random.Generator, height: int) -> tuple[np.ndarray, list[str]]:
    names: list[str] = []
    for i in rng.permutation(len(media.EVAL_PHOTOS)):
        name = media.EVAL_PHOTOS[i]
        if name.startswith('motorcycle') and any(n.startswith('motorcycle') for n in names):
            continue  # the two motorcycle photos are one street seen twice
        names.append(name)
        if len(names) == 3:
            break
    parts = [resize_to_height(media.photo(n), height) for n in names]
    return np.concatenate(parts, axis=1).astype(np.float32), names
