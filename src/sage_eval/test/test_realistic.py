"""Realistic scenes: deterministic per seed, labels that match what the bag holds, calm time.

One compact scene with every event kind, the robot's own steps and a repeat block is written
once (about 10 s) and read back with rosbags; the checks look at the bag's samples, not at the
generator's internals.
"""
from __future__ import annotations

from dataclasses import replace
import hashlib
import json

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from sage_eval.realistic import (make_realistic_scene, plan_realistic_scene,
                                 REPORT_SEEDS, SHORT, TUNING_SEEDS, TURN_S)
from sage_eval.bagio import AUDIO_TOPIC, BUDGET_TOPIC, CAMERA_TOPIC, IMU_TOPIC, typestore
from sage_eval.inputs import iter_inputs
from sage_eval.scenario import AUDIO_WINDOW_S, labels_path

# Neither a tuning nor a report seed; of seeds 40-99 and 120-139 one whose budget steps end
# first (16 s into the scene, 57's at 85 s): the offline replay below reads that far.
SEED = 84
COMPACT = replace(SHORT, self_effects=True, repeats=5, repeat_gap_s=3.0, self_hold_s=6.0)
THUMB = (56, 56)


def _read(bag):
    """Every message of the bag: digest, audio, IMU, grey thumbnails, budgets."""
    digest = hashlib.sha256()
    audio, imu, frames, budgets = [], [], [], []
    with AnyReader([bag], default_typestore=typestore()) as reader:
        for conn, logtime, raw in reader.messages():
            digest.update(conn.topic.encode() + logtime.to_bytes(8, 'little') + bytes(raw))
            msg = reader.deserialize(raw, conn.msgtype)
            t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if conn.topic == AUDIO_TOPIC:
                audio.append(np.frombuffer(bytes(msg.data), '<i2'))
            elif conn.topic == IMU_TOPIC:
                a, w = msg.linear_acceleration, msg.angular_velocity
                imu.append((t, a.x, a.y, a.z, w.x, w.y, w.z))
            elif conn.topic == CAMERA_TOPIC:
                rgb = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
                grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
                frames.append((t, cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA)
                               .astype(np.float32)))
            elif conn.topic == BUDGET_TOPIC:
                budgets.append((t, {a.plugin: a.atp for a in msg.allocations}))
    return {'digest': digest.hexdigest(), 'audio': np.concatenate(audio).astype(np.float64)
            / 32768.0, 'imu': np.array(imu), 'frame_t': np.array([f[0] for f in frames]),
            'frames': np.stack([f[1] for f in frames]), 'budgets': budgets}


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('realistic')
    bag = tmp / 'compact'
    labels = make_realistic_scene(bag, SEED, 'short', COMPACT)
    return bag, labels, _read(bag)


def _events(labels, kind):
    out = [e for e in labels.events if e.kind == kind]
    assert out, f'no {kind} event in the scene'
    return out


def _rms_db(audio, labels, t0, t1):
    i, j = (int((t - labels.start) * 16000) for t in (t0, t1))
    return 20 * np.log10(np.sqrt(np.mean(audio[i:j] ** 2)) + 1e-12)


def _frame(data, t):
    """Index of the first frame at or after t."""
    return int(np.searchsorted(data['frame_t'], t - 1e-6))


def test_the_same_seed_writes_the_same_bag_and_another_seed_another_scene(scene, tmp_path):
    bag, labels, data = scene
    again = make_realistic_scene(tmp_path / 'again', SEED, 'short', COMPACT)
    assert _read(tmp_path / 'again')['digest'] == data['digest']
    assert json.loads(labels_path(tmp_path / 'again').read_text()) == \
        json.loads(labels_path(bag).read_text())
    assert again.events == labels.events
    other = plan_realistic_scene(SEED + 1, 'short', COMPACT)
    assert [(e.kind, e.start, e.name) for e in other.events] != \
        [(e.kind, e.start, e.name) for e in labels.events]


def test_another_day_in_a_room_keeps_the_place_and_the_camera_and_changes_what_happens():
    # `sage bench sleep` replays day 2 in day 1's room: same photos, room noise and sensor.
    day1, day2 = (plan_realistic_scene(s, 'short', COMPACT, room=SEED) for s in (SEED, SEED + 1))
    place = ('panorama', 'sensor', 'floor_dbfs', 'hum_dbfs', 'mains_hz', 'fan_dbfs')
    assert {k: day1.settings[k] for k in place} == {k: day2.settings[k] for k in place}
    assert day2.settings['room'] == SEED
    assert [(e.kind, e.start, e.name) for e in day1.events] != \
        [(e.kind, e.start, e.name) for e in day2.events]
    # Without a room every scene is a place of its own.
    assert 'room' not in plan_realistic_scene(SEED + 1, 'short', COMPACT).settings
    others = [plan_realistic_scene(s, 'short', COMPACT).settings['panorama']
              for s in range(SEED, SEED + 4)]
    assert len({tuple(p) for p in others}) > 1


def test_audio_rises_at_every_sound_label_over_the_room_noise(scene):
    _, labels, data = scene
    audio = data['audio']
    for kind in ('clap', 'repeat', 'changed'):
        for e in _events(labels, kind):
            before = _rms_db(audio, labels, e.start - 1.5, e.start - 0.1)
            onset = _rms_db(audio, labels, e.start, e.start + 0.1)
            assert onset > before + 15.0, (kind, e.name, before, onset)
    for kind in ('speech_in_silence', 'speech_after_noise'):
        for e in _events(labels, kind):
            before = _rms_db(audio, labels, e.start - 1.5, e.start - 0.1)
            during = _rms_db(audio, labels, e.start, e.end)
            assert during > before + 3.0, (kind, e.name, before, during)
    # Speech after noise: the ventilation really raised the room's level before it.
    vent_on = [e for e in labels.events if e.name == 'ventilation_on'][0]
    quiet = _rms_db(audio, labels, vent_on.start - 4.0, vent_on.start - 0.5)
    speech = _events(labels, 'speech_after_noise')[0]
    noisy = _rms_db(audio, labels, speech.start - 3.0, speech.start - 0.5)
    assert noisy > quiet + 3.0, (quiet, noisy)
    # Room noise stays at realistic levels: between -65 and -25 dBFS in calm time.
    for a, b in labels.calm:
        assert -65.0 < _rms_db(audio, labels, a, b) < -25.0


def test_the_image_changes_locally_where_an_object_appears_and_globally_when_lights_change(
        scene):
    _, labels, data = scene
    frames = data['frames']

    def block_change(i, j):
        d = np.abs(frames[j] - frames[i]).reshape(7, 8, 7, 8).mean(axis=(1, 3))
        return float(d.max())

    lag = 4  # frames (about 0.27 s at 15 fps)
    calm = [block_change(i, i + lag) for i in range(0, len(frames) - lag, 3)
            if any(a <= data['frame_t'][i] and data['frame_t'][i + lag] < b
                   for a, b in labels.calm)]
    for e in _events(labels, 'object_appears'):
        i = _frame(data, e.start) - 1
        change = block_change(i, i + lag)
        assert change > max(15.0, 2.0 * float(np.percentile(calm, 95))), (change, calm)
    for e in _events(labels, 'lights_change'):
        i = _frame(data, e.start)
        ratio = frames[i + 2].mean() / frames[i - 1].mean()
        assert (ratio < 0.8) if e.name == 'lights_dim' else (ratio > 1.25), (e.name, ratio)


def test_imu_turns_while_the_image_stays_still_and_shakes_are_in_the_accelerometer(scene):
    _, labels, data = scene
    imu, frames, ft = data['imu'], data['frames'], data['frame_t']
    motion = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))
    calm_motion = [m for m, t in zip(motion, ft[1:]) if any(a <= t < b for a, b in labels.calm)]
    for e in _events(labels, 'turn_still_image'):
        inside = (imu[:, 0] >= e.start) & (imu[:, 0] <= e.start + TURN_S)
        assert np.abs(imu[inside, 6]).max() > 0.5  # yaw rate, rad/s
        moving = motion[(ft[1:] >= e.start) & (ft[1:] <= e.start + TURN_S)]
        assert moving.max() < 1.5 * np.percentile(calm_motion, 95) + 0.5, moving
    # Dynamic acceleration: away from the resting vector (gravity plus the seed's bias).
    dyn = np.linalg.norm(imu[:, 1:4] - np.median(imu[:, 1:4], axis=0), axis=1)
    calm_dyn = dyn[[any(a <= t < b for a, b in labels.calm) for t in imu[:, 0]]]
    assert calm_dyn.max() < 0.5  # noise and bias only
    for e in _events(labels, 'shake'):
        inside = (imu[:, 0] >= e.start) & (imu[:, 0] <= e.start + 0.5)
        assert dyn[inside].max() > 2.0


def test_the_robots_own_steps_are_in_the_bag_as_labelled(scene):
    _, labels, data = scene
    selfs = [e for e in labels.events if e.kind == 'self_effect']
    assert all(not e.target for e in selfs)
    down = [e for e in selfs if e.name == 'camera_rate:15->5'][0]
    up = [e for e in selfs if e.name == 'camera_rate:5->15'][0]
    ft = data['frame_t']
    slow = np.diff(ft[(ft >= down.start) & (ft < up.start)])
    fast = np.diff(ft[(ft >= up.start) & (ft < up.start + 3.0)])
    assert np.allclose(slow, 1 / 5, atol=1e-3) and np.allclose(fast, 1 / 15, atol=1e-3)
    hi = [e for e in selfs if e.name == 'budget:2->6'][0]
    lo = [e for e in selfs if e.name == 'budget:6->2'][0]
    for t, atp in data['budgets']:
        want = 6.0 if hi.start <= t < lo.start else 2.0
        assert atp == {'vision_encoder': want, 'audio_encoder': want}, (t - labels.start, atp)
    # Nothing else happens while the robot steps: no target event within 3 s of a step.
    for s in selfs:
        assert not [e for e in labels.events
                    if e.target and abs(e.start - s.start) < 3.0], s.name


def test_offline_replay_refines_with_the_recorded_budget_as_the_live_encoders_do(scene):
    bag, labels, _ = scene
    hi = [e for e in labels.events if e.name == 'budget:2->6'][0].start
    lo = [e for e in labels.events if e.name == 'budget:6->2'][0].start
    params = {'vision_encoder': {'irp.max_iterations': 6, 'irp.default_atp': 2.0},
              'audio_encoder': {'irp.max_iterations': 9, 'irp.default_atp': 4.0}}
    spent = {'vision': [], 'audio': []}
    for item in iter_inputs(bag, params):
        if getattr(item, 'stamp', 0.0) > lo + 6.0 + 2 * AUDIO_WINDOW_S:
            break  # the inputs come in stamp order: the rest of the scene is not looked at
        if getattr(item, 'modality', '') in spent and item.stamp < lo + 6.0:
            # An audio window is encoded when it is complete, a window after its stamp.
            done = item.stamp + (AUDIO_WINDOW_S if item.modality == 'audio' else 0.0)
            spent[item.modality].append((done, item.atp_spent))
    for modality, rows in spent.items():
        high = [a for t, a in rows if hi + 0.2 <= t < lo]
        low = [a for t, a in rows if t < hi]
        # 2 ATP per 0.1 s tick: never more than 2 per input (and some inputs find the tick
        # spent); with 6 per tick, refinement goes beyond 2 steps.
        assert max(low) <= 2.0 and max(high) > 2.0, (modality, max(low), max(high))
    ticks = {}
    for t, a in spent['vision']:
        if t < hi:
            key = int(round((t - labels.start) * 1e6)) // 100_000
            ticks[key] = ticks.get(key, 0.0) + a
    assert max(ticks.values()) <= 2.0 + 1e-6  # one tick's allocation is shared, not reset


def test_full_scenes_hold_five_calm_minutes_and_every_kind_and_the_seed_sets_are_disjoint():
    assert not set(TUNING_SEEDS) & set(REPORT_SEEDS) and len(REPORT_SEEDS) >= 10
    # One full plan (20-30 s of room noise rendered for 15 minutes): the calm time and the kinds
    # are the program's, the same for every seed (three seeds were planned before).
    for seed in (REPORT_SEEDS[0],):
        labels = plan_realistic_scene(seed)
        assert sum(b - a for a, b in labels.calm) >= 300.0
        kinds = {}
        for e in labels.events:
            kinds[e.kind] = kinds.get(e.kind, 0) + int(e.target)
            assert e.start >= labels.start + labels.warmup_s
        assert kinds == {'object_appears': 2, 'lights_change': 2, 'clap': 2,
                         'speech_in_silence': 2, 'speech_after_noise': 2, 'shake': 2,
                         'turn_still_image': 2, 'repeat': 1, 'changed': 1, 'self_effect': 0,
                         'ambient': 0}
        names = {e.name for e in labels.events if e.kind == 'self_effect'}
        assert names == {'camera_rate:15->5', 'camera_rate:5->15', 'budget:2->6',
                         'budget:6->2'}
        # No calm time overlaps an event of any kind.
        for e in labels.events:
            assert not [c for c in labels.calm if c[0] < e.end and e.start < c[1]], e
