"""`sage bench graph --foxglove`'s phases on a small real graph: the camera and the live view.

The live view is switched off and on through the foxglove node's parameter service, a client
subscribes to every channel while it is on, and each phase reports the graph's CPU.
"""
from __future__ import annotations

import math
import threading

import psutil
import pytest
import yaml

from sage_bench.foxglove_cost import free_port, measure
from sage_bringup.launch_cmd import graph_supervisor
from sage_bringup.profile import load_profile

pytestmark = pytest.mark.graph


def test_phases_alternate_off_and_on_with_a_client_and_report_the_graphs_cpu(
        nano_with_only, ros_domain, tmp_path):
    # lazy: keeps ROS out of this module's import
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    data = nano_with_only(['camera', 'foxglove'])
    data['launch']['domain_id'] = ros_domain
    path = tmp_path / 'live_view.yaml'
    path.write_text(yaml.safe_dump(data))
    port = free_port()
    profile = load_profile(str(path), [f'foxglove.port={port}', 'camera.fps=15.0'])
    sup = graph_supervisor(profile, tmp_path / 'run', ros_domain)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node('foxglove_cost_test', context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    sup.start()
    try:
        procs = {name: psutil.Process(pid) for name, pid in sup.pids().items()}
        r = measure(node, procs, 'foxglove', port, phase_s=1.0, pairs=1)
    finally:
        sup.stop()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=ctx)
    assert [p['kind'] for p in r['phases']] == ['off', 'client']
    off, on = r['phases']
    assert 'messages' not in off
    assert on['channels'] == 13 and on['channels_delivering'] >= 1  # the camera at least
    assert on['messages'] > 0 and on['camera_hz'] > 0
    for p in r['phases']:
        assert math.isfinite(p['graph_cpu_percent']) and p['graph_cpu_percent'] >= 0
        assert p['host_process'] == 'foxglove'
    assert r['cost_cpu_percent'] == pytest.approx(on['graph_cpu_percent']
                                                  - off['graph_cpu_percent'])
