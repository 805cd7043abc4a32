"""`sage topic`, `sage param` and `sage say` against a live nano graph, run as a user types them
(subprocesses; the domain from $ROS_DOMAIN_ID by the domain rule).

One graph for the module: nano without its microphone, audio encoder, orchestrator, memory and
viz. The camera, IMU, vision and language encoders and SNARC are what the commands look at; with
no orchestrator nothing else sets the camera's fps (its states and memory-pressure caps do).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

from diagnostic_msgs.msg import DiagnosticArray
import pytest
import yaml

from sage_common.vocabulary import MODALITIES

pytestmark = pytest.mark.graph

# The run's domain block (root conftest) plus this file's own offset.
DOMAIN = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 17
CLI = [sys.executable, '-m', 'sage.cli']
WITHOUT = ('microphone', 'audio_encoder', 'orchestrator', 'memory', 'viz')
READY = {'camera', 'imu', 'vision_encoder', 'language_encoder', 'snarc'}
START_TIMEOUT_S = 120.0


@pytest.fixture(scope='module')
def graph(tmp_path_factory, module_nano_graph, module_salience_listener):
    """The running graph's SalienceListener (the graph is stopped after the module)."""
    folder = tmp_path_factory.mktemp('inspect')
    graphs = module_nano_graph
    listener = module_salience_listener(DOMAIN, 'inspect_test_listener')
    proc = graphs.launch(DOMAIN, folder / 'run', ["snarc.state_file=''",
                                                  'snarc.memory.preload_k=0'], WITHOUT)
    try:
        assert listener.wait_for(lambda s: READY <= s.nodes and s.salience, START_TIMEOUT_S,
                                 proc), \
            f'nodes heard: {sorted(listener.nodes)}; see {folder / "run.log"}'
        yield listener
    finally:
        graphs.stop(proc)  # the listener stops with module_salience_listener


def sage(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN))
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_topic_echo_prints_five_salience_messages(graph):
    run = sage('topic', 'echo', '/sage/salience', '--count', '5')
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count('---\n') == 5
    docs = [d for d in yaml.safe_load_all(run.stdout) if d]
    assert len(docs) == 5, run.stdout
    for doc in docs:
        assert doc['modality'] in MODALITIES
        assert 0.0 <= doc['salience'] <= 1.0 and isinstance(doc['attend'], bool)
        assert doc['header']['stamp']['sec'] > 0
    # A best-effort sensor stream is heard too, its 640x480 image summarised, not dumped.
    run = sage('topic', 'echo', '/sage/camera/image_raw', '--count', '1', '--json')
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"data": "<921600 x uint8: ' in run.stdout and len(run.stdout) < 1000
    run = sage('topic', 'list')
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r'^/sage/salience\s+sage_interfaces/msg/Salience\s+1 pub', run.stdout,
                     re.M), run.stdout


def test_param_set_is_read_back_and_applied_by_the_camera(graph, topic_listener, tmp_path):
    fps: list[str] = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        fps.extend(kv.value for s in msg.status if s.name == 'sage: camera'
                   for kv in s.values if kv.key == 'fps')
    topic_listener(DOMAIN, [(DiagnosticArray, '/diagnostics', on_diagnostics)],
                   'inspect_diagnostics')
    run = sage('param', 'set', 'camera', 'fps', '10')
    assert run.returncode == 0, run.stdout + run.stderr
    assert '/camera fps: 30.0 -> 10.0' in run.stdout
    run = sage('param', 'get', 'camera', 'fps')
    assert run.returncode == 0 and run.stdout.strip() == '10.0', run.stdout + run.stderr
    # The camera re-times its capture: its diagnostics report the rate it now runs at.
    assert graph.wait_for(lambda _: '10' in fps, 15.0), f'camera fps on /diagnostics: {fps}'
    run = sage('topic', 'hz', '/sage/camera/image_raw', '--count', '6')
    assert run.returncode == 0 and 'average rate:' in run.stdout, run.stdout + run.stderr
    # A value the camera refuses: its reason, a non-zero exit, the old value kept.
    run = sage('param', 'set', 'camera', 'fps', '5000')
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'ERROR: /camera refused fps=5000.0: ' in run.stderr and '240' in run.stderr  # max
    run = sage('param', 'dump', 'camera', '-o', str(tmp_path / 'camera.yaml'))
    assert run.returncode == 0, run.stdout + run.stderr
    dumped = yaml.safe_load((tmp_path / 'camera.yaml').read_text())
    assert dumped['/camera']['ros__parameters']['fps'] == 10.0  # the refused value not taken


def test_said_text_is_scored_by_snarc(graph):
    run = sage('say', 'the kettle is boiling over')
    assert run.returncode == 0, run.stdout + run.stderr
    stamp = float(re.search(r'stamp (\d+\.\d+)', run.stdout).group(1))
    # Latents carry stamps as float seconds: equal to well within a millisecond.
    assert graph.wait_for(lambda s: any(m == 'language' and abs(t - stamp) < 1e-3
                                        for m, _, t, _ in s.salience), 60.0), \
        f'no language salience stamped {stamp}'


def test_rewards_reach_snarc(graph, topic_listener):
    counts: list[int] = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        counts.extend(int(kv.value) for s in msg.status if s.name == 'sage: snarc'
                      for kv in s.values if kv.key == 'rewards')
    topic_listener(DOMAIN, [(DiagnosticArray, '/diagnostics', on_diagnostics)],
                   'inspect_reward_diagnostics')
    for value in ('0.8', '-0.5'):  # a negative value is a value, not an option
        run = sage('reward', value)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f'reward {float(value):g} sent' in run.stdout
    assert graph.wait_for(lambda _: 2 in counts, 15.0), f'SNARC counted rewards: {counts}'
    run = sage('reward', '3')
    assert run.returncode == 2 and 'reward' in run.stderr
