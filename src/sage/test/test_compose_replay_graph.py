"""Composition changes no salience decision: one realistic scene bag is played into the
uncomposed nano graph, then into the composed one, and the attend decisions on the inputs both
scored agree; no latent is lost on the way to SNARC (no gap in any modality's input_seq) and
none is scored twice (issue 16, must-show 1). About 95 s: 36 s of bag played twice.

Both graphs run without their sensors (the bag is the input), the MiniLM encoder and viz (the
scene has no text); composed, the rest runs as the profile's groups (nano: a sensing and a
cognition process).
"""
from __future__ import annotations

from collections import Counter, defaultdict
import json
import subprocess
import sys

import pytest

from sage_eval.attend_agreement import attend_agreement, decision_key, sequence_gaps
from sage_eval.realistic import COMPACT, make_realistic_scene

# alone: under a second test file's load the lagging graph drops other frames than its
# counterpart (CI: 1356 of 1393 inputs in common, precision 0.861), and composition is not
# what that measures.
pytestmark = [pytest.mark.graph, pytest.mark.alone]

SEED = 7
START_TIMEOUT_S = 60.0  # each wait ends as soon as the graph answers
# Measured here at half rate beside test_replay_live: 539 of 539 frames scored by both graphs,
# precision and recall 1.000, the same decision on 1393 of 1393 inputs (at full rate, alone:
# 0.976 / 1.000; 0.914 / 0.970 with one SingleThreadedExecutor for the group). Both graphs'
# orchestrators tick on wall time, so their states' threshold offsets are set to 0 (a CI run
# with them: recall 0.892).
MIN_AGREEMENT = 0.9
# The vision encoder keeps only the newest frame, so a graph that lags the camera scores fewer
# frames; its SNARC then sees larger steps between frames and decides otherwise at the margin.
# Under CI's two test workers a graph at full rate scored 383 of 540 frames (the other 462)
# and agreed at precision 0.889, so it was played at half rate. Since it runs alone (the
# `alone` mark), full rate keeps up: 539 and 536 of 539 frames, precision and recall 1.000,
# the same decision on 1390 of 1390 inputs, in 95 s instead of 168.
RATE = 1.0
MIN_ATTENDED = 5  # fewer attended inputs cannot judge an agreement of 0.9
WITHOUT = ('camera', 'microphone', 'imu', 'language_encoder', 'viz')
READY = {'vision_encoder', 'audio_encoder', 'snarc', 'orchestrator', 'memory'}
MODALITIES = ('vision', 'audio', 'imu')


def _scene(path):
    make_realistic_scene(path, SEED, 'short', COMPACT)  # 36 s of bag
    return path


def _play(bag, run: str, domain: int, tmp_path, salience_listener, nano_graph) -> list:
    """Start the graph, play the bag into it, stop it: what it scored, in arrival order."""
    listener = salience_listener(domain, f'compose_replay_{run}')
    graph = nano_graph.launch(domain, tmp_path / run,
                              ["snarc.state_file=''", 'snarc.memory.preload_k=0',
                               f'memory.data_dir={tmp_path / run / "mem"}',
                               f'orchestrator.state_dir={tmp_path / run / "state"}',
                               *nano_graph.state_free_threshold()],
                              WITHOUT, compose=run == 'composed')
    assert listener.wait_for(lambda s: READY <= s.nodes, START_TIMEOUT_S, graph), \
        f'{run}: nodes heard {sorted(listener.nodes)}; see {run}.log'
    assert not listener.salience, f'{run}: the graph without sensors scored inputs'
    played = subprocess.run(
        [sys.executable, '-m', 'sage.cli', 'bag', 'play', str(bag), '--domain-id', str(domain),
         '--rate', str(RATE)],
        capture_output=True, text=True, timeout=300)
    assert played.returncode == 0, f'{run}: {played.stdout}{played.stderr}'
    listener.wait_quiet(2.0, 20.0)
    listener.stop()
    assert nano_graph.stop(graph) == 0, f'{run}: see {run}.log'
    return listener.salience


def test_composed_and_uncomposed_graphs_decide_alike_on_a_played_bag(
        ros_domain, tmp_path, salience_listener, nano_graph):
    bag = _scene(tmp_path / 'scene')
    # One after the other: played at once, the uncomposed graph's five processes would get more
    # of the two cores than the composed graph's two, and the comparison would measure that.
    scored_by = {run: _play(bag, run, ros_domain, tmp_path, salience_listener, nano_graph)
                 for run in ('plain', 'composed')}
    decided, gaps = {}, {}
    for run, scored in scored_by.items():
        (tmp_path / f'{run}.json').write_text(json.dumps(scored))
        twice = [k for k, n in Counter((m, seq) for m, seq, _, _ in scored).items() if n > 1]
        assert not twice, f'{run}: scored twice: {twice[:5]}'
        seqs = defaultdict(list)
        for modality, seq, _stamp, _attend in scored:
            seqs[modality].append(seq)
        gaps[run] = {m: sequence_gaps(seqs[m]) for m in MODALITIES}
        decided[run] = {decision_key(m, stamp): attend for m, _, stamp, attend in scored}
    agreement = attend_agreement(decided['plain'], decided['composed'])
    same = sum(decided['plain'][k] == decided['composed'][k]
               for k in decided['plain'].keys() & decided['composed'].keys())
    counts = {run: dict(Counter(m for m, _, _, _ in scored))
              for run, scored in scored_by.items()}
    print(f'composed vs uncomposed: {agreement.compared} inputs compared (scored: {counts}), '
          f'{agreement.attended} attended uncomposed; attended-input agreement: precision '
          f'{agreement.precision:.3f}, recall {agreement.recall:.3f}; same decision on '
          f'{same}/{agreement.compared}; input_seq gaps {gaps}')
    assert all(m in seqs for m in MODALITIES), f'modalities scored: {sorted(seqs)}'
    assert gaps == {run: dict.fromkeys(MODALITIES, 0) for run in scored_by}
    assert agreement.compared >= 0.9 * min(len(d) for d in decided.values())
    assert agreement.attended >= MIN_ATTENDED
    assert agreement.precision >= MIN_AGREEMENT and agreement.recall >= MIN_AGREEMENT
