"""Busy rooms: one short scene (~60 s) is written twice and read back with rosbags; the room's
backgrounds are named in its labels and are in the bag (a clock ticking once a second, a
vibrating body), and the scorer reports recall, false alarms and habituation on its labels.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
import hashlib
import json

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from sage_eval import busy
from sage_eval.bagio import AUDIO_TOPIC, IMU_TOPIC, typestore
from sage_eval.busy import make_busy_scene, room_of
from sage_eval.salience_score import score_scene, summarise
from sage_eval.scenario import AUDIO_WINDOW_S, labels_path

# Neither a tuning nor a report seed; its room (350 % 7 = 0) has a clock.
SEED = 350
ROOM = ('air_handling', 'clock', 'distant_talk')
TARGET_KINDS = {'object_appears', 'lights_change', 'clap', 'speech_in_silence',
                'speech_after_noise', 'shake', 'turn_still_image', 'repeat', 'changed'}


def _read(bag):
    digest = hashlib.sha256()
    audio, imu = [], []
    with AnyReader([bag], default_typestore=typestore()) as reader:
        for conn, logtime, raw in reader.messages():
            digest.update(conn.topic.encode() + logtime.to_bytes(8, 'little') + bytes(raw))
            if conn.topic == AUDIO_TOPIC:
                msg = reader.deserialize(raw, conn.msgtype)
                audio.append(np.frombuffer(bytes(msg.data), '<i2'))
            elif conn.topic == IMU_TOPIC:
                msg = reader.deserialize(raw, conn.msgtype)
                t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                imu.append((t, msg.linear_acceleration.x))
    return digest.hexdigest(), np.concatenate(audio) / 32768.0, np.array(imu)


def _made(bag):
    return make_busy_scene(bag, SEED, 'short'), _read(bag)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    """The scene written twice from the same seed, at once (one core each)."""
    tmp = tmp_path_factory.mktemp('busy')
    with ProcessPoolExecutor(max_workers=2) as pool:
        made = [pool.submit(_made, tmp / name) for name in ('short', 'again')]
        return [(tmp / name, *m.result()) for name, m in zip(('short', 'again'), made)]


@pytest.fixture(scope='module')
def scene(scenes):
    return scenes[0]


def test_the_same_seed_writes_the_same_busy_bag(scenes):
    (bag, labels, (digest, _, _)), (again_bag, again, (again_digest, _, _)) = scenes
    assert again_digest == digest
    assert json.loads(labels_path(again_bag).read_text()) == \
        json.loads(labels_path(bag).read_text())
    assert again.events == labels.events


def test_the_room_and_its_sources_are_named_and_the_events_are_labelled(scene):
    _, labels, _ = scene
    assert room_of(SEED) == ROOM and labels.program == 'busy_short'
    assert labels.settings['room_kind'] == '+'.join(ROOM)
    backgrounds = labels.settings['backgrounds']
    assert [b['name'] for b in backgrounds] == ['floor', 'hum', *ROOM]
    for b in backgrounds[2:]:
        assert b['source'].startswith('recorded:'), b
    assert -45.0 < backgrounds[2]['dbfs'] < -30.0 and 2.0 <= backgrounds[2]['wander_db'] <= 4.0
    assert {e.kind for e in labels.events if e.target} == TARGET_KINDS
    reps = [e for e in labels.events if e.kind == 'repeat']
    assert len(reps) >= 6 and [e.target for e in reps] == [True] + [False] * (len(reps) - 1)
    assert np.diff([e.start for e in reps]) == pytest.approx([2.0] * (len(reps) - 1))
    assert 30.0 <= labels.duration_s <= 80.0
    assert sum(b - a for a, b in labels.calm) >= 5.0
    assert set(busy.TUNING_SEEDS).isdisjoint(busy.REPORT_SEEDS) and len(busy.REPORT_SEEDS) >= 10


def test_the_clock_ticks_once_a_second_and_the_body_vibrates_in_calm_time(scene):
    _, labels, (_, audio, imu) = scene
    a, b = max(labels.calm, key=lambda s: s[1] - s[0])
    assert b - a >= 3.0
    # High-passed energy in 5 ms frames, folded at 1 s: the ticks stack up in one place.
    x = np.diff(audio[int((a - labels.start) * 16000):int((b - labels.start) * 16000)])
    frames = np.square(x[:x.size // 80 * 80]).reshape(-1, 80).mean(axis=1)
    folded = frames[:frames.size // 200 * 200].reshape(-1, 200).mean(axis=0)
    assert folded.max() > 4.0 * np.median(folded)
    # The motor: far above the accelerometer's noise (0.04 m/s^2) while nothing happens.
    calm = imu[(imu[:, 0] >= a) & (imu[:, 0] < b), 1]
    assert float(np.std(calm)) > 0.15


def _decisions(labels, repeat_attend):
    """Quiet inputs of every modality, an attended one at every target event (a repeat
    attended as repeat_attend says, its salience as given) and one in calm audio time."""
    out = []
    for modality, step in (('vision', 1 / 15), ('audio', 0.256), ('imu', 0.05)):
        for i in range(int(labels.duration_s / step)):
            out.append({'stamp': labels.start + i * step, 'modality': modality,
                        'salience': 0.1, 'attend': False})

    def attended(modality, t, salience, attend=True):
        shift = AUDIO_WINDOW_S if modality == 'audio' else 0.0
        out.append({'stamp': t - shift, 'modality': modality, 'salience': salience,
                    'attend': attend, 'arousal': 0.9})

    for e in labels.events:
        if e.kind == 'repeat':
            attend, salience = repeat_attend[e.index]
            attended('audio', e.start + 0.2, salience, attend)
        elif e.target:
            attended(e.modality, e.start + 0.2, 0.9)
    a, b = labels.calm[-1]
    attended('audio', (a + b) / 2, 0.7)
    return sorted(out, key=lambda d: d['stamp'])


def test_the_score_reports_recall_alarms_and_habituation_with_rises(scene):
    _, labels, _ = scene
    n = sum(1 for e in labels.events if e.kind == 'repeat')
    # Attended twice, habituated at the third, attended again at the fourth.
    plan = [(True, 0.9), (True, 0.8), (False, 0.3), (True, 0.7)] + [(False, 0.2)] * (n - 4)
    report = score_scene(_decisions(labels, plan), labels)
    assert {k.split('/')[0] for k in report['by_kind']} == TARGET_KINDS
    assert all(v['recall'] == 1.0 for v in report['by_kind'].values())
    assert report['false_alarms']['audio'] == 1 and report['false_alarms']['vision'] == 0
    assert report['repeat_attended'] == [p[0] for p in plan]
    assert report['habituated_at'] == 2 and report['repeat_rises'] == 1
    assert report['habituation_drop'] == pytest.approx(1 - np.mean([p[1] for p in plan[-3:]])
                                                       / 0.85)
    calm = report['calm_minutes']
    assert report['false_alarms_per_min']['audio'] == pytest.approx(1 / calm)
    never = score_scene(_decisions(labels, [(True, 0.9)] * n), labels)
    assert never['habituated_at'] is None and never['repeat_rises'] == 0
    summary = summarise([report, never])
    assert summary['repeat_rises'] == {'total': 1, 'worst': 1, 'mean': 0.5, 'n': 2,
                                       'never_habituated': 1}
    assert summary['habituation_drop']['worst'] == pytest.approx(0.0)
