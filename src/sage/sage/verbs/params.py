"""A profile as a ROS params file: `sage params PROFILE > FILE`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sage.cli_args import SET_HELP, fail
from sage_common.errors import SageError


def params(
    profile: str = typer.Argument(..., help='profile name (nano, thor) or a YAML path'),
    set_: list[str] = typer.Option([], '--set', help=SET_HELP),
    params_file: list[Path] = typer.Option(
        [], '--params-file', exists=True, dir_okay=False,
        help="a ROS params file whose values lay over the profile's (repeatable)"),
    use_sim_time: Optional[bool] = typer.Option(
        None, '--use-sim-time/--no-use-sim-time', help='use_sim_time on every node'),
    out: Optional[Path] = typer.Option(None, '-o', '--output', help='write here, not stdout'),
) -> None:
    """Print every node's parameters as one ROS params file (sections /**/<node>, so it holds
    in any namespace): `python -m sage_snarc.snarc_node --ros-args --params-file FILE` or a
    launch_ros Node(parameters=[FILE]) loads it as it is. Written from the profile, which stays
    the source: edit the profile (or pass --set), then write the file again."""
    # lazy: `sage --help` loads none of what a verb needs (see sage.cli)
    from sage_bringup.profile import graph_params_file, load_profile
    try:
        prof = load_profile(profile, set_, params_files=params_file, use_sim_time=use_sim_time)
    except SageError as err:
        fail(str(err))
    text = graph_params_file(prof)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f'wrote {out}: {len(prof.nodes)} nodes, sections /**/<node>', err=True)
