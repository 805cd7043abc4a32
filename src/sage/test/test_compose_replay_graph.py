"""Composition changes no salience decision: one realistic scene bag is played into the
composed nano graph, and its attend decisions agree with the offline replay of the same bag (the
reference test_replay_live holds the uncomposed graph to); no latent is lost on the way to SNARC
(no gap in any modality's input_seq) and none is scored twice (issue 16, must-show 1). About
45 s: 36 s of bag played once.

The graph runs without its sensors (the bag is the input), the MiniLM encoder and viz (the
scene has no text); composed, the rest runs as the profile's groups (nano: a sensing and a
cognition process). Until this suite went to three workers the composed graph was compared
with a second, uncomposed run of the same bag (precision and recall 1.000 alone); the offline
replay is the same reference for both layouts at half the cost, and a deterministic one.
"""
from __future__ import annotations

from collections import Counter, defaultdict
import json
import subprocess
import sys

import pytest

from sage_bringup.profile import load_profile
from sage_eval.attend_agreement import attend_agreement, decision_key, sequence_gaps
from sage_eval.realistic import COMPACT, make_realistic_scene
from sage_eval.replay import replay_bag

# alone: under a second test file's load the lagging graph drops other frames than the replay
# scores (CI, against an uncomposed run: 1356 of 1393 inputs in common, precision 0.861), and
# composition is not what that measures.
pytestmark = [pytest.mark.graph, pytest.mark.alone]

SEED = 7
START_TIMEOUT_S = 60.0  # each wait ends as soon as the graph answers
# Measured here against the offline replay, alone but beside other engineers' benchmarks (load
# 12): 519 of 540 frames scored, the same decision on 1366 of 1366 inputs compared, precision
# and recall 1.000 on 40 attended inputs, no gap. The orchestrator ticks on wall time and the
# replay has no states, so the states' threshold offsets are set to 0 (against a second live
# graph, a CI run with them had recall 0.892).
MIN_AGREEMENT = 0.9
# The vision encoder keeps only the newest frame, so a graph that lags the camera scores fewer
# frames; its SNARC then sees larger steps between frames and decides otherwise at the margin.
# Alone, full rate keeps up.
RATE = 1.0
MIN_ATTENDED = 5  # fewer attended inputs cannot judge an agreement of 0.9
WITHOUT = ('camera', 'microphone', 'imu', 'language_encoder', 'viz')
READY = {'vision_encoder', 'audio_encoder', 'snarc', 'orchestrator', 'memory'}
MODALITIES = ('vision', 'audio', 'imu')


def _scene(path):
    make_realistic_scene(path, SEED, 'short', COMPACT)  # 36 s of bag
    return path


def _overrides(run_dir, nano_graph) -> list[str]:
    return ["snarc.state_file=''", 'snarc.memory.preload_k=0',
            f'memory.data_dir={run_dir / "mem"}', f'orchestrator.state_dir={run_dir / "state"}',
            *nano_graph.state_free_threshold()]


def _play(bag, run: str, domain: int, tmp_path, salience_listener, nano_graph) -> list:
    """Start the graph, play the bag into it, stop it: what it scored, in arrival order."""
    listener = salience_listener(domain, f'compose_replay_{run}')
    graph = nano_graph.launch(domain, tmp_path / run, _overrides(tmp_path / run, nano_graph),
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


def test_the_composed_graph_decides_as_the_offline_replay_on_a_played_bag(
        ros_domain, tmp_path, salience_listener, nano_graph):
    bag = _scene(tmp_path / 'scene')
    scored = _play(bag, 'composed', ros_domain, tmp_path, salience_listener, nano_graph)
    (tmp_path / 'composed.json').write_text(json.dumps(scored))
    twice = [k for k, n in Counter((m, seq) for m, seq, _, _ in scored).items() if n > 1]
    assert not twice, f'scored twice: {twice[:5]}'
    seqs = defaultdict(list)
    for modality, seq, _stamp, _attend in scored:
        seqs[modality].append(seq)
    gaps = {m: sequence_gaps(seqs[m]) for m in MODALITIES}
    live = {decision_key(m, stamp): attend for m, _, stamp, attend in scored}

    profile = load_profile('nano', _overrides(tmp_path / 'offline', nano_graph))
    out = tmp_path / 'offline.jsonl'
    replay_bag(bag, {n.name: dict(n.parameters) for n in profile.nodes}, out)
    offline = {}
    for line in out.read_text().splitlines():
        d = json.loads(line)
        offline[decision_key(d['modality'], d['stamp'])] = bool(d['attend'])
    agreement = attend_agreement(offline, live)
    same = sum(offline[k] == live[k] for k in offline.keys() & live.keys())
    print(f'composed vs offline: {agreement.compared} inputs compared (scored live: '
          f'{dict(Counter(m for m, _, _, _ in scored))}, offline: {len(offline)}), '
          f'{agreement.attended} attended offline; attended-input agreement: precision '
          f'{agreement.precision:.3f}, recall {agreement.recall:.3f}; same decision on '
          f'{same}/{agreement.compared}; input_seq gaps {gaps}')
    assert all(m in seqs for m in MODALITIES), f'modalities scored: {sorted(seqs)}'
    assert gaps == dict.fromkeys(MODALITIES, 0)
    assert agreement.compared >= 0.9 * len(live)
    assert agreement.attended >= MIN_ATTENDED
    assert agreement.precision >= MIN_AGREEMENT and agreement.recall >= MIN_AGREEMENT
