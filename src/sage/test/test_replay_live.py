"""Live graph, offline replay and bag playback decide alike on the same inputs.

A sensors -> encoders -> SNARC -> memory graph runs on the embedded scene while `sage bag
record` keeps the sensor topics and the live /sage/salience. The offline replay of that bag
(`replay_bag`, the same cores in one process) and a playback of the bag into a fresh graph
(`sage bag play`) must reach the same attend decisions as the live run, input by input.

Tolerance: live nodes see inputs through best-effort DDS and the memory node echoes stored
experiences to SNARC a few ms later than the offline replay adds them, so a few decisions near
the threshold may differ. Matched inputs must agree on attend in at least 90 % of cases; how
many inputs match depends on best-effort transport (see MIN_OFFLINE_COVERAGE).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

import pytest

from sage.environment import graph_env
from sage.profile import load_profile
from sage.supervisor import Supervisor, SupervisorConfig

pytestmark = pytest.mark.graph

SENSOR_TOPICS = ['/sage/camera/image_raw', '/sage/audio/frames', '/sage/imu/data']
RECORD_S = 16.0
MIN_AGREEMENT = 0.9
# Coverage = share of the live-scored inputs that the other run scored too. Sensor topics are
# best effort: on 2 busy cores the recorder misses some frames the live encoder saw (measured
# 0.84-0.998), and playback, with player and recorder inside this test process, loses more
# camera frames on the way to the encoder (0.72-0.81). Decisions on the inputs both scored
# must still agree (MIN_AGREEMENT).
MIN_OFFLINE_COVERAGE = 0.75
MIN_PLAYBACK_COVERAGE = 0.6


def _supervisor(names, overrides, run_dir, domain):
    profile = load_profile('nano', overrides)
    nodes = tuple(n for n in profile.nodes if n.name in names)
    env = dict(os.environ, **graph_env(profile, domain))
    return profile, Supervisor(nodes, run_dir, env, SupervisorConfig(grace_s=2.0),
                               python=sys.executable, log=lambda s: None)


def _key(modality, stamp):
    return modality, round(float(stamp), 4)


def _live_decisions(bag):
    from rosbags.highlevel import AnyReader
    from sage_eval.bagio import typestore
    out = {}
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == '/sage/salience']
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            out[_key(msg.modality, stamp)] = bool(msg.attend)
    return out


def _agreement(reference, other):
    matched = [k for k in reference if k in other]
    same = sum(reference[k] == other[k] for k in matched)
    return len(matched) / max(len(reference), 1), same / max(len(matched), 1), matched


def test_live_offline_and_played_back_decisions_agree(ros_domain, tmp_path):
    from sage.bag import play, record
    from sage_eval.replay import replay_bag

    overrides = [f'memory.data_dir={tmp_path / "mem"}', 'snarc.memory.preload_k=0',
                 "snarc.state_file=''", f'orchestrator.state_dir={tmp_path / "st"}',
                 'camera.fps=10.0']
    graph = ['camera', 'microphone', 'imu', 'vision_encoder', 'audio_encoder', 'snarc',
             'memory']
    profile, live = _supervisor(graph, overrides, tmp_path / 'live', ros_domain)
    bag = tmp_path / 'live_bag'
    live.start()
    try:
        time.sleep(6.0)  # nodes up and models loaded before recording starts
        code = record(bag, SENSOR_TOPICS + ['/sage/salience'], RECORD_S,
                      stdout=open(os.devnull, 'w'))
    finally:
        live.stop()
    assert code == 0
    live_dec = _live_decisions(bag)
    assert {m for m, _ in live_dec} >= {'vision', 'audio', 'imu'}
    assert any(live_dec.values())

    # Offline: the same cores in one process over the recorded sensor topics.
    params = {n.name: dict(n.parameters) for n in profile.nodes}
    out = tmp_path / 'offline.jsonl'
    replay_bag(bag, params, out)
    offline = {}
    for line in out.read_text().splitlines():
        d = json.loads(line)
        offline[_key(d['modality'], d['stamp'])] = bool(d['attend'])
    coverage, agree, matched = _agreement(live_dec, offline)
    print(f'offline vs live: coverage {coverage:.3f}, attend agreement {agree:.3f} '
          f'over {len(matched)} inputs')
    assert coverage >= MIN_OFFLINE_COVERAGE and agree >= MIN_AGREEMENT

    # Playback: the recorded sensor topics into a fresh graph without sensors.
    _, replayed = _supervisor(['vision_encoder', 'audio_encoder', 'snarc', 'memory'],
                              overrides + [f'memory.data_dir={tmp_path / "mem2"}'],
                              tmp_path / 'played', ros_domain)
    bag2 = tmp_path / 'played_bag'
    replayed.start()
    try:
        time.sleep(6.0)
        stop = threading.Event()
        rec = threading.Thread(target=record, args=(bag2, ['/sage/salience']),
                               kwargs={'stdout': open(os.devnull, 'w'), 'stop': stop})
        rec.start()
        time.sleep(1.5)
        assert play(bag, topics=SENSOR_TOPICS, stdout=open(os.devnull, 'w')) == 0
        time.sleep(2.0)
        stop.set()
        rec.join(timeout=20)
    finally:
        replayed.stop()
    played = _live_decisions(bag2)
    coverage, agree, matched = _agreement(live_dec, played)
    print(f'played back vs live: coverage {coverage:.3f}, attend agreement {agree:.3f} '
          f'over {len(matched)} inputs')
    assert coverage >= MIN_PLAYBACK_COVERAGE and agree >= MIN_AGREEMENT
