"""Replay a bag offline through the node cores or into a live graph: `sage replay`."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer

from sage.cli_args import SET_HELP, fail, domain_option, graph_settings

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


def node_params(profile: str, overrides: list[str]) -> dict[str, dict]:
    from sage_bringup.profile import load_profile
    return {n.name: dict(n.parameters) for n in load_profile(profile, overrides).nodes}


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
        from sage.progress import progress_bar
        from sage_bringup.environment import as_env, joined_graph
        with joined_graph(as_env(graph_settings(profile, domain_id))), \
                progress_bar(f'replay {bag.name}', unit='s of bag') as report:
            raise typer.Exit(play(bag, rate=rate, progress=report))
    if decisions is None:
        fail('--offline needs --decisions OUT.jsonl')
    from sage_eval.replay import replay_bag
    from sage.progress import progress_bar
    with progress_bar(f'replay {bag.name}', unit='s of bag') as report:
        summary = replay_bag(bag, node_params(profile, set_), decisions, progress=report)
    typer.echo(json.dumps(dataclasses.asdict(summary), default=str))

