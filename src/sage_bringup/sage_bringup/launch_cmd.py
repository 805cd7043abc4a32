"""`sage launch`: run a profile's nodes as supervised processes and show salience live."""
from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import sys
import time

from sage_bringup.environment import describe, graph_choices, graph_env, join_graph
from sage_bringup.node_groups import compose_groups
from sage_bringup.paths import repo_root
from sage_bringup.profile import Profile, ros_args
from sage_bringup.supervisor import Supervisor, SupervisorConfig
from sage_common.errors import SageError

EXIT_OK = 0
EXIT_NODE_FAILED = 1
EXIT_CONFIG = 2


def runs_dir() -> Path:
    env = os.environ.get('SAGE_RUNS_DIR')
    if env:
        return Path(env)
    root = repo_root()
    return root / 'runs' if root else Path.home() / '.local' / 'share' / 'sage' / 'runs'


def new_run_dir(profile: Profile) -> Path:
    stamp = time.strftime('%Y%m%d-%H%M%S')
    base = runs_dir() / f'{profile.name}-{stamp}-{os.getpid()}'
    path, n = base, 1
    while True:  # one process may start two runs within a second (a launch file included twice)
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f'{base.name}-{n}')


def supervisor_config(profile: Profile) -> SupervisorConfig:
    s = profile.settings
    return SupervisorConfig(
        backoff_initial_s=float(s.get('respawn_backoff_s', 0.5)),
        backoff_max_s=float(s.get('respawn_backoff_max_s', 30.0)),
        max_consecutive_failures=int(s.get('max_consecutive_failures', 10)),
        grace_s=float(s.get('shutdown_grace_s', 3.0)))


def graph_supervisor(profile: Profile, run_dir: Path, domain_id: int | None = None,
                     log=lambda text: None, multi_host: bool | None = None,
                     compose: bool | None = None, **extra_env: str) -> Supervisor:
    """A Supervisor for the profile's nodes in the graph's environment (graph_env plus
    extra_env), with this process joined to the same graph so its own observer node sees it.

    compose: run launch.compose_groups as one process each (None: the profile's
    launch.compose; a profile without the key: off).
    """
    env = dict(os.environ)
    env.update(graph_env(profile, domain_id, multi_host))
    env.update(extra_env)
    join_graph(env)
    processes = compose_groups(profile) if profile.composed(compose) else profile.nodes
    return Supervisor(processes, run_dir, env, supervisor_config(profile), log=log,
                      ros_args=ros_args(profile))


def service_watch(profile: Profile, say):
    """READY/WATCHDOG for systemd (sage_bringup.service_watch) when $NOTIFY_SOCKET is set."""
    if not os.environ.get('NOTIFY_SOCKET'):
        return None
    # lazy: keeps ROS out of this module's import
    from sage_bringup.service_watch import ServiceWatch
    watch = ServiceWatch.from_env([n.name for n in profile.nodes], say)
    if watch is not None:
        watch.start()
    return watch


def run_launch(profile: Profile, duration: float | None, domain_id: int | None = None,
               run_dir: Path | None = None, live: bool = True, out=sys.stdout,
               multi_host: bool | None = None, compose: bool | None = None) -> int:
    """Run the graph until `duration` seconds pass or SIGINT/SIGTERM arrives.

    domain_id, multi_host and compose are the command-line switches (None: not given); the DDS
    settings follow sage_bringup.environment's rule and are printed with where each came from.

    Returns:
        0 when stopped as asked, 1 when a node kept crashing and was given up,
        2 when a node refused its configuration.
    """
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    settings = describe(graph_choices(profile, domain_id, multi_host))  # bad values: raise now
    run_dir = run_dir or new_run_dir(profile)
    sup = graph_supervisor(profile, run_dir, domain_id, say, multi_host, compose,
                           SAGE_RUN_DIR=str(run_dir))

    stop_reason: list[str] = []

    def on_signal(signum, _frame) -> None:
        stop_reason.append(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    monitor = watch = None
    say(f'[sage] profile {profile.name}: {len(profile.nodes)} nodes in '
        f'{len(sup.children)} processes, '
        f'ROS_DOMAIN_ID={sup.env["ROS_DOMAIN_ID"]}, run folder {run_dir}')
    say(f'[sage] DDS: {settings}')
    if ros_args(profile) or any(n.ros_parameters for n in profile.nodes):
        sim = sorted(n.name for n in profile.nodes if n.ros_parameters.get('use_sim_time'))
        say(f"[sage] ROS: namespace {profile.settings.get('namespace') or '/'}, log level "
            f"{profile.settings.get('log_level') or 'default'}, use_sim_time on "
            f"{', '.join(sim) if sim else 'no node'}")
    started = time.monotonic()
    try:
        sup.start()
        if live:
            # lazy: keeps ROS out of this module's import
            from sage_bringup.monitor import MonitorThread
            monitor = MonitorThread(str(profile.settings.get('namespace', '')))
            monitor.start()
        watch = service_watch(profile, say)  # None unless run as a systemd notify service
        next_print = started + 2.0
        while not stop_reason:
            time.sleep(0.1)
            sup.poll()
            now = time.monotonic()
            if sup.config_error:
                stop_reason.append('config error')
            elif sup.failed and len(sup.failed) == len(sup.children):
                stop_reason.append('all nodes failed')
            elif duration is not None and now - started >= duration:
                stop_reason.append('duration reached')
            if watch is not None:
                watch.tick()
            if monitor is not None and now >= next_print:
                say(f'[{now - started:5.1f}s] {monitor.snapshot_line()}')
                next_print = now + 2.0
    finally:
        if watch is not None:
            watch.stop(stop_reason[0] if stop_reason else 'error')
        killed = sup.stop()
        if monitor is not None:
            monitor.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    elapsed = time.monotonic() - started
    say(f'[sage] stopped ({stop_reason[0] if stop_reason else "?"}) after {elapsed:.1f} s'
        + (f'; killed after grace: {", ".join(killed)}' if killed else ''))
    summary = {'profile': profile.name, 'run_dir': str(run_dir), 'elapsed_s': elapsed,
               'stop_reason': stop_reason[0] if stop_reason else '',
               'failed_nodes': sup.failed,
               'restarts': {c.spec.name: c.restarts for c in sup.children}}
    if monitor is not None:
        summary.update(print_summary(monitor, profile, say))
    (run_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    if sup.config_error:
        return EXIT_CONFIG
    return EXIT_NODE_FAILED if sup.failed else EXIT_OK


def print_summary(monitor, profile: Profile, say) -> dict:
    """Final report: inputs per modality, attention rate, experiences stored, database."""
    with monitor.lock:
        stats = monitor.stats
        per = {name: {'inputs': m.inputs, 'attended': m.attended, 'stored_seen': m.stored}
               for name, m in stats.modalities.items() if m.inputs or m.stored}
        rate = stats.attention_rate
        stored_seen = stats.stored_total
    say('[sage] summary')
    for name, v in per.items():
        say(f'  {name:9s} inputs {v["inputs"]:6d}  attended {v["attended"]:5d}  '
            f'stored {v["stored_seen"]:5d}')
    say(f'  attention rate {rate:.1%}; experiences stored this run: {stored_seen}')
    db = database_summary(profile)
    for line in database_lines(db):
        say(line)
    return {'modalities': per, 'attention_rate': rate, 'stored_this_run': stored_seen,
            'database': db}


def database_summary(profile: Profile) -> dict | None:
    """Rows in the memory node's database, read with the memory package's own code.

    `total` is None when the database cannot be read (`error` says why); `quarantined` lists
    corrupt copies the memory node set aside, `read_only` why it could not write.
    """
    if 'memory' not in {n.name for n in profile.nodes}:
        return None
    # lazy: keeps SQLAlchemy out of this module's import
    from sage_memory.store.sqlite_file import quarantined_files
    from sage_memory.store.memory_store import redact, resolve_url, sqlite_path, summarize
    params = profile.node('memory').parameters
    url = resolve_url(str(params['database_url']), str(params['data_dir']))
    path = sqlite_path(url)
    location = str(path) if path else redact(url)
    quarantined = [str(p) for p in quarantined_files(path)] if path else []
    try:
        rows = summarize(url)
    except SageError as err:
        return {'location': location, 'total': None, 'error': str(err),
                'quarantined': quarantined, 'read_only': ''}
    return {'location': location, 'total': rows['total'],
            'by_modality': rows.get('by_modality', {}), 'quarantined': quarantined,
            'read_only': rows.get('read_only', ''),
            'training_inputs': rows.get('training_inputs', {})}


def database_lines(db: dict | None) -> list[str]:
    """The launch summary's lines about the database (none without a memory node)."""
    if not db:
        return []
    if db['total'] is None:
        lines = [f'  database {db["location"]}: unknown number of experiences '
                 f'(unreadable: {db["error"]})']
    else:
        lines = [f'  database {db["location"]}: {db["total"]} experiences in all']
        inputs = db.get('training_inputs') or {}
        if inputs.get('count'):
            per = ', '.join(f'{m} {v["count"]}' for m, v in inputs['by_modality'].items())
            lines.append(f'  encoder inputs kept for sleep: {inputs["count"]} ({per}), '
                         f'{inputs["bytes_per_input"] / 1024:.1f} kB each')
    if db.get('read_only'):
        lines.append(f'  NOTE: the database is read-only ({db["read_only"]}): nothing new was '
                     'stored')
    for path in db.get('quarantined', []):
        lines.append(f'  NOTE: quarantined corrupt database {path} (failed its integrity '
                     'check at a start; not in use)')
    return lines
