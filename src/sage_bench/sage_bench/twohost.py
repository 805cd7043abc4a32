"""`sage bench twohost`: the graph split between two hosts, timed over a real link.

Two network namespaces joined by an emulated link (sage_bench.two_hosts) stand for the robot and
the
machine beside it. The edge runs `sage launch nano --role edge` (sensing and SNARC), the
assist host `sage launch workstation --role assist` (the language encoder), both over DDS on
the link. A probe on the edge sends texts on /sage/text/in; each is encoded on the assist host
and scored by the edge's SNARC. Per link condition (added delay, packet loss) the JSON has the
remote latent round trip (text sent on the edge -> its Latent back on the edge) and the round
trip to the edge's Salience, p50/p95/p99, and how many came back.
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
from urllib.parse import urlparse

from sage_bench.graph import percentiles
from sage_bringup.environment import graph_env, resolve_domain
from sage_common.processes import interrupt
from sage_bringup.profile import load_profile
from sage_bench.rtps_traffic import by_topic
from sage_bench.two_hosts import ASSIST, EDGE, TwoHosts
from sage_bench.twohost_memory import SharedStore, check_exactly_once, outbox_state, wait_drained

DISCOVER_S = 120.0  # the remote encoder's model loads, then both sides match
# After the last text, what has not come back by then is counted lost. A reliable sample lost
# on the link is resent after the writer's next heartbeat (Fast DDS: every 3 s), and that
# repair can be lost too: in CI one latent of 10 took over 10 s at 5 % loss.
SETTLE_S = 20.0
STOP_S = 60.0       # a launcher's stop (SIGINT, then SIGKILL)
DRAIN_TIMEOUT_S = 300.0  # the edge's outbox backlog after a cut
OUTBOX_TRAFFIC = 'memory outbox (PostgreSQL)'


def _launch(rig: TwoHosts, side: str, profile: str, role: str, domain: int, run_dir: Path,
            without: str, sets: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, '-m', 'sage.cli', 'launch', profile, '--role', role, '--quiet',
           '--domain-id', str(domain), '--run-dir', str(run_dir)]
    cmd += ['--without', without] if without else []
    for expr in sets:
        cmd += ['--set', expr]
    log = (run_dir.parent / f'{side}.log').open('w')
    return subprocess.Popen(rig.command(side, cmd), stdout=log, stderr=subprocess.STDOUT)


def _probe(rig: TwoHosts, env: dict[str, str], count: int, rate_hz: float,
           remote_after: int) -> dict[str, Any]:
    cmd = [sys.executable, '-m', 'sage_bench.twohost_probe', str(count), str(rate_hz),
           str(DISCOVER_S), str(SETTLE_S), str(remote_after)]
    proc = subprocess.run(rig.command(EDGE, cmd), env=env, capture_output=True, text=True,
                          timeout=DISCOVER_S + SETTLE_S + count / rate_hz + 60, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'twohost probe failed ({proc.returncode}): '
                           f'{proc.stdout[-2000:]}{proc.stderr[-2000:]}')
    return json.loads(lines[-1])


def run_bench(seconds: float = 20.0, rate_hz: float = 2.0, delays_ms: str = '0,10',
              loss_pct: str = '0,5', cut: bool = True, cut_s: float = 30.0,
              shared_memory: bool = True, edge_without: str = '',
              domain_id: int | None = None, edge_profile: str = 'nano',
              assist_profile: str = 'workstation') -> dict[str, Any]:
    """Run both hosts once and time texts under each link condition (seconds of texts each).

    delays_ms / loss_pct: comma-separated conditions; each delay (one way, each direction) is
    run with no loss, each loss with no delay. link_kbit_per_s is everything that crossed the
    link while the texts ran (both directions: discovery, heartbeats, the texts' traffic);
    link_by_topic splits it (sage_bench.rtps_traffic): each topic's samples, DDS discovery and
    protocol overhead, the shared store's connection, and anything else.
    cut: then run the texts with the link down (the edge's own encoder answers), and once
    more after it is back (the assist host answers again); edge_encoder has the edge
    encoder's running counts of remote answers and local fallbacks after each condition.
    cut_s: how long the link stays cut (the texts run at its start).
    shared_memory: a PostgreSQL server on the assist side is the edge memory's outbox target
    (every scored input is stored, to give it traffic); the JSON has the backlog at the
    restore and how long until the shared store had acknowledged every row stored before it
    (outbox_drain_s; the edge keeps storing meanwhile), a last condition kills (-9) the
    server process serving the outbox, and at the end whether every experience stored on
    the edge is in PostgreSQL exactly once.
    edge_without: edge nodes not to start (a lighter edge for tests).
    """
    edge_prof = load_profile(edge_profile, role=EDGE).without(
        [n for n in edge_without.split(',') if n])
    assist_prof = load_profile(assist_profile, role=ASSIST)
    domain = int(resolve_domain(edge_prof, domain_id).value)
    work = Path(tempfile.mkdtemp(prefix='sage-bench-twohost-'))
    count = max(1, int(seconds * rate_hz))
    # The bench's graph keeps its state and memory in its own folder, not the user's.
    kept = {'memory': f'memory.data_dir={work / "edge-data"}',
            'snarc': f'snarc.state_file={work / "state" / "snarc.npz"}',
            'orchestrator': f'orchestrator.state_dir={work / "state"}'}
    off = set(edge_without.split(','))
    sets = [expr for node, expr in kept.items() if node not in off]
    conditions = ([('delay_ms', float(d)) for d in delays_ms.split(',') if d] +
                  [('loss_pct', float(p)) for p in loss_pct.split(',') if p and float(p) > 0] +
                  ([('link', 'down'), ('link', 'restored')] if cut else []) +
                  ([('shared_store', 'backend killed')] if shared_memory else []))
    results: list[dict[str, Any]] = []
    env = dict(os.environ)
    env.update(graph_env(edge_prof, domain, multi_host=True))  # as `--role` does
    edge_db = work / 'edge-data' / 'sage_memory.db'
    memory: dict[str, Any] = {}
    standby = 'language_encoder' not in off  # the edge's remote-first language encoder
    services: dict[int, str] = {}  # link traffic that is no DDS, by server port
    with TwoHosts() as rig:
        store = SharedStore(rig) if shared_memory and 'memory' not in off else None
        if store is not None:
            url = store.start()
            sets += [f'memory.outbox.url={url}', 'memory.outbox.period_s=0.5',
                     'memory.policy.mode=all']
            memory['shared_store'] = url
            services[urlparse(url).port] = OUTBOX_TRAFFIC
        # The assist host's memory node works on the shared store (sleep and retraining
        # there); without one it is not started.
        # Its own device id: both namespaces share this machine's host name (the default id),
        # and each host ignores the patterns and versions its own device id wrote.
        assist_sets = ([f'shared_memory.database_url={memory["shared_store"]}',
                        f'shared_memory.data_dir={work / "assist-data"}',
                        'shared_memory.device_id=assist']
                       if store is not None else [])
        procs = {
            ASSIST: _launch(rig, ASSIST, assist_profile, ASSIST, domain, work / 'assist',
                            '' if store is not None else 'shared_memory', assist_sets),
            EDGE: _launch(rig, EDGE, edge_profile, EDGE, domain, work / 'edge', edge_without,
                          sets),
        }
        try:
            for kind, value in conditions:
                rig.delay(0.0)
                rig.loss(0.0)
                rig.link(up=(kind, value) != ('link', 'down'))
                if kind == 'delay_ms':
                    rig.delay(value)
                elif kind == 'loss_pct':
                    rig.loss(value)
                row: dict[str, Any] = {kind: value}
                if kind == 'shared_store':
                    if store is None:
                        continue
                    # kill -9 of the backend serving the edge's outbox: it must reconnect
                    row['backends_killed'] = store.kill_backends(rig.addr[EDGE])
                t0, before, traffic0 = time.monotonic(), rig.counts(), rig.traffic()
                # with the link up, the texts are measured once the assist host answers
                # (the edge's standby encoder, when it runs, tells)
                remote_after = -1
                if standby and (kind, value) != ('link', 'down'):
                    last = results[-1]['edge_encoder'] if results else {}
                    remote_after = int(last.get('remote_answered', 0))
                got = _probe(rig, env, count, rate_hz, remote_after)
                after, wall = rig.counts(), time.monotonic() - t0
                traffic1 = rig.traffic()
                if (kind, value) == ('link', 'down'):
                    time.sleep(max(0.0, cut_s - wall))  # the cut lasts cut_s
                    row['cut_s'] = round(time.monotonic() - t0, 1)
                    if store is not None:
                        state = outbox_state(edge_db) or {'backlog': None, 'last_id': 0}
                        row['outbox_backlog_at_restore'] = state['backlog']
                        rig.link(up=True)
                        drained = wait_drained(edge_db, int(state['last_id']), DRAIN_TIMEOUT_S)
                        row['outbox_drain_s'] = None if drained is None else round(drained, 2)
                row.update(sent=got['sent'], latent_back=len(got['latent_ms']),
                           salience_back=len(got['salience_ms']),
                           ready_s=got['ready_s'], warmup_texts=got['warmup_texts'],
                           latent_round_trip_ms=percentiles(got['latent_ms']),
                           latent_min_ms=min(got['latent_ms'], default=None),
                           salience_round_trip_ms=percentiles(got['salience_ms']),
                           wall_s=round(wall, 1),
                           link_kbit_per_s=round(
                               (after['bytes'] - before['bytes']) * 8 / 1e3 / wall, 1),
                           link_dropped=after['dropped'] - before['dropped'],
                           link_by_topic=by_topic(
                               traffic1[0] - traffic0[0], traffic1[1] - traffic0[1],
                               got['writer_gids'], wall, services),
                           salience_gaps=got['salience_gaps'],
                           salience_scored=got['salience_scored'],
                           edge_encoder=got['edge_encoder'])
                results.append(row)
        finally:
            codes = {side: interrupt(p, STOP_S) for side, p in procs.items()}
            try:
                if store is not None and codes[EDGE] == 0:
                    memory.update(check_exactly_once(rig, edge_db, memory['shared_store']))
            finally:
                if store is not None:
                    store.stop()
    full = {side: (work / f'{side}.log').read_text(errors='replace') for side in (EDGE, ASSIST)}
    logs = {side: text[-1500:] for side, text in full.items()}
    return {'domain_id': domain, 'texts_per_condition': count, 'rate_hz': rate_hz,
            'edge': f'{edge_profile} --role edge', 'assist': f'{assist_profile} --role assist',
            'edge_nodes': [n.name for n in edge_prof.nodes],
            'assist_nodes': [n.name for n in assist_prof.nodes], 'conditions': results,
            'memory': memory, 'exit_codes': codes,
            'respawns': {side: text.count('[sage] respawning') for side, text in full.items()},
            'logs_tail': logs, 'work_dir': str(work)}
