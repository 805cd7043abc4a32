"""Record, play and inspect rosbag2 bags: `sage bag`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sage.cli_args import WATCH_PROFILE_HELP, domain_option, graph_settings

app = typer.Typer(no_args_is_help=True, help='Record, play and inspect rosbag2 bags.')

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


@app.command('record')
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
    namespace: str = typer.Option('', '--namespace',
                                  help="record a namespaced graph's /NS/sage/... topics, under "
                                       'their /sage/... names (the bag plays anywhere)'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Record topics of the running graph into a standard rosbag2 bag."""
    from sage.bag import record
    from sage_bringup.environment import as_env, joined_graph
    with joined_graph(as_env(graph_settings(profile, domain_id))):
        raise typer.Exit(record(out, topics or None, duration, storage, compression=compression,
                                max_bytes=int((max_size or 0) * 1e6), namespace=namespace))


@app.command('play')
def bag_play(
    bag: Path = typer.Argument(...),
    rate: float = typer.Option(1.0, '--rate', min=0.01),
    loop: bool = typer.Option(False, '--loop'),
    clock: bool = typer.Option(False, '--clock',
                               help="publish /clock at the bag's time, scaled by --rate (for "
                                    'a graph launched with --use-sim-time)'),
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
    namespace: str = typer.Option('', '--namespace',
                                  help='publish the /sage/... topics under this namespace (a '
                                       'graph launched with --namespace /r1: /r1/sage/...)'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Publish a bag's sensor inputs (or --topics, --all) with their original timing."""
    from sage.bag import play
    from sage.progress import progress_bar
    from sage_bringup.environment import as_env, joined_graph
    with joined_graph(as_env(graph_settings(profile, domain_id))), \
            progress_bar(f'play {bag.name}', unit='s of bag') as report:
        raise typer.Exit(play(bag, rate=rate, loop=loop, clock=clock, topics=topics,
                                exclude=exclude, play_all=play_all, delay=wait,
                                wait_for=wait_for, namespace=namespace, progress=report))


@app.command('info')
def bag_info(bag: Path = typer.Argument(...)) -> None:
    """Topics, types, counts and duration of a bag."""
    from sage.bag import info, print_info
    print_info(info(bag))

