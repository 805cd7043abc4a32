"""Shared pytest fixtures: a distinct ROS_DOMAIN_ID per test that talks DDS, a listener node,
a one-node profile, and folders a process cannot write."""
from __future__ import annotations

import itertools
import os
import threading

import pytest

_BASE = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', str(20 + os.getpid() % 150)))
_counter = itertools.count()


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A domain id no other test of this run uses (within 0..232), set in the environment."""
    domain = 1 + (_BASE + next(_counter)) % 230
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return domain


@pytest.fixture
def topic_listener():
    """listen(domain, [(msg_type, topic, callback)], name) -> stop(): one node in its own rclpy
    context, spun on a thread until stop() is called or the test ends (reliable QoS, the graph's
    own)."""
    started: list[tuple[threading.Event, threading.Thread]] = []

    def spin(domain, subscriptions, name, stop):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sage_common.ros import RELIABLE_QOS
        ctx = rclpy.Context()
        rclpy.init(context=ctx, domain_id=domain)
        node = rclpy.create_node(name, context=ctx)
        for msg_type, topic, callback in subscriptions:
            node.create_subscription(msg_type, topic, callback, RELIABLE_QOS)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.1)
        ex.shutdown()
        rclpy.try_shutdown(context=ctx)

    def listen(domain: int, subscriptions: list, name: str = 'test_listener'):
        stop = threading.Event()
        thread = threading.Thread(target=spin, args=(domain, subscriptions, name, stop),
                                  daemon=True)
        thread.start()
        started.append((stop, thread))

        def halt() -> None:
            stop.set()
            thread.join(timeout=10)
        return halt

    yield listen
    for stop, thread in started:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def imu_only_profile(tmp_path):
    """make(domain) -> path of the nano profile with only its IMU node (the cheapest real graph)
    on that domain."""
    import yaml
    from sage.paths import config_dir

    def make(domain: int):
        data = yaml.safe_load((config_dir() / 'nano.yaml').read_text())
        data['launch']['domain_id'] = domain
        data['launch']['nodes'] = {'imu': data['launch']['nodes']['imu']}
        path = tmp_path / 'imu_only.yaml'  # the profile's name is its file's stem
        path.write_text(yaml.safe_dump(data))
        return path
    return make


@pytest.fixture
def unwritable():
    """make(folder) -> command prefix; processes started with it cannot write folder or its files.

    Tests run as root, whom permissions do not stop: there the files are given to `nobody`
    and children run as root without the capabilities that override file permissions
    (setpriv), so the kernel really refuses writes. Other users: the write bits are removed.
    """
    import pwd
    import shutil
    import stat
    from pathlib import Path

    restore: list[tuple[Path, int]] = []

    def make(folder: Path) -> list[str]:
        paths = [folder, *sorted(folder.rglob('*'))]
        if os.geteuid() == 0:
            setpriv = shutil.which('setpriv')
            if setpriv is None:
                pytest.skip('setpriv (util-linux) is needed to drop root\'s file capabilities')
            try:
                owner = pwd.getpwnam('nobody')
                uid, gid = owner.pw_uid, owner.pw_gid
            except KeyError:
                uid = gid = 65534
            for p in paths:
                os.chown(p, uid, gid)
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
            return [setpriv, '--bounding-set=-dac_override,-dac_read_search,-fowner']
        for p in paths:
            mode = stat.S_IMODE(p.stat().st_mode)
            restore.append((p, mode))
            os.chmod(p, mode & ~0o222)
        return []

    yield make
    for p, mode in reversed(restore):  # let pytest remove its temporary folders
        os.chmod(p, mode)
