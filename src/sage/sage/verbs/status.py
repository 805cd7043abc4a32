"""Live terminal view of a running graph: `sage status`."""
from __future__ import annotations

from typing import Optional

import typer

from sage.cli_args import WATCH_PROFILE_HELP, domain_option, graph_settings

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


def status(
    duration: Optional[float] = typer.Option(None, '--duration', min=0.1),
    once: bool = typer.Option(False, '--once', help='listen a few seconds, print one screen'),
    namespace: str = typer.Option('', '--namespace',
                                  help='the graph\'s ROS namespace (sage launch --namespace)'),
    profile: str = typer.Option('nano', '--profile', help=WATCH_PROFILE_HELP),
    domain_id: Optional[int] = domain_option(),
) -> None:
    """Live terminal view of the running graph."""
    from sage_bringup.environment import as_env, joined_graph
    from sage.status import run_status
    choices = graph_settings(profile, domain_id)
    with joined_graph(as_env(choices)):
        code = run_status(duration=duration, once=once, settings=choices, namespace=namespace)
    raise typer.Exit(code)

