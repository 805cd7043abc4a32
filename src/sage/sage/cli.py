"""The `sage` command line: launch, bench, replay, scenario, train, memory, status, bag."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
import sys
from typing import Optional

import typer

from sage.cli_args import SageGroup
from sage_common.errors import SageError

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=SageGroup,
                  help='SAGE attention kernel: run the graph, replay bags, benchmark.')
SET_HELP = 'override: node.param=value (repeatable; --set a.b=1 c.d=2 works too)'
DOMAIN_HELP = ("ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else the profile's launch.domain_id; "
               'the same rule for every command)')
WATCH_PROFILE_HELP = "profile the graph runs (its launch.domain_id is the default domain)"


def fail(message: str, code: int = 2) -> None:
    typer.echo(f'ERROR: {message}', err=True)
    raise typer.Exit(code)


def domain_option():
    return typer.Option(None, '--domain-id', min=0, max=232, help=DOMAIN_HELP)


def graph_settings(profile: str, domain_id: Optional[int]) -> list:
    """The running graph's DDS settings by sage.environment's one rule, printed at start."""
    from sage.environment import describe, graph_choices
    from sage.profile import load_launch_settings
    try:
        choices = graph_choices(load_launch_settings(profile), domain_id)
    except SageError as err:
        fail(str(err))
    typer.echo(f'[sage] DDS: {describe(choices)}')
    return choices


@app.command()
def launch(
    profile: str = typer.Argument(..., help='profile name (nano, thor) or a YAML path'),
    duration: Optional[float] = typer.Option(None, '--duration', min=0.0,
                                             help='stop after this many seconds'),
    set_: list[str] = typer.Option([], '--set', help=SET_HELP),
    domain_id: Optional[int] = domain_option(),
    run_dir: Optional[Path] = typer.Option(None, '--run-dir', help='folder for logs/params'),
    quiet: bool = typer.Option(False, '--quiet', help='no live salience lines'),
    without: str = typer.Option('', '--without',
                                help='comma-separated nodes not to start (e.g. the sensors, '
                                     'when a bag is played into the graph)'),
    multi_host: bool = typer.Option(False, '--multi-host',
                                    help='DDS on the LAN too (default: this host only); '
                                         'same as launch.multi_host: true in the profile'),
    compose: Optional[bool] = typer.Option(
        None, '--compose/--no-compose',
        help='run each launch.compose_groups group of the profile in one process, or every '
             "node in its own (default: the profile's launch.compose)"),
    role: str = typer.Option('', '--role',
                             help="this host's part when the graph spans two hosts "
                                  '(launch.roles, e.g. edge on the robot, assist beside it); '
                                  'implies --multi-host'),
) -> None:
    """Run a profile's node graph until --duration or Ctrl-C, then print a summary."""
    from sage.launch_cmd import run_launch
    from sage.profile import load_profile
    try:
        prof = load_profile(profile, set_, role=role or None).without(
            [n for n in without.split(',') if n])
    except SageError as err:
        fail(str(err))
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        code = run_launch(prof, duration, domain_id, run_dir, live=not quiet,
                          multi_host=multi_host or bool(role) or None, compose=compose)
    except SageError as err:
        fail(str(err))
    raise typer.Exit(code)


@app.command()
def bench(
    name: str = typer.Argument(..., help='graph | sensors | encoders | snarc | orchestrator | '
                                         'memory | transport | salience | twohost | sleep | '
                                         'targets'),
    seconds: Optional[float] = typer.Option(None, '--seconds', min=0.1,
                                            help='measurement time (benchmark default)'),
    out: Optional[Path] = typer.Option(None, '--out', '-o', help='JSON output path'),
    profile: Optional[str] = typer.Option(None, '--profile',
                                          help='graph, sensors: profile (default nano)'),
    with_graph: bool = typer.Option(False, '--with-graph',
                                    help='sensors: run the rest of the profile graph on the '
                                         'same cores (the real load)'),
    baseline: bool = typer.Option(False, '--baseline',
                                  help='sensors: also run with capture threads at normal '
                                       'scheduling first, and compare'),
    domain_id: Optional[int] = typer.Option(
        None, '--domain-id', min=0, max=232,
        help='graph, sensors, transport: ROS_DOMAIN_ID of the graph the benchmark starts '
             "(graph: default $ROS_DOMAIN_ID, else the profile's launch.domain_id)"),
    seeds: Optional[int] = typer.Option(None, '--seeds', min=1,
                                        help='salience: number of scenes (seeds) to replay; '
                                             'sleep: scenes per day; targets: tuning '
                                             'rooms (from seed 2)'),
    scenes: Optional[str] = typer.Option(None, '--scenes',
                                         help='salience: realistic (default) | synthetic'),
    seed_set: Optional[str] = typer.Option(None, '--seed-set',
                                           help='salience, sleep: report (default) | '
                                                'tuning'),
    skip: Optional[int] = typer.Option(None, '--skip', min=0,
                                       help='sleep: pass over the seed set\'s first SKIP seeds '
                                            '(other rooms)'),
    delays: Optional[str] = typer.Option(None, '--delays',
                                         help='twohost: added link delays in ms, e.g. 0,10'),
    loss: Optional[str] = typer.Option(None, '--loss',
                                       help='twohost: link packet loss in %, e.g. 0,5'),
    swap: bool = typer.Option(False, '--swap',
                              help='graph: make new vision/audio model versions live halfway '
                                   'and report what the hot swap cost'),
    compose: Optional[bool] = typer.Option(
        None, '--compose/--no-compose',
        help="graph: run launch.compose_groups one process each, or every node in its own "
             "(default: the profile's launch.compose)"),
    hour: bool = typer.Option(False, '--hour',
                              help='sleep: one sleep over an hour of stored inputs (wall '
                                   'time and peak memory) instead of the day-1/day-2 run'),
    preempt: Optional[int] = typer.Option(
        None, '--preempt', min=1,
        help='sleep: preempt this many sleeps in DREAM with a salience spike and time each '
             'stop instead of the day-1/day-2 run'),
    set_: list[str] = typer.Option([], '--set', help='graph, sensors, salience: profile ' +
                                   SET_HELP),
) -> None:
    """Run a named benchmark and write JSON (medians, p95/p99, ratios to a baseline)."""
    from sage.bench_cmd import BENCHMARKS, UnknownOption, run_named, write_json
    if name not in BENCHMARKS:
        fail(f"unknown benchmark '{name}' (known: {', '.join(BENCHMARKS)})")
    options: dict[str, object] = {}
    if profile is not None:
        options['profile'] = profile
    if with_graph:
        options['with_graph'] = True
    if baseline:
        options['baseline'] = True
    if hour:
        options['hour'] = True
    if preempt is not None:
        options['preempt'] = preempt
    if swap:
        options['swap'] = True
    if compose is not None:
        options['compose'] = compose
    if domain_id is not None:
        options['domain_id'] = domain_id
    if set_:
        options['overrides'] = list(set_)
    for key, value in (('seeds', seeds), ('scenes', scenes), ('seed_set', seed_set),
                       ('skip', skip), ('delays_ms', delays), ('loss_pct', loss)):
        if value is not None:
            options[key] = value
    try:
        result = run_named(name, seconds, **options)
    except ModuleNotFoundError as err:
        fail(f"benchmark '{name}' is not available: {err}")
    except (UnknownOption, SageError) as err:
        fail(str(err))
    path = write_json(result, out)
    if name == 'salience':
        from sage.bench_salience import print_table
        print_table(result['results'])
    if name == 'targets':
        from sage.bench_targets import print_table as print_targets_table
        print_targets_table(result['results'], typer.echo)
    if name == 'graph':
        from sage.bench_graph import print_table as print_graph_table
        print_graph_table(result['results'], typer.echo)
    typer.echo(f'wrote {path}')


def _node_params(profile: str, overrides: list[str]) -> dict[str, dict]:
    from sage.profile import load_profile
    return {n.name: dict(n.parameters) for n in load_profile(profile, overrides).nodes}


@app.command()
def replay(
    bag: Path = typer.Argument(..., help='rosbag2 folder (MCAP or sqlite3)'),
    offline: bool = typer.Option(False, '--offline',
                                 help='run the node cores in this process (no graph)'),
    profile: str = typer.Option('nano', '--profile'),
    decisions: Optional[Path] = typer.Option(None, '--decisions',
                                             help='JSONL of decisions (offline)'),
    set_: list[str] = typer.Option([], '--set', help=SET_HELP),
    rate: float = typer.Option(1.0, '--rate', min=0.01, help='playback rate (live replay)'),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Replay a bag: offline through the same cores (decisions JSONL), or into the graph."""
    if not offline:
        from sage.bag import play
        from sage.environment import as_env, joined_graph
        with joined_graph(as_env(graph_settings(profile, domain_id))):
            raise typer.Exit(play(bag, rate=rate))
    if decisions is None:
        fail('--offline needs --decisions OUT.jsonl')
    from sage_eval.replay import replay_bag
    summary = replay_bag(bag, _node_params(profile, set_), decisions)
    typer.echo(json.dumps(dataclasses.asdict(summary), default=str))


@app.command()
def experiment(
    bag: Path = typer.Argument(..., help='bag to replay offline'),
    profile: str = typer.Option('nano', '--profile'),
    set_: list[str] = typer.Option([], '--set', help='variant A: node.param=value '
                                                  '(repeatable; --set a.b=1 c.d=2 works too)'),
    vs: list[str] = typer.Option([], '--vs', help="another variant: 'a.b=1 c.d=2' (quotes "
                                                  'optional)'),
    jobs: int = typer.Option(0, '--jobs', min=0, help='variants replayed at once, one process '
                             'and one core each (0 = one per core this process may use)'),
    cache: bool = typer.Option(True, '--cache/--no-cache', help='keep what the encoders made '
                               'of the bag (~/.cache/sage/encoded): variants with the same '
                               'encoder settings, and later experiments, skip encoding'),
) -> None:
    """Replay a bag under two or more parameter sets and compare them side by side."""
    from sage.experiment import parse_variants, run_experiment
    from sage_eval.encoded_cache import default_dir
    run_experiment(bag, profile, parse_variants(set_, vs),
                   jobs=jobs or len(os.sched_getaffinity(0)),
                   cache=default_dir() if cache else None)


@app.command()
def report(
    src: Path = typer.Argument(..., help='a bag or a run folder'),
    out: Path = typer.Option(..., '-o', '--out', help='output folder or .html file'),
    labels: Optional[Path] = typer.Option(
        None, '--labels', help='labels JSON of the scene the run was fed: each event, caught '
        'or missed, and the axis that caught it (default: <bag>.labels.json if present)'),
) -> None:
    """Write an HTML report with plots of salience, decisions, ATP and metabolic state."""
    from sage.report import make_report
    typer.echo(f'wrote {make_report(src, out, labels)}')


@app.command()
def status(
    duration: Optional[float] = typer.Option(None, '--duration', min=0.1),
    once: bool = typer.Option(False, '--once', help='listen a few seconds, print one screen'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Live terminal view of the running graph."""
    from sage.environment import as_env, joined_graph
    from sage.status import run_status
    choices = graph_settings(profile, domain_id)
    with joined_graph(as_env(choices)):
        code = run_status(duration=duration, once=once, settings=choices)
    raise typer.Exit(code)


# The trainer parses its own options (and --help): they are shown by `sage train vision --help`.
@app.command(context_settings={'allow_extra_args': True, 'ignore_unknown_options': True,
                               'help_option_names': []}, add_help_option=False)
def train(ctx: typer.Context,
          modality: Optional[str] = typer.Argument(None, help='vision | audio')) -> None:
    """Train a puzzle VQ-VAE offline (options: sage train vision --help)."""
    from sage_encoders.train import main as train_main
    raise typer.Exit(train_main([*([modality] if modality else []), *ctx.args],
                                prog='sage train'))


bag_app = typer.Typer(no_args_is_help=True, help='Record, play and inspect rosbag2 bags.')
app.add_typer(bag_app, name='bag')


@bag_app.command('record')
def bag_record(
    out: Path = typer.Argument(..., help='bag folder to create'),
    topics: list[str] = typer.Option([], '--topic', '-t', help='topic (default: all /sage)'),
    duration: Optional[float] = typer.Option(None, '--duration', min=0.1),
    storage: str = typer.Option('mcap', '--storage', help='mcap | sqlite3'),
    compression: str = typer.Option('zstd', '--compression',
                                    help='zstd (MCAP chunks; sqlite3: per message) | none'),
    max_size: Optional[float] = typer.Option(
        None, '--max-size', min=1.0,
        help='MB per file: split the bag into files of about this size (default: one file)'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Record topics of the running graph into a standard rosbag2 bag."""
    from sage.bag import record
    from sage.environment import as_env, joined_graph
    with joined_graph(as_env(graph_settings(profile, domain_id))):
        raise typer.Exit(record(out, topics or None, duration, storage, compression=compression,
                                max_bytes=int((max_size or 0) * 1e6)))


@bag_app.command('play')
def bag_play(
    bag: Path = typer.Argument(...),
    rate: float = typer.Option(1.0, '--rate', min=0.01),
    loop: bool = typer.Option(False, '--loop'),
    clock: bool = typer.Option(False, '--clock', help='publish /clock (simulated time)'),
    topics: list[str] = typer.Option(
        [], '--topics', '--topic', '-t',
        help='play only these topics (comma-separated; default: the sensor inputs)'),
    exclude: list[str] = typer.Option([], '--exclude', help='never play these (comma-separated)'),
    play_all: bool = typer.Option(False, '--all',
                                  help="every recorded topic, the graph's outputs too"),
    wait: Optional[float] = typer.Option(
        None, '--wait', min=0.0,
        help="at most this many seconds to wait for the graph's subscribers before playing "
             '(default 5)'),
    wait_for: list[str] = typer.Option(
        [], '--wait-for',
        help='also wait (within --wait) until these topics have readers: TOPIC or TOPIC=N, '
             'comma-separated, e.g. a node still loading its model'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Publish a bag's sensor inputs (or --topics, --all) with their original timing."""
    from sage.bag import play
    from sage.environment import as_env, joined_graph
    with joined_graph(as_env(graph_settings(profile, domain_id))):
        raise typer.Exit(play(bag, rate=rate, loop=loop, clock=clock, topics=topics,
                                exclude=exclude, play_all=play_all, delay=wait,
                                wait_for=wait_for))


@bag_app.command('info')
def bag_info(bag: Path = typer.Argument(...)) -> None:
    """Topics, types, counts and duration of a bag."""
    from sage.bag import info, print_info
    print_info(info(bag))


scenario_app = typer.Typer(no_args_is_help=True, help='Labelled scenario bags for tests.')
app.add_typer(scenario_app, name='scenario')


@scenario_app.command('make')
def scenario_make(
    out: Path = typer.Argument(..., help='bag folder to create'),
    seed: int = typer.Option(0, '--seed'),
    duration: float = typer.Option(150.0, '--duration', min=10.0),
    program: str = typer.Option('standard', '--program', help='standard | reward'),
) -> None:
    """Write a labelled scenario bag (real photos and speech) and its labels JSON."""
    from sage_eval.scenario import labels_path, make_scenario
    make_scenario(out, seed, duration, program=program)
    typer.echo(f'wrote {out} and {labels_path(out)}')


@scenario_app.command('score')
def scenario_score(
    decisions: Path = typer.Argument(..., help='decisions JSONL from sage replay'),
    bag: Path = typer.Argument(..., help='the scenario bag (labels beside it)'),
) -> None:
    """Recall, false alarms per calm minute and habituation drop of a replay of BAG."""
    from sage_eval.scenario import labels_path, score_decisions
    try:
        report = score_decisions(decisions, labels_path(bag), bag=bag)
    except SageError as err:
        fail(str(err))
    if report['source'] != 'verified':
        typer.echo(f"WARNING: {report['source_note']}", err=True)
    typer.echo(json.dumps(report, indent=2))


memory_app = typer.Typer(no_args_is_help=True, help='Inspect, export, import, sync memory.')
app.add_typer(memory_app, name='memory')
URL_HELP = "database URL or SQLite path ('' = default file)"


@memory_app.command('summary')
def memory_summary(url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Rows per modality, devices and time span of a memory database."""
    from sage_memory.store import summarize
    typer.echo(json.dumps(summarize(url), indent=2, default=str))


@memory_app.command('sleep')
def memory_sleep(
    max_duration: float = typer.Option(600.0, '--max-duration', min=1.0, max=3600.0,
                                       help='longest sleep in seconds'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Ask the running graph's memory node to sleep now: consolidate, then retrain."""
    from sage.environment import as_env, joined_graph
    from sage.memory_sleep import run_memory_sleep
    with joined_graph(as_env(graph_settings(profile, domain_id))):
        code = run_memory_sleep(max_duration)
    raise typer.Exit(code)


@memory_app.command('query')
def memory_query(text: str = typer.Argument(..., help='what to recall'),
                 k: int = typer.Option(10, '--k', help='number of results (1..1000)'),
                 url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Recall by text: the k most similar language memories, embedded as the memory node does."""
    from sage.memory_query import run_memory_query
    raise typer.Exit(run_memory_query(text, k, url))


@memory_app.command('export')
def memory_export(path: Path = typer.Argument(..., help='portable file to write'),
                  url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Export every experience and state row to a portable file."""
    from sage_memory.transfer import export_memory
    typer.echo(json.dumps(export_memory(url, path), default=str))


@memory_app.command('import')
def memory_import(path: Path = typer.Argument(..., help='file written by export'),
                  url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Merge an exported file into a database (idempotent)."""
    from sage_memory.transfer import import_memory
    typer.echo(json.dumps(import_memory(url, path), default=str))


@memory_app.command('sync')
def memory_sync(remote: str = typer.Argument(..., help="shared PostgreSQL URL, or 'status': "
                                                       "this store's outboxes"),
                url: str = typer.Option('', '--url', help=URL_HELP)) -> None:
    """Two-way merge with a shared database (idempotent, loses nothing); `sync status` shows
    each outbox's shared store, backlog and last exchange."""
    if remote == 'status':
        from sage_memory.outbox import status_of
        typer.echo(json.dumps(status_of(url), indent=2, default=str))
        return
    from sage_memory.transfer import sync
    typer.echo(json.dumps(sync(url, remote), default=str))


@memory_app.command('models')
def memory_models(
    modality: Optional[str] = typer.Option(None, '--modality', help='vision or audio '
                                           '(default: both)'),
    rollback: Optional[str] = typer.Option(None, '--rollback', help="make an older version "
                                           "(v0001, ...) or 'packaged' live again "
                                           '(needs --modality)'),
    data_dir: str = typer.Option('~/.local/share/sage', '--data-dir', help="the memory "
                                 "node's data_dir (versions are in <data_dir>/models)"),
) -> None:
    """Encoder model versions written by sleep retraining: list them, or roll one back.

    A running graph follows a rollback within a few seconds: the memory node reads which
    version is live at its diagnostics period and the encoders load what it publishes.
    """
    from sage_encoders.model_versions import ModelVersions, VersionError, format_rows
    root = Path(data_dir).expanduser() / 'models'
    mods = [modality] if modality else ['vision', 'audio']
    try:
        if rollback is not None:
            if not modality:
                fail('--rollback needs --modality vision|audio')
            doc = ModelVersions(root, modality).rollback(rollback)
            typer.echo(f"{modality}: {doc['version']} is live (was {doc['previous']})")
            return
        for m in mods:
            v = ModelVersions(root, m)
            typer.echo(format_rows(m, v.rows()))
    except VersionError as err:
        fail(str(err))


service_app = typer.Typer(no_args_is_help=True,
                          help='Run SAGE as a systemd service (boot start, watchdog).')
app.add_typer(service_app, name='service')


@service_app.command('install')
def service_install(
    profile: str = typer.Option('nano', '--profile', help='profile name or YAML path'),
    user: Optional[str] = typer.Option(None, '--user', help='run as (default: the caller)'),
    unit_dir: Path = typer.Option(Path('/etc/systemd/system'), '--unit-dir'),
    env_file: Path = typer.Option(Path('/etc/default/sage'), '--env-file',
                                  help='profile and domain for the service'),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Write sage.service (Type=notify, watchdog, restart on failure) and its settings."""
    from sage.environment import resolve_domain
    from sage.profile import load_profile
    from sage.service import install, unit_config
    try:
        prof = load_profile(profile)
        domain = resolve_domain(prof, domain_id)
        cfg = unit_config(prof, user, domain_id, env_file, profile)
        unit = install(cfg, unit_dir)
    except SageError as err:
        fail(str(err))
    typer.echo(f'wrote {unit} and {env_file} with {domain}; start at boot with: '
               'sudo systemctl daemon-reload && sudo systemctl enable --now sage')


@service_app.command('uninstall')
def service_uninstall(
    unit_dir: Path = typer.Option(Path('/etc/systemd/system'), '--unit-dir'),
    env_file: Path = typer.Option(Path('/etc/default/sage'), '--env-file'),
) -> None:
    """Stop and disable the service, remove its unit and settings."""
    from sage.service import uninstall
    try:
        removed = uninstall(unit_dir, env_file)
    except SageError as err:
        fail(str(err))
    typer.echo('removed ' + (', '.join(map(str, removed)) or 'nothing (not installed)'))


def main() -> None:
    try:
        app()
    except SageError as err:
        typer.echo(f'ERROR: {err}', err=True)
        sys.exit(2)


if __name__ == '__main__':
    main()
