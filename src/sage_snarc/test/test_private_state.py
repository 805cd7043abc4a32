"""SNARC's state file is private: written 0600 (in a 0700 folder it creates); a readable one
left by an older version is fixed when the node starts."""
from __future__ import annotations

import os
from pathlib import Path
import stat

import pytest

from sage_snarc import checkpoint

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402

from sage_snarc.snarc_node import SnarcNode  # noqa: E402


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_checkpoint_is_written_0600_in_a_new_0700_folder(tmp_path):
    path = tmp_path / 'state' / 'snarc.npz'
    checkpoint.save(path, {'a': 1})
    assert (oct(mode(path.parent)), oct(mode(path))) == ('0o700', '0o600')
    checkpoint.save(path, {'a': 2})  # replaced by a new private file
    assert oct(mode(path)) == '0o600' and checkpoint.load(path) == {'a': 2}


def test_node_start_makes_a_readable_state_file_private(tmp_path, ros_domain):
    path = tmp_path / 'snarc.npz'
    checkpoint.save(path, {'a': 1})
    os.chmod(path, 0o644)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    try:
        node = SnarcNode(context=ctx, parameter_overrides=[
            Parameter('memory.preload_k', value=0), Parameter('state_file', value=str(path))])
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
    assert oct(mode(path)) == '0o600'
