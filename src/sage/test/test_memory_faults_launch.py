"""The launcher and the memory node's database faults (issue 13, item 1): a read-only database
is served without a respawn loop and reported once; a corrupt one is quarantined with a
console ERROR and noted in `sage status` and the launch summary; an unreadable one is never
counted as empty.

Real memory node processes under the real Supervisor, real SQLite files, real DDS.
"""
from __future__ import annotations

import os
from pathlib import Path
import sys
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

from sage.status import StatusListener
from sage.status_model import StatusModel
from sage.status_render import render_text
from sage_bringup.launch_cmd import database_lines, database_summary
from sage_bringup.log_errors import ErrorLines
from sage_bringup.profile import load_profile
from sage_bringup.supervisor import Supervisor, SupervisorConfig
from sage_interfaces.srv import QueryMemory
from sage_memory.store.memory_store import DB_FILENAME
from sage_memory.store.synthetic import synthetic_database

ROWS = 371
GARBAGE = b'not a database' * 1000


def memory_only(data_dir: Path):
    """The nano profile's memory node alone, on data_dir, without text recall."""
    prof = load_profile('nano', [f'memory.data_dir={data_dir}', 'memory.language_encoder='])
    return prof.without([n.name for n in prof.nodes if n.name != 'memory'])


def supervise(profile, tmp_path: Path, lines: list[str], python: str = sys.executable):
    config = SupervisorConfig(backoff_initial_s=0.2, backoff_max_s=1.0, grace_s=10.0)
    sup = Supervisor(profile.nodes, tmp_path / 'run', dict(os.environ), config, python=python,
                     log=lines.append)
    sup.start()
    return sup


def poll_until(sup: Supervisor, cond, timeout: float, spin=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup.poll()
        if spin is not None:
            spin(0.05)
        else:
            time.sleep(0.05)
        if cond():
            return True
    return False


def quarantined(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if '.corrupt-' in p.name)


@pytest.mark.timeout(240)
def test_a_read_only_database_is_served_and_reported_once_without_a_respawn(
        tmp_path, ros_domain, unwritable):
    data = tmp_path / 'data'
    synthetic_database(data, ROWS)
    before = (data / DB_FILENAME).read_bytes()
    prefix = unwritable(data)
    wrapper = tmp_path / 'python-without-write-access'
    wrapper.write_text('#!/bin/sh\nexec ' + ' '.join([*prefix, sys.executable]) + ' "$@"\n')
    wrapper.chmod(0o755)
    lines: list[str] = []
    sup = supervise(memory_only(data), tmp_path, lines, python=str(wrapper))
    child = sup.children[0]
    rclpy.init()
    node = rclpy.create_node('read_only_probe')
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    query = node.create_client(QueryMemory, '/sage/memory/query')
    try:
        def read_only_lines() -> list[str]:
            return [ln for ln in lines if 'read-only' in ln]
        assert poll_until(sup, lambda: read_only_lines() or child.gave_up, 120), \
            f'no read-only ERROR on the console: {lines}'
        assert read_only_lines()[0].startswith('[sage] memory ERROR: memory is read-only ('), lines
        assert 'not writable' in read_only_lines()[0]
        # It serves the experiences it holds.
        spin = lambda t: ex.spin_once(timeout_sec=t)  # noqa: E731
        assert poll_until(sup, query.service_is_ready, 60, spin), lines
        fut = query.call_async(QueryMemory.Request(k=1000))
        assert poll_until(sup, fut.done, 30, spin)
        assert fut.result().success and len(fut.result().results) == ROWS
        poll_until(sup, lambda: False, 3.0, spin)  # a crash loop would show by now
        assert child.restarts == 0 and child.exit_codes == [] and not child.gave_up, lines
        assert len(read_only_lines()) == 1, lines
    finally:
        sup.stop()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    assert quarantined(data) == [] and (data / DB_FILENAME).read_bytes() == before


@pytest.mark.timeout(240)
def test_a_corrupt_database_is_quarantined_with_a_console_error_and_noted(tmp_path, ros_domain):
    data = tmp_path / 'data'
    data.mkdir()
    (data / DB_FILENAME).write_bytes(GARBAGE)
    profile = memory_only(data)
    lines: list[str] = []
    model = StatusModel()
    listener = StatusListener(model)
    listener.start()
    sup = supervise(profile, tmp_path, lines)
    try:
        def console() -> list[str]:
            return [ln for ln in lines if 'quarantined' in ln]
        assert poll_until(sup, console, 120), f'no quarantine ERROR on the console: {lines}'
        assert console()[0].startswith('[sage] memory ERROR: corrupt database quarantined to ')

        def screen() -> str:
            with listener.lock:
                return render_text(model)
        assert poll_until(sup, lambda: 'NOTE: quarantined corrupt database' in screen(), 60), \
            screen()
        assert sup.children[0].restarts == 0
        assert len(console()) == 1, lines
    finally:
        sup.stop()
        listener.stop()
    moved = quarantined(data)
    assert len(moved) == 1 and moved[0].read_bytes() == GARBAGE
    assert any(str(moved[0]) in note for note in model.memory_notes())
    db = database_summary(profile)
    assert db['total'] == 0 and db['quarantined'] == [str(moved[0])]
    text = '\n'.join(database_lines(db))
    assert f'NOTE: quarantined corrupt database {moved[0]}' in text


def test_the_launch_summary_never_counts_an_unreadable_database_as_empty(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    (data / DB_FILENAME).write_bytes(GARBAGE)
    db = database_summary(memory_only(data))
    assert db['total'] is None and 'cannot' in db['error'], db
    text = '\n'.join(database_lines(db))
    assert 'unknown number of experiences (unreadable: ' in text
    assert '0 experiences' not in text
    assert (data / DB_FILENAME).read_bytes() == GARBAGE  # reading it changed nothing


def test_each_distinct_node_error_reaches_the_console_once(tmp_path):
    log = tmp_path / 'memory.log'
    log.write_text('[ERROR] [1.0] [memory]: from an earlier run\n')
    errors = ErrorLines(log)
    with open(log, 'a') as fh:
        fh.write('[INFO] [2.0] [memory]: memory ready\n[ERROR] [2.1] [memory]: disk gone\n'
                 '[ERROR] [2.2] [memory]: half a li')
    assert errors.new() == ['disk gone']
    with open(log, 'a') as fh:
        fh.write('ne\n[ERROR] [3.0] [memory]: disk gone\nERROR: not a log line\n')
    assert errors.new() == ['half a line']
    assert errors.new() == []
