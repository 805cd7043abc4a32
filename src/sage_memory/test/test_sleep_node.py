"""Sleep through the memory node as a process: retraining, the live-models topic, preemption.

The node's data folder holds real training inputs (conftest.fill_training_store). A Sleep in
DREAM is preempted by a WAKE state, also when the call reached the node before the DREAM state:
the worker stops, no version is written. A Sleep asked for
by hand fine-tunes both encoders (a few steps: CI time), writes versions, publishes what is
live on /sage/models/live, and the next Sleep finds nothing new to learn from.
"""
from __future__ import annotations

# Imports inside tests are lazy: rclpy and the message packages load only when the node
# test runs.

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sage_common.processes import interrupt
from sage_common.ros import spin_until

# The run's domain block (root conftest) plus this file's own offset.
DOMAIN = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 7


@pytest.mark.timeout(300)
def test_sleep_retrains_publishes_live_versions_and_stops_when_the_dream_ends(
        tmp_path, monkeypatch, fill_training_store, start_memory_node, sleep_workers,
        quick_retrain_params):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(DOMAIN))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sage_interfaces.msg import MetabolicState
    from sage_interfaces.srv import Sleep
    from std_msgs.msg import String

    from sage_common.ros import LATCHED_QOS
    from sage_encoders.model_versions import ModelVersions

    data_dir = tmp_path / 'data'
    fill_training_store(data_dir)
    versions = data_dir / 'models'
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    proc = start_memory_node(data_dir, env, **quick_retrain_params)
    rclpy.init()
    node = rclpy.create_node('sleep_test')
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        live: list[dict] = []
        node.create_subscription(String, '/sage/models/live',
                                 lambda m: live.append(json.loads(m.data)), LATCHED_QOS)
        state_pub = node.create_publisher(MetabolicState, '/sage/metabolic_state', LATCHED_QOS)
        sleep = node.create_client(Sleep, '/sage/memory/sleep')
        assert spin_until(ex, lambda: sleep.service_is_ready() and live, 30), \
            'memory node did not come up'
        assert live[-1] == {m: {'version': 'packaged', 'path': ''} for m in ('audio', 'vision')}

        # 1. In DREAM, a WAKE (the orchestrator's answer to a salience spike) stops the sleep.
        assert spin_until(ex, lambda: state_pub.get_subscription_count() > 0, 10)
        state_pub.publish(MetabolicState(state='DREAM'))
        time.sleep(0.5)  # the state reaches the node before the call (one topic, one service)
        fut = sleep.call_async(Sleep.Request(max_duration_s=300.0, reason='test dream'))
        assert spin_until(ex, lambda: sleep_workers(proc.pid), 30), 'no sleep worker started'
        assert spin_until(ex, fut.done, 4.0) is False  # the worker runs; the call waits
        woke = time.monotonic()
        state_pub.publish(MetabolicState(state='WAKE'))
        assert spin_until(ex, fut.done, 20), 'the sleep did not stop'
        stop_s = time.monotonic() - woke
        print(f'sleep answered {stop_s:.2f} s after WAKE: {fut.result().message}')
        assert 'retraining preempted' in fut.result().message
        assert stop_s < 5.0  # the 1 s is measured by sage bench sleep --preempt
        assert not sleep_workers(proc.pid)
        assert all(ModelVersions(versions, m).versions() == [] for m in ('vision', 'audio'))

        # 1b. The call before the DREAM state (a service and a topic: either reaches the node
        # first; bench sleep --preempt saw a sleep called this way run on through the WAKE).
        state_pub.publish(MetabolicState(state='REST'))
        time.sleep(0.5)
        fut = sleep.call_async(Sleep.Request(max_duration_s=300.0, reason='test dream 2'))
        assert spin_until(ex, lambda: sleep_workers(proc.pid), 30), 'no sleep worker started'
        state_pub.publish(MetabolicState(state='DREAM'))
        time.sleep(0.5)
        state_pub.publish(MetabolicState(state='WAKE'))
        assert spin_until(ex, fut.done, 20), 'the sleep called before DREAM did not stop'
        assert 'retraining preempted' in fut.result().message
        assert all(ModelVersions(versions, m).versions() == [] for m in ('vision', 'audio'))

        # 2. By hand (not in DREAM): both encoders are fine-tuned, decided and published.
        t0 = time.monotonic()
        fut = sleep.call_async(Sleep.Request(max_duration_s=300.0, reason='test'))
        assert spin_until(ex, fut.done, 240), 'the retraining did not finish'
        message = fut.result().message
        print(f'sleep by hand took {time.monotonic() - t0:.1f} s: {message}')
        assert fut.result().success
        decided = {}
        for m in ('vision', 'audio'):
            [version] = ModelVersions(versions, m).versions()
            decided[m] = version.decision
            assert f'{m} {version.decision} {version.name}' in message
        expect = {m: ({'version': 'v0001', 'path': str(versions.resolve() / m / 'v0001')}
                      if decided[m] == 'promoted' else {'version': 'packaged', 'path': ''})
                  for m in ('vision', 'audio')}
        assert spin_until(ex, lambda: live[-1] == expect, 10), (live[-1], expect)

        # 3. The next sleep has no newer inputs to learn from.
        fut = sleep.call_async(Sleep.Request(max_duration_s=300.0, reason='test again'))
        assert spin_until(ex, fut.done, 60)
        assert 'vision skipped' in fut.result().message
        assert 'audio skipped' in fut.result().message

        # 4. A rollback by hand reaches the topic (the encoders follow it) while the node runs.
        promoted = [m for m, d in decided.items() if d == 'promoted']
        assert promoted, decided
        for m in promoted:
            out = subprocess.run([sys.executable, '-m', 'sage.cli', 'memory', 'models',
                                  '--modality', m, '--rollback', 'packaged',
                                  '--data-dir', str(data_dir)], capture_output=True, text=True,
                                 timeout=60)
            assert out.returncode == 0 and 'packaged is live' in out.stdout, out
            expect[m] = {'version': 'packaged', 'path': ''}
        assert spin_until(ex, lambda: live[-1] == expect, 10), (live[-1], expect)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        interrupt(proc, 20, signal.SIGTERM)
