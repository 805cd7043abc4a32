"""Busy rooms: labelled scenes in rooms the realistic generator does not make.

The events are planned as in `sage_eval.realistic` (an object appears, the lights change, a
clap, speech, a shake, a turn the image does not follow, speech over ventilation), each kind
once, then a sound repeated every 2 s (ten times; only the first is a target) and a changed
sound. The room is what differs:

- sound (`sage_eval.busy_sound`, from real recordings): air handling or machinery whose level
  wanders by a few dB over about half a minute, with, by the room's seed (`ROOMS`), a wall
  clock ticking once a second, a device beeping, people talking in the next room, traffic
  behind a window or a TV; under it the microphone's noise floor and mains hum;
- camera: a noisier sensor (a dim room: more gain, more read noise, stronger JPEG) and a
  stronger, faster auto-exposure drift;
- IMU: a motor's steady vibration (20-45 Hz, aliased by the 100 Hz IMU as a real one is).

All of these are the room, not events: attending to them in calm time is a false alarm. The
labels' settings name the room's backgrounds, their levels and where each comes from.

Seeds: TUNING_SEEDS may be looked at while tuning; REPORT_SEEDS only for reported figures. They
do not overlap the realistic scenes' seeds.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sage_eval import busy_sound
from sage_eval.camera_model import SensorNoise
from sage_eval.realistic import (Family, make_scene, plan_realistic_scene, VENT_DB,
                                 VENT_RAMP_S)
from sage_eval.room import coloured_noise, envelope, mains_hum
from sage_eval.scenario import ScenarioLabels
from sage_eval.scene_plan import Scene, SceneConfig
from sage_eval.scene_render import Look

TUNING_SEEDS = tuple(range(300, 330))
REPORT_SEEDS = tuple(range(400, 420))
SEED_SETS = {'tuning': TUNING_SEEDS, 'report': REPORT_SEEDS}
# Part of the cache key of generated scenes: bump it whenever the content changes.
GENERATOR_VERSION = 1

# Each kind once, at least 3 calm minutes, the repeated sound every 2 s ten times (~5 min).
FULL = SceneConfig(warmup_s=20.0, gap_s=(12.0, 18.0), min_calm_s=180.0, self_effects=False,
                   repeats=10, repeat_gap_s=2.0)
# For tests: little calm (about 7 s, at the end), six repeats (~60 s).
SHORT = replace(FULL, warmup_s=3.0, gap_s=(1.0, 1.5), min_calm_s=8.0, repeats=6)

# The rooms, by seed % len(ROOMS): a wandering base (air handling, machinery) and what else
# is heard in it.
ROOMS = (
    ('air_handling', 'clock', 'distant_talk'),
    ('machinery', 'clock', 'beeps'),
    ('air_handling', 'traffic', 'beeps'),
    ('machinery', 'clock', 'tv'),
    ('air_handling', 'machinery', 'clock', 'distant_talk'),
    ('air_handling', 'clock', 'traffic'),
    ('machinery', 'tv', 'beeps'),
)
# Levels in dBFS (RMS; peak for the clock and beeps), each drawn from its range: together
# -42..-33 dBFS, so the events' speech (realistic.SPEECH_DB, -30..-22) is 3-12 dB above the room.
FLOOR_DB = (-60.0, -52.0)
HUM_DB = (-62.0, -54.0)
AIR_DB = (-42.0, -35.0)
MACHINERY_DB = (-44.0, -36.0)
WANDER_DB = (2.0, 4.0)  # peak level wander of air handling and machinery
CLOCK_PEAK_DB = (-32.0, -24.0)
BEEP_PEAK_DB = (-30.0, -22.0)
BEEP_EVERY_S = (3.0, 8.0)
TALK_DB = (-47.0, -40.0)
TRAFFIC_DB = (-46.0, -38.0)
TRAFFIC_PER_S = (0.3, 0.8)
TV_DB = (-43.0, -36.0)
# Camera in a dim room (compare realistic.SENSOR_GAIN, READ_DN, JPEG_QUALITY).
SENSOR_GAIN = (0.3, 0.6)
READ_DN = (3.0, 6.0)
JPEG_QUALITY = (60, 80)
LOOK = Look(ae_drift=0.1, ae_period_s=(20.0, 45.0), vibration_hz=(20.0, 45.0),
            vibration_accel=0.3, vibration_gyro=0.02)

SOURCES = {
    'air_handling': 'recorded: wind.wav (openttd-opensfx), grains low-passed at 2.5 kHz; '
                    'level wander synthesised',
    'machinery': 'recorded: lift_motor.wav (openttd-opensfx), grains; level wander synthesised',
    'clock': "recorded: shutter.wav's first click (sound-theme-freedesktop), once a second",
    'beeps': 'recorded: beep.wav (openttd-opensfx)',
    'distant_talk': 'recorded: conversation.wav utterances and arctic_a0007.wav, low-passed; '
                    'reverberation synthesised',
    'traffic': 'recorded: bus_passing, truck_start, train_passing (openttd-opensfx), '
               'low-passed; arrival times random',
    'tv': 'recorded: music_loop.wav (pygame) and conversation.wav utterances, band-passed; '
          'reverberation synthesised',
    'floor': 'synthesised: pink/brown noise (the microphone and room floor)',
    'hum': 'synthesised: mains hum and harmonics',
}


def room_of(seed: int) -> tuple[str, ...]:
    """The backgrounds heard in the room of a seed."""
    return ROOMS[seed % len(ROOMS)]


def _background(rng: np.random.Generator, room: np.random.Generator, n: int, scene: Scene,
                room_seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The busy room's sound: levels and choices from `room`, samples from `rng`; the
    ventilation stretch of the plan (speech over it) on top, as in the realistic scenes."""
    kinds = room_of(room_seed)
    floor_db = float(room.uniform(*FLOOR_DB))
    x = coloured_noise(rng, n, float(room.uniform(1.0, 2.0)), floor_db)
    mains = float(room.choice([50.0, 60.0]))
    hum_db = float(room.uniform(*HUM_DB))
    x += mains_hum(n, mains, hum_db, float(rng.uniform(0, np.pi)))
    made: list[dict[str, Any]] = [
        {'name': 'floor', 'dbfs': floor_db, 'source': SOURCES['floor']},
        {'name': 'hum', 'dbfs': hum_db, 'mains_hz': mains, 'source': SOURCES['hum']}]
    for kind in kinds:
        entry: dict[str, Any] = {'name': kind, 'source': SOURCES[kind]}
        if kind in ('air_handling', 'machinery'):
            level = float(room.uniform(*(AIR_DB if kind == 'air_handling' else MACHINERY_DB)))
            depth = float(room.uniform(*WANDER_DB))
            make = busy_sound.air_handling if kind == 'air_handling' else busy_sound.machinery
            x += make(n, rng, level, depth)
            entry.update(dbfs=level, wander_db=depth)
        elif kind == 'clock':
            level = float(room.uniform(*CLOCK_PEAK_DB))
            x += busy_sound.clock(n, rng, level)
            entry.update(peak_dbfs=level, period_s=1.0)
        elif kind == 'beeps':
            level = float(room.uniform(*BEEP_PEAK_DB))
            every = float(room.uniform(*BEEP_EVERY_S))
            double = bool(room.integers(0, 2))
            x += busy_sound.beeps(n, rng, level, every, double)
            entry.update(peak_dbfs=level, every_s=every, double=double)
        elif kind == 'distant_talk':
            level = float(room.uniform(*TALK_DB))
            x += busy_sound.distant_talk(n, rng, level)
            entry.update(dbfs=level)
        elif kind == 'traffic':
            level = float(room.uniform(*TRAFFIC_DB))
            per_s = float(room.uniform(*TRAFFIC_PER_S))
            x += busy_sound.traffic(n, rng, level, per_s)
            entry.update(dbfs=level, vehicles_per_s=per_s)
        else:  # tv
            level = float(room.uniform(*TV_DB))
            x += busy_sound.tv(n, rng, level)
            entry.update(dbfs=level)
        made.append(entry)
    # The plan's ventilation stretch (speech after noise), as the realistic scenes make it.
    vent_db = float(rng.uniform(*VENT_DB))
    if scene.vent is not None:
        x += coloured_noise(rng, n, 1.7, vent_db) * envelope(
            n, scene.vent[0] - VENT_RAMP_S, scene.vent[1], VENT_RAMP_S)
    return x, {'room_kind': '+'.join(kinds), 'backgrounds': made, 'vent_dbfs': vent_db}


def _sensor(room: np.random.Generator) -> SensorNoise:
    return SensorNoise(float(room.uniform(*SENSOR_GAIN)), float(room.uniform(*READ_DN)),
                       int(room.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))


BUSY = Family('busy', GENERATOR_VERSION, {'full': (FULL, 1), 'short': (SHORT, 1)},
              _background, _sensor, LOOK)
PROGRAMS = tuple(BUSY.programs)


def plan_busy_scene(seed: int, program: str = 'full', cfg: SceneConfig | None = None
                    ) -> ScenarioLabels:
    """The labels `make_busy_scene` would write, without the bag (renders the room's sound).

    Raises:
        ScenarioError: unknown program or missing media.
    """
    return plan_realistic_scene(seed, program, cfg, family=BUSY)


def make_busy_scene(out_bag: Path, seed: int, program: str = 'full',
                    cfg: SceneConfig | None = None) -> ScenarioLabels:
    """Write a busy-room labelled scene bag (MCAP) and its labels JSON beside it.

    Args:
        out_bag: bag folder to create (must not exist).
        seed: everything random derives from it; seed % len(ROOMS) picks the room.
        program: 'full' (~5 min, >= 3 calm minutes) or 'short' (~60 s, for tests).
        cfg: scene settings instead of the program's.

    Raises:
        ScenarioError: unknown program, missing media, or the bag cannot be written.
    """
    return make_scene(out_bag, seed, program, cfg, family=BUSY)
