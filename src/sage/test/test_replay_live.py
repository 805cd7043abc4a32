"""The live graph and the offline replay attend to the same inputs of a realistic scene.

A short realistic scene (real photos, recorded speech and sounds, room noise; ~80 s) is played
with `sage bag play` into a live graph of encoders, SNARC, memory AND the orchestrator (whose
budgets drive the encoders' refinement and whose states move SNARC's threshold), while
`sage bag record` keeps what the graph saw: the sensor topics, budgets, states and the live
/sage/salience. The offline replay of that recording (`replay_bag`: the same cores in one
process, recorded budgets and states applied) must attend to the same inputs.

Measured on attended inputs, not on all inputs (almost all are calm, so a replay that never
attends would agree on 98 % of them): over the inputs both runs scored, precision and recall of
the live attends against the offline ones. Live nodes get sensor frames through best-effort DDS
and the memory node echoes stored experiences to SNARC a few ms later than the replay adds
them, so a few decisions near the threshold may differ.

The graph runs as `sage launch nano` runs it: composed, its profile's groups one process each
(sensing, cognition). So this also shows that composition changes no decision and loses or
doubles no latent on the way to SNARC: no gap and no repeat in any modality's input_seq on
/sage/salience (issue 16, must-show 1; test_compose_replay_graph held a second graph to that
until both were one run).
"""
from __future__ import annotations

import io
import json
import os
import threading

import pytest
from rosbags.highlevel import AnyReader

from sage.bag import play, record
from sage.report import make_report
from sage_bringup.launch_cmd import graph_supervisor
from sage_bringup.profile import load_profile
from sage_common.vocabulary import absolute, Topic
from sage_eval.attend_agreement import attend_agreement, decision_key
from sage_eval.bagio import typestore
from sage_eval.realistic import COMPACT, make_realistic_scene
from sage_eval.replay import replay_bag
from sage_eval.scenario import labels_path

# alone: beside a second test file's load the live graph lags and decides differently near the
# threshold, and lag is not what this compares. Two defects this test found were what made it
# fail in CI (precision 0.780 at 6b2ecad, 0.770 at 946f40b, run alone): the live audio encoder
# lost frames in a stall and spliced the rest a frame early under their stamps, and SNARC lost an
# open utterance on every threshold change the orchestrator made (both fixed: audio_core
# `_bridge`, `SnarcCore.reconfigured`).
pytestmark = [pytest.mark.graph, pytest.mark.alone]

SEED = 58  # a compact realistic scene (36 s), neither a tuning nor a report seed
# as a graph with no namespace names them, and bags hold them
SENSOR_TOPICS = [absolute(t) for t in (Topic.CAMERA_IMAGE, Topic.AUDIO_FRAMES, Topic.IMU)]
RECORDED = SENSOR_TOPICS + [absolute(t) for t in (Topic.SALIENCE, Topic.BUDGET,
                                                  Topic.METABOLIC_STATE)]
MIN_PRECISION = MIN_RECALL = 0.8
# Share of the live-scored inputs that the replay scored too: sensor topics are best effort,
# so on 2 busy cores the recorder misses some frames the live encoders saw.
MIN_COVERAGE = 0.75
MIN_ATTENDS = 5
# The bag is the input; the scene has no text, and the viz node is not what this compares.
WITHOUT = ('camera', 'microphone', 'imu', 'language_encoder', 'viz')
MODALITIES = ('vision', 'audio', 'imu')


def _live_decisions(bag):
    out = {}
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == absolute(Topic.SALIENCE)]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            out[decision_key(msg.modality, stamp)] = bool(msg.attend)
    return out


def test_live_graph_and_offline_replay_attend_alike_on_a_realistic_scene(
        ros_domain, tmp_path, salience_listener):
    scene = tmp_path / 'scene'
    make_realistic_scene(scene, SEED, 'short', COMPACT)
    overrides = [f'memory.data_dir={tmp_path / "mem"}', 'snarc.memory.preload_k=0',
                 "snarc.state_file=''", f'orchestrator.state_dir={tmp_path / "st"}']
    profile = load_profile('nano', overrides).without(WITHOUT)
    assert profile.composed(), 'nano runs composed; so must the graph compared here'
    graph = graph_supervisor(profile, tmp_path / 'live', ros_domain)
    # Every latent SNARC scored, heard on a reliable deep queue (the recorder below may
    # miss some under load; this must not).
    listener = salience_listener(ros_domain, 'replay_live')
    bag = tmp_path / 'live_bag'
    stop = threading.Event()
    codes = []
    rec = threading.Thread(target=lambda: codes.append(
        record(bag, RECORDED, stdout=open(os.devnull, 'w'), stop=stop)))
    graph.start()
    try:
        rec.start()
        # play waits until the graph's nodes read every sensor topic and SNARC reads both
        # encoders' latents (the recorder subscribes only once play publishes): an encoder
        # that joined seconds into the scene would start its voice detector and statistics
        # elsewhere than the replay does.
        said = io.StringIO()
        readers = SENSOR_TOPICS + [absolute(Topic.latent_initial(m)) for m in ('vision', 'audio')]
        assert play(scene, topics=SENSOR_TOPICS, delay=120.0, wait_for=readers,
                    stdout=said) == 0, said.getvalue()
        assert 'playing anyway' not in said.getvalue(), said.getvalue()
        listener.wait_quiet(2.0, 20.0)
    finally:
        stop.set()
        rec.join(timeout=60)
        graph.stop()
    assert codes == [0]
    twice = listener.scored_twice()
    assert not twice, f'scored twice: {sorted(twice)[:5]}'
    gaps = listener.seq_gaps(MODALITIES)
    assert gaps == dict.fromkeys(MODALITIES, 0), gaps
    live = _live_decisions(bag)
    assert {m for m, _ in live} >= {'vision', 'audio', 'imu'}

    params = {n.name: dict(n.parameters) for n in profile.nodes}
    out = tmp_path / 'offline.jsonl'
    summary = replay_bag(bag, params, out)
    assert summary.inputs.get('vision', 0) > 500
    offline = {}
    for line in out.read_text().splitlines():
        d = json.loads(line)
        offline[decision_key(d['modality'], d['stamp'])] = bool(d['attend'])
    # Offline decisions are the reference: live precision and recall against them.
    got = attend_agreement(offline, live)
    live_attends = sum(live[k] for k in live.keys() & offline.keys())
    print('live vs offline:', json.dumps({**got._asdict(), 'live_scored': len(live),
                                          'live_attends': live_attends}))
    assert got.compared / max(len(live), 1) >= MIN_COVERAGE
    assert got.attended >= MIN_ATTENDS and live_attends >= MIN_ATTENDS
    assert got.precision >= MIN_PRECISION and got.recall >= MIN_RECALL

    # The run's report page shows each labelled event of the scene and what caught it.
    text = make_report(bag, tmp_path / 'report', labels_path(scene)).read_text()
    caught = text.split('<h2>Labelled events: ')[1].split(' caught')[0]
    print('report:', caught)
    assert caught.endswith(' of 7') and 'turn_still_image' in text
