"""Opening a database that is locked, read-only or flagged: wait, serve read-only, never move a
file that passes its integrity check (issue 13, item 1).

Real SQLite files, a real second process holding the lock, a real memory node over DDS, and
for permissions a child the kernel really refuses writes to (the `unwritable` fixture).
"""
from __future__ import annotations

# Imports inside tests are lazy: rclpy and the message packages load only for the tests that
# start a node; the store's modules beside the set-up that uses them.

import json
import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from sage_memory.store.memory_store import DB_FILENAME
from sage_memory.store.synthetic import synthetic_database

HERE = Path(__file__).parent
ROWS = 371  # the size of the database in the issue


def wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def count_rows(db: Path) -> int:
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    try:
        return con.execute('SELECT count(*) FROM experiences').fetchone()[0]
    finally:
        con.close()


def set_aside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if '.corrupt-' in p.name)


def hold_lock(db: Path) -> subprocess.Popen:
    """A second process holding an exclusive lock on db until release()."""
    proc = subprocess.Popen([sys.executable, str(HERE / 'lock_holder.py'), str(db)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def release(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.write('release\n')
        proc.stdin.flush()
    assert proc.wait(30) == 0


def test_a_locked_database_is_waited_for_then_opened_with_every_experience(tmp_path):
    from sage_memory.memory import MemoryConfig, OpenWait, open_memory
    from sage_memory.store.retention import RetentionConfig
    from sage_memory.store.memory_store import StoreConfig
    uuids = synthetic_database(tmp_path, ROWS)
    db = tmp_path / DB_FILENAME
    inode = db.stat().st_ino
    holder = hold_lock(db)
    cfg = MemoryConfig(store=StoreConfig(data_dir=str(tmp_path),
                                         retention=RetentionConfig(max_rows=0)),
                       snapshot_period_s=0.0, refresh_period_s=0.0)
    warnings: list[str] = []
    result: dict = {}

    def opener() -> None:
        try:
            result['memory'] = open_memory(cfg, wait=OpenWait(lock_s=0.0, backoff_max_s=0.5),
                                           warn=warnings.append)
        except Exception as err:  # noqa: BLE001 - reported by the assertions below
            result['error'] = err

    thread = threading.Thread(target=opener, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: warnings or not thread.is_alive(), 60), 'no report of the lock'
        assert warnings and 'locked by another process' in warnings[0], (warnings, result)
        # Still waiting, and the file is where it was.
        assert wait_for(lambda: len(warnings) >= 2, 30) and thread.is_alive()
        assert db.stat().st_ino == inode and set_aside(tmp_path) == []
    finally:
        release(holder)
    thread.join(60)
    assert 'memory' in result, result
    mem = result['memory']
    try:
        assert mem.store.count() == ROWS
        assert set(mem.store.fetch_uuids(uuids)) == set(uuids)
        assert mem.problems == [] and mem.read_only == ''
        assert db.stat().st_ino == inode and set_aside(tmp_path) == []
    finally:
        mem.close()


def test_a_lock_held_past_the_limit_is_an_error_and_moves_nothing(tmp_path):
    from sage_memory.errors import StoreBusyError
    from sage_memory.memory import MemoryConfig, OpenWait, open_memory
    from sage_memory.store.memory_store import StoreConfig
    synthetic_database(tmp_path, 20)
    db = tmp_path / DB_FILENAME
    holder = hold_lock(db)
    try:
        with pytest.raises(StoreBusyError, match='locked by another process'):
            open_memory(MemoryConfig(store=StoreConfig(data_dir=str(tmp_path))),
                        wait=OpenWait(lock_s=2.0, backoff_max_s=0.5))
        assert set_aside(tmp_path) == []
    finally:
        release(holder)
    assert count_rows(db) == 20


@pytest.mark.timeout(180)
def test_the_memory_node_reports_a_lock_on_diagnostics_and_comes_up_with_the_same_file(
        tmp_path, ros_domain):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sage_interfaces.srv import QueryMemory

    synthetic_database(tmp_path, ROWS)
    db = tmp_path / DB_FILENAME
    inode = db.stat().st_ino
    holder = hold_lock(db)
    cmd = [sys.executable, '-m', 'sage_memory.memory_node', '--ros-args',
           '-r', '__node:=memory', '-p', f'data_dir:={tmp_path}', '-p', "language_encoder:=''",
           '-p', 'writer.backoff_max_s:=1.0']
    node_proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node('lock_test')
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    reports: list = []

    def on_diag(msg: DiagnosticArray) -> None:
        reports.extend((s.level[0] if isinstance(s.level, bytes) else s.level, s.message)
                       for s in msg.status if s.name == 'sage: memory')

    def spin_until(cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)
            if cond():
                return True
        return False

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)
    query = node.create_client(QueryMemory, '/sage/memory/query')
    try:
        assert spin_until(lambda: any('locked by another process' in r[1] for r in reports)
                          or node_proc.poll() is not None, 90), \
            f'no lock report on /diagnostics: {reports[-3:]}'
        locked = [r for r in reports if 'locked by another process' in r[1]]
        assert locked and locked[0][0] == 1, reports[-3:]  # WARN
        assert node_proc.poll() is None
        assert db.stat().st_ino == inode and set_aside(tmp_path) == []
        release(holder)
        assert spin_until(query.service_is_ready, 60), 'memory node did not come up'
        fut = query.call_async(QueryMemory.Request(k=1000))
        assert spin_until(fut.done, 30)
        res = fut.result()
        assert res.success and len(res.results) == ROWS, res.message
    finally:
        if holder.poll() is None:
            release(holder)
        node_proc.send_signal(signal.SIGINT)
        try:
            node_proc.wait(30)
        except subprocess.TimeoutExpired:
            node_proc.kill()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    assert db.stat().st_ino == inode and set_aside(tmp_path) == []
    assert count_rows(db) == ROWS


def test_a_read_only_data_folder_is_served_read_only_and_nothing_moves(tmp_path, unwritable):
    synthetic_database(tmp_path, ROWS)
    db = tmp_path / DB_FILENAME
    before = db.read_bytes()
    prefix = unwritable(tmp_path)
    proc = subprocess.run([*prefix, sys.executable, str(HERE / 'read_only_probe.py'),
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 'not writable' in report['read_only'], report
    assert report['count'] == ROWS and report['recalled'] == ROWS
    # Three rows and one state refused (counted), a direct save refused with the reason.
    assert report['refused'] == 4 and 'not writable' in report['save_state']
    assert report['problems'] == [] and report['flushed'] and report['closed']
    # One clear ERROR on the console, nothing moved, nothing changed.
    errors = [ln for ln in proc.stderr.splitlines() if 'read-only' in ln]
    assert len(errors) == 1 and 'not writable' in errors[0], proc.stderr
    assert set_aside(tmp_path) == [] and db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [DB_FILENAME]


def test_a_database_that_cannot_be_created_is_a_clear_error(tmp_path, unwritable):
    prefix = unwritable(tmp_path)
    proc = subprocess.run([*prefix, sys.executable, str(HERE / 'read_only_probe.py'),
                           str(tmp_path / 'sub')], capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 2, report
    assert 'cannot create the memory database' in report['error']
    assert f'folder {tmp_path} is not writable' in report['error']
    assert list(tmp_path.iterdir()) == []


def test_a_flagged_database_that_passes_its_integrity_check_is_kept(tmp_path):
    from sage_memory.memory import Memory, MemoryConfig
    from sage_memory.store.memory_store import StoreConfig
    uuids = synthetic_database(tmp_path, 50)
    db = tmp_path / DB_FILENAME
    # An earlier background check failed (or was cut short): the next start checks again.
    Path(f'{db}.check-failed').write_text('database is locked')
    mem = Memory(MemoryConfig(store=StoreConfig(data_dir=str(tmp_path))))
    try:
        assert mem.problems == [] and set_aside(tmp_path) == []
        assert set(mem.store.fetch_uuids(uuids)) == set(uuids)
        assert not Path(f'{db}.check-failed').exists()
    finally:
        mem.close()


def test_open_errors_are_classified_by_sqlite_code_or_message():
    from sage_memory.store.sqlite_file import Fault, classify
    cases = {'database is locked': Fault.BUSY, 'attempt to write a readonly database':
             Fault.DENIED, 'unable to open database file': Fault.DENIED,
             'file is not a database': Fault.CORRUPT, 'database disk image is malformed':
             Fault.CORRUPT, 'disk I/O error': Fault.OTHER}
    for text, fault in cases.items():  # Python 3.10: no error codes, the message decides
        assert classify(sqlite3.OperationalError(text)) is fault, text
    assert classify(PermissionError(13, 'Permission denied')) is Fault.DENIED
    assert classify(OSError(28, 'No space left on device')) is Fault.OTHER
