"""`python -m sage_bringup.compose`: several real nodes in one process keep their own names,
parameters
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
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, Imu
import yaml

from sage_bringup.profile import load_profile, params_file_content

pytestmark = pytest.mark.graph

DOMAIN = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 4
DEADLINE_S = 60.0  # ends as soon as the graph answers (a loaded machine is slow)
GROUP = ('camera', 'imu')
START_FPS, SET_FPS = 20.0, 2.0  # camera.fps at start, then set at run time (far apart)


def _spec(tmp_path: Path) -> Path:
    # values unlike the defaults, so a node that ignored its params file would show it
    prof = load_profile('nano', ['imu.accel_range_g=8', 'camera.width=320', 'camera.height=240',
                                 f'camera.fps={START_FPS}'])
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


def _call(executor, client, request, timeout: float):
    assert client.wait_for_service(timeout_sec=timeout)
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    assert future.done(), f'no answer from {client.srv_name}'
    return future.result()


def _intervals(images: list) -> list[float]:
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in images]
    return [b - a for a, b in zip(stamps, stamps[1:])]


def test_composed_nodes_keep_names_parameters_and_topics(tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    proc = subprocess.Popen([sys.executable, '-m', 'sage_bringup.compose', str(_spec(tmp_path))],
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
        got = _call(executor, node.create_client(GetParameters, '/imu/get_parameters'),
                    GetParameters.Request(names=['accel_range_g']), DEADLINE_S)
        assert got.values[0].integer_value == 8

        # `ros2 param set /camera fps 2.0` on the composed camera: accepted, read back, obeyed
        while time.monotonic() < deadline and len(images) < 6:
            executor.spin_once(timeout_sec=0.2)
        assert sorted(_intervals(images[-6:]))[2] < 0.5 / SET_FPS, 'camera not at START_FPS'

        def fps_request(value: float) -> SetParameters.Request:
            return SetParameters.Request(parameters=[Parameter(name='fps', value=ParameterValue(
                type=ParameterType.PARAMETER_DOUBLE, double_value=value))])
        set_client = node.create_client(SetParameters, '/camera/set_parameters')
        refused = _call(executor, set_client, fps_request(1e6), DEADLINE_S)  # above its range
        assert not refused.results[0].successful
        result = _call(executor, set_client, fps_request(SET_FPS), DEADLINE_S)
        assert result.results[0].successful, result.results[0].reason
        got = _call(executor, node.create_client(GetParameters, '/camera/get_parameters'),
                    GetParameters.Request(names=['fps']), DEADLINE_S)
        assert got.values[0].double_value == SET_FPS
        images.clear()
        while time.monotonic() < deadline and len(images) < 5:
            executor.spin_once(timeout_sec=0.2)
        # the first frame may have been timed at the old rate: judge the next intervals
        later = _intervals(images[1:])
        assert len(later) >= 3, f'{len(images)} frames after fps was set'
        assert min(later) > 0.6 / SET_FPS, f'frame intervals after fps:={SET_FPS}: {later}'
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
