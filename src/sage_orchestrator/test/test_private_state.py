"""The orchestrator's state_dir is private: 0700 folder, 0600 files; a readable folder or
file left by an older version is fixed when the node starts."""
from __future__ import annotations

import os
from pathlib import Path
import stat

import pytest

from sage_orchestrator.persist import JsonFileStore

rclpy = pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402

from sage_orchestrator.orchestrator_node import OrchestratorNode  # noqa: E402


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_saving_creates_a_0700_folder_and_a_0600_file(tmp_path):
    store = JsonFileStore(tmp_path / 'state')
    store.save('orchestrator', {'trust': {'a': 0.5}})
    assert oct(mode(tmp_path / 'state')) == '0o700'
    assert oct(mode(tmp_path / 'state' / 'orchestrator.json')) == '0o600'


def test_node_start_makes_a_readable_state_dir_private(tmp_path, ros_domain, monkeypatch):
    monkeypatch.delenv('SAGE_STATE_DIR', raising=False)
    state = tmp_path / 'state'
    JsonFileStore(state).save('orchestrator', {'trust': {}})
    os.chmod(state, 0o755)
    os.chmod(state / 'orchestrator.json', 0o644)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    try:
        node = OrchestratorNode(context=ctx, parameter_overrides=[
            Parameter('state_dir', value=str(state))])
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
    assert (oct(mode(state)), oct(mode(state / 'orchestrator.json'))) == ('0o700', '0o600')
