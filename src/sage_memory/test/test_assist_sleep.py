"""Training on the bigger host (issue 19, item 4 and must-show 4): the edge's memory node ships
its experiences and training inputs to PostgreSQL; the assist host's memory node, started as a
user starts it (`sage launch workstation --role assist`), sleeps when the robot dreams, retrains
on them and shares the version it promotes; the edge adopts it and publishes it to its encoders,
and takes back the pattern that sleep wrote. A kill -9 of the assist's memory node mid-sleep
loses nothing: the launcher respawns it, it sleeps again and the exchange completes.
"""
from __future__ import annotations

# Imports inside tests are lazy: rclpy, the message packages and the encoders load only
# when the graph test runs.

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from sqlalchemy import select
from sqlalchemy.exc import ProgrammingError

from sage_common.processes import interrupt
from sage_common.ros import spin_until


def _near_copies(data_dir, n: int) -> set[str]:
    """n experiences with almost the same embedding (sleep clusters them into one pattern)."""
    from sage_memory.store.memory_store import MemoryStore, StoreConfig
    from sage_memory.store.synthetic import synthetic_record
    rng = np.random.default_rng(7)
    base = rng.standard_normal(8).astype(np.float32)
    recs = [synthetic_record(500 + i, rng, dim=8, grid=0, preview_bytes=0,
                             embedding=base + 0.01 * rng.standard_normal(8).astype(np.float32))
            for i in range(n)]
    store = MemoryStore(StoreConfig(data_dir=str(data_dir), device_id='t'))
    store.start()
    store.submit_many(recs)
    assert store.flush()
    store.close()
    return {r.uuid for r in recs}


def _assist_memory_pids(run_dir) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(['cmdline']):
        cmd = p.info['cmdline'] or []
        if any('__node:=shared_memory' in c for c in cmd) and any(str(run_dir) in c
                                                                   for c in cmd):
            out.append(p)
    return out


@pytest.mark.timeout(420)
def test_the_assist_host_retrains_on_the_edge_inputs_and_the_edge_adopts_the_version(
        tmp_path, pg_url, ros_domain, monkeypatch, fill_training_store, start_memory_node,
        sleep_workers, quick_retrain_params):
    # The assist role opens DDS to the LAN; the edge and this test look for it there too.
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET')
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sage_interfaces.msg import MetabolicState
    from std_msgs.msg import String

    from sage_common.ros import LATCHED_QOS
    from sage_encoders.model_versions import ModelVersions
    from sage_memory.store.database import make_engine, resolve_url
    from sage_memory.store.models import EXPERIENCES, SHARED_MODELS, TRAINING_INPUTS

    edge_dir = tmp_path / 'edge'
    fill_training_store(edge_dir)
    clustered = _near_copies(edge_dir, 5)
    env = dict(os.environ)
    edge = start_memory_node(edge_dir, env, device_id='edge', outbox__url=pg_url,
                             outbox__period_s=0.5, outbox__settle_s=0.0,
                             sleep__retrain__enabled='false')
    run_dir = tmp_path / 'assist_run'
    quick = [f'shared_memory.{k.replace("__", ".")}={v}' for k, v in
             quick_retrain_params.items()]
    assist_cmd = [sys.executable, '-m', 'sage.cli', 'launch', 'workstation', '--role',
                  'assist', '--without', 'language_encoder', '--quiet', '--run-dir',
                  str(run_dir), '--domain-id', str(ros_domain), '--set',
                  f'shared_memory.database_url={pg_url}',
                  f'shared_memory.data_dir={tmp_path / "assist"}',
                  'shared_memory.device_id=assist', 'shared_memory.sleep.min_cluster=3',
                  *quick]
    assist_log = tmp_path / 'assist.log'
    with assist_log.open('w') as log:
        assist = subprocess.Popen(assist_cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    shared = make_engine(resolve_url(pg_url))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node('assist_sleep_test', context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)

    def count(table) -> int:
        try:
            with shared.connect() as conn:
                return len(conn.execute(select(table.c.uuid)).all())
        except ProgrammingError:  # the outbox has not created the tables yet
            return 0

    try:
        live: list[dict] = []
        node.create_subscription(String, '/sage/models/live',
                                 lambda m: live.append(json.loads(m.data)), LATCHED_QOS)
        state_pub = node.create_publisher(MetabolicState, '/sage/metabolic_state', LATCHED_QOS)
        assert spin_until(ex, lambda: live, 60), 'the edge memory node did not come up'
        assert live[-1]['vision']['version'] == 'packaged'
        # 1. The edge ships its 45 experiences and 40 training inputs.
        assert spin_until(ex, lambda: count(TRAINING_INPUTS) == 40, 90), \
            (count(EXPERIENCES), count(TRAINING_INPUTS))
        assert count(EXPERIENCES) == 45
        # 2. The robot dreams: the assist's memory node sleeps. Killed mid-sleep (its worker
        # training), the launcher respawns it and it sleeps again: the dream still holds.
        assert spin_until(ex, lambda: state_pub.get_subscription_count() >= 2, 60), \
            'the assist memory node did not come up'
        state_pub.publish(MetabolicState(state='DREAM'))
        assert spin_until(ex, lambda: any(sleep_workers(p.pid)
                                          for p in _assist_memory_pids(run_dir)), 120), \
            'the assist host did not start retraining'
        [victim] = _assist_memory_pids(run_dir)
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert spin_until(ex, lambda: [p for p in _assist_memory_pids(run_dir)
                                       if p.pid != victim.pid], 60), 'not respawned'
        # 3. The respawned node retrains, promotes and shares; the edge adopts the version and
        # tells its encoders (/sage/models/live), and takes the pattern back.
        assert spin_until(ex, lambda: live[-1]['vision']['version'] != 'packaged'
                          or live[-1]['audio']['version'] != 'packaged', 300), \
            (live[-1], assist.poll())
        print(f'edge live {live[-1]} {time.monotonic() - killed:.1f} s after the kill')
        with shared.connect() as conn:
            origins = conn.execute(select(SHARED_MODELS.c.device_id, SHARED_MODELS.c.modality,
                                          SHARED_MODELS.c.version)).all()
        assert origins and all(o.device_id == 'assist' for o in origins)
        adopted = [m for m in ('vision', 'audio') if live[-1][m]['version'] != 'packaged']
        for m in adopted:
            v = ModelVersions(edge_dir / 'models', m).get(live[-1][m]['version'])
            assert v.info['origin']['device_id'] == 'assist'
            assert live[-1][m]['path'] == str(v.path)
        edge_db = make_engine(resolve_url(f'sqlite:///{edge_dir / "sage_memory.db"}'))
        try:
            def edge_patterns() -> list:
                with edge_db.connect() as conn:
                    return conn.execute(select(EXPERIENCES.c.uuid).where(
                        EXPERIENCES.c.kind == 'pattern')).all()
            assert spin_until(ex, edge_patterns, 30), 'no pattern came back'
        finally:
            edge_db.dispose()
        # Nothing lost or doubled on the shared store by the kill.
        with shared.connect() as conn:
            uuids = list(conn.execute(select(EXPERIENCES.c.uuid).where(
                EXPERIENCES.c.kind != 'pattern')).scalars())
        assert len(uuids) == len(set(uuids)) == 45 and clustered <= set(uuids)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        interrupt(assist, 60)
        print(assist_log.read_text(errors='replace')[-3000:])
        interrupt(edge, 30)
        shared.dispose()
