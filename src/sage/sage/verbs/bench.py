"""Run a named benchmark: `sage bench NAME`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sage.cli_args import SET_HELP, fail
from sage_common.errors import SageError

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


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
                                         help='salience: realistic (default) | busy | '
                                              'synthetic'),
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
    foxglove: bool = typer.Option(False, '--foxglove',
                                  help='graph: after the window, alternate the Foxglove live '
                                       'view off and on with one client connected and report '
                                       "the graph's CPU in each"),
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
    ablate: bool = typer.Option(False, '--ablate',
                                help='salience: also score the scenes with each SNARC '
                                     'mechanism switched off in turn (an ablation table)'),
) -> None:
    """Run a named benchmark and write JSON (medians, p95/p99, ratios to a baseline)."""
    from sage_bench.registry import BENCHMARKS, UnknownOption, run_named, write_json
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
    if foxglove:
        options['foxglove'] = True
    if compose is not None:
        options['compose'] = compose
    if domain_id is not None:
        options['domain_id'] = domain_id
    if set_:
        options['overrides'] = list(set_)
    if ablate:
        options['ablate'] = True
    for key, value in (('seeds', seeds), ('scenes', scenes), ('seed_set', seed_set),
                       ('skip', skip), ('delays_ms', delays), ('loss_pct', loss)):
        if value is not None:
            options[key] = value
    from sage.progress import progress_bar
    try:
        with progress_bar(f'bench {name}') as report:
            result = run_named(name, seconds, progress=report, **options)
    except ModuleNotFoundError as err:
        fail(f"benchmark '{name}' is not available: {err}")
    except (UnknownOption, SageError) as err:
        fail(str(err))
    path = write_json(result, out)
    if name == 'salience':
        from sage_bench.salience import print_table
        print_table(result['results'])
    if name == 'targets':
        from sage_bench.targets import print_table as print_targets_table
        print_targets_table(result['results'], typer.echo)
    if name == 'graph':
        from sage_bench.graph import print_table as print_graph_table
        print_graph_table(result['results'], typer.echo)
    if name == 'memory' and 'figures' in result['results']:
        from sage_bench.memory_figures import print_figures
        print_figures(result['results'], typer.echo)
    typer.echo(f'wrote {path}')

