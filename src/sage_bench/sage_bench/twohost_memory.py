"""Memory across the two hosts of `sage bench twohost`: a PostgreSQL server on the assist side
(its namespace address), the edge's outbox towards it, and the exactly-once check.

Run inside a namespace by the bench (the shared store is reachable only over the link):
    python -m sage_bench.twohost_memory drain SQLITE_FILE URL   ship the edge's remaining backlog
    python -m sage_bench.twohost_memory uuids URL          print the shared store's uuids (JSON)
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil

from sage_bringup.paths import repo_root
from sage_bench.two_hosts import ASSIST, EDGE, TwoHosts

PG_PORT = 55432


def _pg_script() -> Path:
    root = repo_root()
    if root is None:
        raise RuntimeError('the shared store needs scripts/pg_test_server.sh (a source checkout)')
    return root / 'scripts' / 'pg_test_server.sh'


class SharedStore:
    """A throwaway PostgreSQL server listening on the assist side's address only."""

    def __init__(self, rig: TwoHosts) -> None:
        self.rig = rig
        self.dir = Path(tempfile.mkdtemp(prefix='sage-twohost-pg-'))
        self.env = dict(os.environ, SAGE_PG_DIR=str(self.dir), SAGE_PG_PORT=str(PG_PORT),
                        SAGE_PG_HOST=rig.addr[ASSIST],
                        SAGE_PG_ALLOW=f'10.202.{rig.net}.0/24')  # both ends of the link
        self.url = ''

    def start(self) -> str:
        proc = subprocess.run(['ip', 'netns', 'exec', self.rig.ns[ASSIST], 'bash',
                               str(_pg_script()), 'start'], env=self.env, capture_output=True,
                              text=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f'shared PostgreSQL did not start: {proc.stderr[-1500:]}')
        self.url = proc.stdout.strip().splitlines()[-1]
        return self.url

    def kill_backends(self, client: str) -> int:
        """kill -9 the server processes serving `client` (an address): PostgreSQL then drops
        every connection and recovers, as after a crashed backend. Returns how many."""
        pid_file = self.dir / 'data' / 'postmaster.pid'
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        killed = 0
        for child in postmaster.children():
            try:
                if client in ' '.join(child.cmdline()):
                    child.kill()
                    killed += 1
            except psutil.Error:
                continue
        return killed

    def stop(self) -> None:
        subprocess.run(['bash', str(_pg_script()), 'stop'], env=self.env, capture_output=True,
                       timeout=120, check=False)


def outbox_state(db_file: Path) -> dict[str, Any] | None:
    """The edge's outbox: backlog, cursor and newest local id (None: no outbox yet)."""
    # lazy: keeps SQLAlchemy out of this module's import
    from sage_memory.sync.outbox import status_of
    if not db_file.exists():
        return None
    found = status_of(str(db_file))
    return found[0] if found else None


def wait_drained(db_file: Path, upto_id: int, timeout_s: float) -> float | None:
    """Seconds until the shared store acknowledged every row up to local id `upto_id` (None:
    not within timeout_s). The edge keeps storing meanwhile, so the backlog itself need never
    be 0 when looked at: what counts is that the rows stored before the restore went out."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        state = outbox_state(db_file)
        if state is not None and int(state['cursor']) >= upto_id:
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def check_exactly_once(rig: TwoHosts, db_file: Path, url: str) -> dict[str, Any]:
    """After the edge stopped: ship what is left (as its next start would), then compare the
    edge's uuids with the shared store's."""
    # lazy: keeps SQLAlchemy out of this module's import
    from sage_memory.sync.transfer import portable_rows
    cmd = [sys.executable, '-m', 'sage_bench.twohost_memory']
    drain = subprocess.run(rig.command(EDGE, [*cmd, 'drain', str(db_file), url]),
                           capture_output=True, text=True, timeout=600, check=False)
    listed = subprocess.run(rig.command(ASSIST, [*cmd, 'uuids', url]), capture_output=True,
                            text=True, timeout=300, check=False)
    if drain.returncode != 0 or listed.returncode != 0:
        raise RuntimeError(f'exactly-once check failed: {drain.stderr[-1500:]}'
                           f'{listed.stderr[-1500:]}')
    shared = json.loads(listed.stdout.strip().splitlines()[-1])
    local = set(portable_rows(str(db_file)))
    return {'edge_rows': len(local), 'shared_rows': len(shared),
            'shared_distinct': len(set(shared)), 'missing': len(local - set(shared)),
            'final_drain_rows': int(drain.stdout.strip().splitlines()[-1])}


def _main(argv: list[str]) -> None:
    # lazy: keeps SQLAlchemy out of this module's import
    from sage_memory.store.database import make_engine, resolve_url
    from sage_memory.sync.outbox import Outbox, stored_uuids
    if argv[0] == 'drain':
        local = make_engine(resolve_url(argv[1]))
        box = Outbox(local, argv[2])
        print(box.drain())
        box.close()
        local.dispose()
    elif argv[0] == 'uuids':
        print(json.dumps(stored_uuids(argv[1])))
    else:
        raise SystemExit(f'unknown command {argv[0]!r} (drain, uuids)')


if __name__ == '__main__':
    _main(sys.argv[1:])
