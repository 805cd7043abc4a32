"""Run a profile's node graph: `sage launch PROFILE`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sage.cli_args import SET_HELP, fail, domain_option
from sage_common.errors import SageError

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


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
    params_file: list[Path] = typer.Option(
        [], '--params-file', exists=True, dir_okay=False,
        help="a ROS params file whose values lay over the profile's (checked like --set, "
             'which wins; repeatable)'),
    namespace: str = typer.Option('', '--namespace',
                                  help='ROS namespace of the whole graph (e.g. /r1: '
                                       '/r1/sage/salience); default none (/sage/...)'),
    use_sim_time: Optional[bool] = typer.Option(
        None, '--use-sim-time/--no-use-sim-time',
        help='every node on /clock time (a bag played with --clock); default: as the profile '
             'and --set say (off)'),
    log_level: str = typer.Option('', '--log-level',
                                  help='ROS log level of every node: debug, info, warn, error, '
                                       'fatal (default: info)'),
) -> None:
    """Run a profile's node graph until --duration or Ctrl-C, then print a summary."""
    from sage_bringup.launch_cmd import run_launch
    from sage_bringup.profile import load_profile
    try:
        prof = load_profile(profile, set_, role=role or None, params_files=params_file,
                            use_sim_time=use_sim_time, namespace=namespace,
                            log_level=log_level).without(
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

