"""The edge's outbox: rows stored locally reach the shared store in order, exactly once, and
shipping resumes after a failure or a lost acknowledgement (real SQLite and PostgreSQL)."""
from __future__ import annotations

# Imports inside tests are lazy: rclpy, the message packages and process control load only
# for the tests that start nodes.

import json
import socket
import time

import pytest
from sqlalchemy import create_engine, delete, exc as sa_exc, func, inspect, select, text

from sage_memory.store.database import make_engine, resolve_url
from sage_memory.errors import TransferError
from sage_memory.store.models import EXPERIENCES, STATE, TOMBSTONES
from sage_memory.sync.outbox import Outbox, outbox_status
from sage_memory.store.synthetic import synthetic_database
from sage_memory.sync.transfer import portable_rows


def sqlite_url(path) -> str:
    return f'sqlite:///{path}'


def _count(url: str) -> int:
    engine = create_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(EXPERIENCES)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def edge(tmp_path):
    url = sqlite_url(tmp_path / 'edge' / 'sage_memory.db')
    uuids = synthetic_database(tmp_path / 'edge', 1200, seed=0)
    engine = make_engine(resolve_url(url))
    yield url, engine, uuids
    engine.dispose()


def test_every_row_reaches_the_shared_store_once_in_order_and_resumes(edge, db_url, tmp_path):
    url, local, uuids = edge
    if db_url.startswith('sqlite'):  # the shared store must be another file than the edge's
        db_url = sqlite_url(tmp_path / 'shared' / 'sage_memory.db')
    box = Outbox(local, db_url, batch=500, device_id='edge')
    assert box.backlog() == 1200
    assert box.ship() == 500 and box.backlog() == 700
    # The acknowledgement of the next batch is lost (crash after the remote commit, before
    # the cursor moved): it is sent again, and the uuid rule makes that a no-op.
    before = box.state()
    assert box.ship() == 500
    with local.begin() as conn:
        conn.execute(STATE.update().where(STATE.c.key == box.key)
                     .values(value=json.dumps(before)))
    assert box.backlog() == 700
    assert box.drain() == 700 and box.backlog() == 0
    assert _count(db_url) == 1200
    # New rows on the edge: only they go (a new outbox, as after a restart, resumes).
    synthetic_database(tmp_path / 'edge', 300, seed=1)
    box.close()
    again = Outbox(local, db_url, batch=500, device_id='edge')
    assert again.backlog() == 300 and again.drain() == 300
    assert portable_rows(db_url) == portable_rows(url)  # every column of every row, once
    status = outbox_status(local)
    assert len(status) == 1 and status[0]['backlog'] == 0 and status[0]['shipped'] == 1500
    assert status[0]['cursor'] == status[0]['last_id'] == _count(db_url)  # ids 1..1500
    assert status[0]['last_exchange'] is not None
    again.close()
    # What `sage memory sync status` prints for this store.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, '-m', 'sage.cli', 'memory', 'sync', 'status',
                          '--url', url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(status))


def test_the_server_drops_an_outbox_session_whose_client_went_silent(edge, pg_url):
    """A cut link can leave the server inside the outbox's transaction (the batch inserted,
    its COMMIT lost) holding those rows' locks, so the batch sent again waits on it (seen in
    `sage bench twohost`: 234 rows not drained in 300 s after a 10 s cut). The outbox's own
    sessions carry server-side keepalives and an idle-in-transaction limit, read back here from
    the server, and one left idle inside a transaction is rolled back by the server."""
    _, local, _ = edge
    box = Outbox(local, pg_url, batch=50, link_timeout_s=1.0)
    assert box.ship() == 50
    with box.remote_call('settings of') as remote, remote.connect() as conn:
        got = {name: conn.execute(text(f'SHOW {name}')).scalar() for name in (
            'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',
            'tcp_user_timeout', 'idle_in_transaction_session_timeout')}
    assert got == {'tcp_keepalives_idle': '1', 'tcp_keepalives_interval': '1',
                   'tcp_keepalives_count': '3', 'tcp_user_timeout': '1000',
                   'idle_in_transaction_session_timeout': '1s'}, got
    # ... and our end of the connection probes the server: read back from the socket itself.
    with box.remote_call('the socket of') as remote, remote.connect() as conn:
        fd = conn.connection.dbapi_connection.pgconn.socket
        sock = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)  # a dup: closing is safe
        try:
            probes = (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                      sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                      sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                      sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                      sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
        finally:
            sock.close()
    assert probes == (1, 1, 1, 3, 1000), probes
    with box.remote_call('an idle transaction on') as remote, remote.connect() as conn:
        conn.execute(text('SELECT 1'))  # inside a transaction, then quiet
        time.sleep(2.5)
        with pytest.raises(sa_exc.DBAPIError, match='idle-in-transaction'):
            conn.execute(text('SELECT 1'))
    box.close()


def test_a_shared_store_that_is_down_loses_nothing(edge, tmp_path):
    _, local, _ = edge
    box = Outbox(local, 'postgresql://sage@127.0.0.1:1/nowhere', batch=100)
    with pytest.raises(TransferError, match='outbox to postgresql'):
        box.ship()
    assert box.backlog() == 1200 and box.state()['id'] == 0


def test_rows_the_shared_store_evicted_are_not_sent_back(edge, tmp_path):
    url, local, uuids = edge
    shared = sqlite_url(tmp_path / 'shared' / 'sage_memory.db')
    box = Outbox(local, shared, batch=1000)
    box.drain()
    engine = make_engine(resolve_url(shared))
    try:
        with engine.begin() as conn:  # the shared store's retention evicts two rows
            conn.execute(delete(EXPERIENCES).where(EXPERIENCES.c.uuid.in_(uuids[:2])))
            conn.execute(TOMBSTONES.insert(), [{'uuid': u, 'evicted_at': 1.0}
                                               for u in uuids[:2]])
    finally:
        engine.dispose()
    with local.begin() as conn:  # the edge sends everything again (a lost cursor)
        conn.execute(delete(STATE).where(STATE.c.key == box.key))
    assert box.drain() == 1200
    assert _count(shared) == 1198
    box.close()


def test_the_outbox_refuses_its_own_store(edge):
    url, local, _ = edge
    with pytest.raises(TransferError, match='same database'):
        Outbox(local, url)


def test_the_memory_node_ships_what_it_stores_to_the_shared_store(pg_url, tmp_path, ros_domain):
    """A real memory node (process) with outbox.url set: every experience it stores reaches
    PostgreSQL exactly once, and its diagnostics show the backlog drained."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sage_interfaces.msg import Experience, Salience

    from sage_common.convert import salience_to_msg
    from sage_common.records import SalienceRecord
    from sage_common.ros import RELIABLE_QOS

    cmd = [sys.executable, '-m', 'sage_memory.memory_node', '--ros-args',
           '-p', f'data_dir:={tmp_path / "edge"}', '-p', 'device_id:=edge-1',
           '-p', "language_encoder:=''", '-p', f'outbox.url:={pg_url}',
           '-p', 'outbox.period_s:=0.2', '-p', 'outbox.batch:=7']
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node('outbox_test', context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)

    def spin_until(cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            ex.spin_once(timeout_sec=0.05)
        return cond()
    try:
        stored: list[str] = []
        node.create_subscription(Experience, '/sage/memory/stored',
                                 lambda m: stored.append(m.uuid), RELIABLE_QOS)
        pub = node.create_publisher(Salience, '/sage/salience', RELIABLE_QOS)
        assert spin_until(lambda: pub.get_subscription_count() > 0, 60), 'no memory node'
        for seq in range(20):  # attended IMU inputs: each one stored
            pub.publish(salience_to_msg(SalienceRecord(
                stamp=100.0 + seq, modality='imu', input_seq=seq, surprise=0.9, novelty=0.8,
                arousal=0.7, reward=0.0, conflict=0.0, salience=0.8, threshold=0.5,
                attend=True)))
        assert spin_until(lambda: len(stored) == 20, 30), f'stored {len(stored)}'
        shared = make_engine(resolve_url(pg_url))
        try:
            def shipped() -> list[str]:
                with shared.connect() as conn:
                    if not inspect(conn).has_table('experiences'):  # not migrated yet
                        return []
                    return list(conn.execute(select(EXPERIENCES.c.uuid)).scalars())
            assert spin_until(lambda: len(shipped()) >= 20, 30), shipped()
            spin_until(lambda: False, 1.0)  # a few more outbox periods: nothing twice
            assert sorted(shipped()) == sorted(stored)
        finally:
            shared.dispose()
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
