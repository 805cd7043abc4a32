"""Every command finds the graph by the same domain rule, and the launcher keeps the user's own
RMW and discovery settings: a real `sage launch` (its IMU node) with `sage status` and
`sage bag record` run as a user would, without a domain flag or variable."""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Imu

from sage.bag import info

pytestmark = pytest.mark.graph

TOPIC = '/sage/imu/data'
FIRST_MESSAGE_DEADLINE_S = 90.0  # ends as soon as the IMU delivers (a loaded machine is slow)
LISTEN_S = 6.0                   # status and record listen this long once the graph is up



def _user_env(**changes: str) -> dict[str, str]:
    """A user's shell: no ROS_DOMAIN_ID, local discovery, plus `changes`."""
    env = {k: v for k, v in os.environ.items() if k != 'ROS_DOMAIN_ID'}
    env.update({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'HF_HUB_OFFLINE': '1', **changes})
    return env


def _sage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'sage.cli', *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def _launch(profile: Path, run_dir: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-m', 'sage.cli', 'launch', str(profile),
                             '--quiet', '--duration', '300', '--run-dir', str(run_dir), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def _wait_for_imu(domain: int) -> bool:
    """True once one IMU message arrives on the domain (the graph is up and discoverable)."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    got = threading.Event()
    node = rclpy.create_node('domain_rule_probe', context=ctx)
    node.create_subscription(Imu, TOPIC, lambda _msg: got.set(), qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    deadline = time.monotonic() + FIRST_MESSAGE_DEADLINE_S
    try:
        while not got.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.2)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    return got.is_set()


def test_status_and_bag_record_find_the_graph_on_the_profiles_domain(ros_domain, tmp_path,
                                                                    imu_only_profile):
    profile = imu_only_profile(ros_domain)
    env = _user_env()
    graph = _launch(profile, tmp_path / 'run', env)
    try:
        assert _wait_for_imu(ros_domain), 'the IMU node never published'
        status = _sage('status', '--once', '--duration', str(LISTEN_S), '--profile',
                       str(profile), env=env)
        bag = tmp_path / 'bag'
        record = _sage('bag', 'record', str(bag), '--profile', str(profile), '-t', TOPIC,
                       '--duration', str(LISTEN_S), env=env)
        # --domain-id wins over a ROS_DOMAIN_ID that points elsewhere
        flagged = _sage('status', '--once', '--duration', str(LISTEN_S), '--domain-id',
                        str(ros_domain), env=dict(env, ROS_DOMAIN_ID=str(ros_domain + 1)))
    finally:
        launched = _stop(graph)
    source = f'ROS_DOMAIN_ID={ros_domain} (from profile imu_only)'
    assert source in launched, launched
    assert status.returncode == 0, status.stdout + status.stderr
    assert source in status.stdout
    assert f'domain {ros_domain} (from profile imu_only)' in status.stdout
    assert any(line.replace('│', ' ').split()[:2] == ['imu', 'OK']
               for line in status.stdout.splitlines()), status.stdout
    assert record.returncode == 0, record.stdout + record.stderr
    assert source in record.stdout
    counts = {t['name']: t['count'] for t in info(bag)['topics']}
    assert counts.get(TOPIC, 0) > 0, counts
    assert flagged.returncode == 0, flagged.stdout + flagged.stderr
    assert f'ROS_DOMAIN_ID={ros_domain} (from --domain-id)' in flagged.stdout


def _node_environ(launcher: psutil.Process, name: str, deadline_s: float) -> dict[str, str]:
    """The environment a supervised node process was started with (/proc/PID/environ)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for child in launcher.children(recursive=True):
            try:
                if f'__node:={name}' in child.cmdline():
                    raw = Path(f'/proc/{child.pid}/environ').read_bytes()
                    return dict(item.split('=', 1) for item in raw.decode().split('\0')
                                if '=' in item)
            except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                continue
        time.sleep(0.2)
    raise AssertionError(f'no {name} node process within {deadline_s} s')


def test_launch_keeps_the_users_rmw_and_discovery_range(ros_domain, tmp_path, imu_only_profile):
    # OFF: a range no SAGE default uses (and the node talks to nobody on this shared machine)
    env = _user_env(RMW_IMPLEMENTATION='rmw_fastrtps_cpp', ROS_AUTOMATIC_DISCOVERY_RANGE='OFF')
    graph = _launch(imu_only_profile(ros_domain), tmp_path / 'run', env,
                    '--domain-id', str(ros_domain))
    try:
        node_env = _node_environ(psutil.Process(graph.pid), 'imu', FIRST_MESSAGE_DEADLINE_S)
    finally:
        out = _stop(graph)
    assert node_env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'OFF'
    assert node_env['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
    assert node_env['ROS_DOMAIN_ID'] == str(ros_domain)
    assert 'ROS_AUTOMATIC_DISCOVERY_RANGE=OFF (from the environment)' in out
    assert 'RMW_IMPLEMENTATION=rmw_fastrtps_cpp (from the environment)' in out
    assert f'ROS_DOMAIN_ID={ros_domain} (from --domain-id)' in out
