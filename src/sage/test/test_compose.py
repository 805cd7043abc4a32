"""`python -m sage.compose`: several real nodes in one process keep their own names, parameters
(from the profile's params files) and topics, as when each runs alone (issue 16.1)."""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from sage.profile import load_profile, params_file_content

pytestmark = pytest.mark.graph

DOMAIN = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 4
DEADLINE_S = 60.0  # ends as soon as the graph answers (a loaded machine is slow)
GROUP = ('camera', 'imu')


def _spec(tmp_path: Path) -> Path:
    # values unlike the defaults, so a node that ignored its params file would show it
    prof = load_profile('nano', ['imu.accel_range_g=8', 'camera.width=320', 'camera.height=240'])
    nodes = []
    for spec in prof.nodes:
        if spec.name in GROUP:
            params = tmp_path / f'{spec.name}.yaml'
            params.write_text(yaml.safe_dump(params_file_content(spec)))
            nodes.append({'name': spec.name, 'module': spec.module, 'params_file': str(params),
                          'remappings': [list(r) for r in spec.remappings]})
    path = tmp_path / 'group.yaml'
    path.write_text(yaml.safe_dump({'nodes': nodes}))
    return path


def test_composed_nodes_keep_names_parameters_and_topics(tmp_path):
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, Imu

    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    proc = subprocess.Popen([sys.executable, '-m', 'sage.compose', str(_spec(tmp_path))],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    node = rclpy.create_node('compose_probe', context=ctx)
    got_imu, images = threading.Event(), []
    node.create_subscription(Imu, '/sage/imu/data', lambda _m: got_imu.set(),
                             qos_profile_sensor_data)
    node.create_subscription(Image, '/sage/camera/image_raw', images.append,
                             qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and not (got_imu.is_set() and images):
            executor.spin_once(timeout_sec=0.2)
            assert proc.poll() is None, proc.stdout.read()
        assert got_imu.is_set() and images, 'no IMU or camera message from the group'
        assert (images[0].width, images[0].height) == (320, 240)
        names: set[str] = set()
        while time.monotonic() < deadline and not set(GROUP) <= names:
            executor.spin_once(timeout_sec=0.2)  # node names are discovered after the data
            names = {name for name, _ns in node.get_node_names_and_namespaces()}
        assert set(GROUP) <= names
        # one process: every composed node is served by the same pid's parameters services
        client = node.create_client(GetParameters, '/imu/get_parameters')
        assert client.wait_for_service(timeout_sec=DEADLINE_S)
        future = client.call_async(GetParameters.Request(names=['accel_range_g']))
        executor.spin_until_future_complete(future, timeout_sec=DEADLINE_S)
        assert future.result().values[0].integer_value == 8
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=ctx)
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
