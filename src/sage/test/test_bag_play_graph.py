"""The README's playback workflow with real processes: record the nano graph with `sage bag
record`, play the bag with `sage bag play` into `sage launch nano --without camera,microphone,imu`.

The recording holds the graph's outputs too (latents, salience, budgets, states). Played into a
running graph they would be scored or counted a second time, so every input must be scored
exactly once: no (modality, input_seq) pair twice on /sage/salience. The graph's attend
decisions must match `sage replay BAG --offline` (the same cores in one process) on the inputs
both scored: precision and recall of attend at least MIN_ATTEND_AGREEMENT. Inputs lost on the
way (best-effort sensor topics, an encoder that keeps only the newest frame) are not compared.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sage_eval.attend_agreement import attend_agreement, decision_key

pytestmark = pytest.mark.graph

# The embedded scene in 10 s instead of 20 (test time). Whatever its phase, a recording of 1.5
# periods holds the cup, clap, phrase and shake once each after the first third, when SNARC's
# statistics (fresh at the start of the bag, offline and in the graph) have settled.
SCENE = {'period_s': 10.0, 'object_s': 0.5, 'clap_s': 4.0, 'phrase_s': 5.0, 'shake_s': 8.2}
RECORD_S = 1.5 * SCENE['period_s']
START_TIMEOUT_S = 60.0  # models load on 2 shared cores
MIN_ATTEND_AGREEMENT = 0.8
MIN_ATTENDED = 5  # fewer attended inputs cannot judge an agreement of 0.8
# Played at half rate: the vision encoder keeps only the newest frame, so a graph lagging the
# bag on loaded cores scores fewer frames than the offline replay, and SNARC decides otherwise
# at the margin (the composed-graph comparison failed a CI run so); slower, it keeps up.
RATE = 0.5
SENSORS = ('camera', 'microphone', 'imu')
# Nodes that must be up (heard on /diagnostics) before recording, and before playing.
RECORD_READY = {'camera', 'microphone', 'imu', 'snarc'}
PLAY_READY = {'vision_encoder', 'audio_encoder', 'snarc', 'orchestrator', 'memory'}
CLI = [sys.executable, '-m', 'sage.cli']


def test_bag_play_into_a_graph_without_sensors_scores_each_input_once(
        ros_domain, tmp_path, salience_listener, nano_graph):
    # Both runs and the offline replay start with no learned state and an empty memory. The
    # camera runs at 5 fps in every state, so on 2 shared cores the vision encoder keeps up
    # with the played frames (it keeps only the newest when it lags). The attend threshold
    # does not move with the metabolic state: the offline replay follows the recording graph's
    # states, the played graph its own orchestrator's (seen: a FOCUS entered 0.2 s apart
    # flipped an input; in CI 9 of 41 attends).
    common = ["snarc.state_file=''", 'snarc.memory.preload_k=0', 'camera.fps=5.0',
              'orchestrator.state.wake.camera_fps=5.0', 'orchestrator.state.focus.camera_fps=5.0',
              *nano_graph.state_free_threshold()]
    bag = tmp_path / 'graph_bag'
    listener = salience_listener(ros_domain, 'bag_play_graph_listener')
    try:
        # 1. The nano graph runs on its embedded scene; `sage bag record` records every topic.
        scene = [f'{node}.scene.{k}={v}' for node in SENSORS for k, v in SCENE.items()]
        graph = nano_graph.launch(ros_domain, tmp_path / 'rec',
                                  common + scene + [f'memory.data_dir={tmp_path / "mem1"}',
                                                    f'orchestrator.state_dir={tmp_path / "st1"}'])
        try:
            assert listener.wait_for(lambda s: RECORD_READY <= s.nodes, START_TIMEOUT_S,
                                     graph), \
                f'nodes heard: {sorted(listener.nodes)}; see rec.log'
            recorded = subprocess.run([*CLI, 'bag', 'record', str(bag), '--duration',
                                       str(RECORD_S)], capture_output=True, text=True,
                                      timeout=RECORD_S + 60)
        finally:
            nano_graph.stop(graph)
        assert recorded.returncode == 0, recorded.stdout + recorded.stderr
        for topic in ('/sage/camera/image_raw', '/sage/salience', '/sage/vision/latent'):
            assert f'[bag]   {topic}:' in recorded.stdout, recorded.stdout

        # The offline replay of the bag runs while the second graph starts.
        decisions = tmp_path / 'offline.jsonl'
        offline = subprocess.Popen(
            [*CLI, 'replay', str(bag), '--offline', '--profile', 'nano', '--decisions',
             str(decisions), *[a for v in common for a in ('--set', v)]],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        # 2. The same graph without its sensors; the bag is played into it.
        listener.clear()
        graph = nano_graph.launch(ros_domain, tmp_path / 'play',
                                  common + [f'memory.data_dir={tmp_path / "mem2"}',
                                            f'orchestrator.state_dir={tmp_path / "st2"}'],
                                  SENSORS)
        try:
            replay_out, _ = offline.communicate(timeout=120)
            assert offline.returncode == 0, replay_out
            assert listener.wait_for(lambda s: PLAY_READY <= s.nodes, START_TIMEOUT_S,
                                     graph), \
                f'nodes heard: {sorted(listener.nodes)}; see play.log'
            assert not listener.salience, 'the graph without sensors scored inputs of its own'
            played = subprocess.run([*CLI, 'bag', 'play', str(bag), '--rate', str(RATE)],
                                    capture_output=True, text=True,
                                    timeout=RECORD_S / RATE + 60)
            listener.wait_quiet(2.0, 20.0)
        finally:
            nano_graph.stop(graph)
    finally:
        listener.stop()  # before judging: no salience arrives while the lists are read
    assert played.returncode == 0, played.stdout + played.stderr
    (tmp_path / 'played.json').write_text(json.dumps([[*s, *a] for s, a in zip(
        listener.salience, listener.axes)]))

    # Every input scored once: no (modality, input_seq) twice.
    duplicates = listener.scored_twice()
    assert listener.salience, 'nothing scored from the played bag'
    assert not duplicates, (f'{len(duplicates)} (modality, input_seq) pairs scored twice, '
                            f'e.g. {sorted(duplicates)[:5]}')
    # play said what it left out: the graph's own outputs
    skipped = [line for line in played.stdout.splitlines() if line.startswith('[bag] skipping')]
    assert any('/sage/salience' in line and '/sage/vision/latent' in line for line in skipped), \
        played.stdout

    # The graph decides as the offline replay does on the inputs both scored.
    live = {decision_key(m, stamp): attend for m, _, stamp, attend in listener.salience}
    reference = {}
    for line in decisions.read_text().splitlines():
        d = json.loads(line)
        reference[decision_key(d['modality'], d['stamp'])] = bool(d['attend'])
    precision, recall, attended, compared = attend_agreement(reference, live)
    print(f'played back vs offline: {compared} inputs compared of {len(reference)} offline, '
          f'{attended} attended offline; precision {precision:.3f}, recall {recall:.3f}')
    assert compared >= 0.5 * len(reference)
    assert attended >= MIN_ATTENDED
    assert precision >= MIN_ATTEND_AGREEMENT and recall >= MIN_ATTEND_AGREEMENT
