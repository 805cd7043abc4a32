"""The `sage` command line: launch, bench, replay, scenario, train, memory, status, bag."""
from __future__ import annotations

from pathlib import Path
import sys
from typing import Optional

import typer

from sage_common.errors import SageError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help='SAGE attention kernel: run the graph, replay bags, benchmark.')


def fail(message: str, code: int = 2) -> None:
    typer.echo(f'ERROR: {message}', err=True)
    raise typer.Exit(code)


@app.command()
def launch(
    profile: str = typer.Argument(..., help='profile name (nano, thor) or a YAML path'),
    duration: Optional[float] = typer.Option(None, '--duration', min=0.0,
                                             help='stop after this many seconds'),
    set_: list[str] = typer.Option([], '--set', help='override: node.param=value (repeatable)'),
    domain_id: Optional[int] = typer.Option(None, '--domain-id', min=0, max=232,
                                            help='ROS_DOMAIN_ID (default: env or profile)'),
    run_dir: Optional[Path] = typer.Option(None, '--run-dir', help='folder for logs/params'),
    quiet: bool = typer.Option(False, '--quiet', help='no live salience lines'),
) -> None:
    """Run a profile's node graph until --duration or Ctrl-C, then print a summary."""
    from sage.launch_cmd import run_launch
    from sage.profile import load_profile
    try:
        prof = load_profile(profile, set_)
    except SageError as err:
        fail(str(err))
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    raise typer.Exit(run_launch(prof, duration, domain_id, run_dir, live=not quiet))


@app.command()
def bench(
    name: str = typer.Argument(..., help='graph | sensors | encoders | snarc | orchestrator | '
                                         'memory | transport'),
    seconds: Optional[float] = typer.Option(None, '--seconds', min=0.1,
                                            help='measurement time (benchmark default)'),
    out: Optional[Path] = typer.Option(None, '--out', '-o', help='JSON output path'),
) -> None:
    """Run a named benchmark and write JSON (medians, p95/p99, ratios to a baseline)."""
    from sage.bench_cmd import BENCHMARKS, run_named, write_json
    if name not in BENCHMARKS:
        fail(f"unknown benchmark '{name}' (known: {', '.join(BENCHMARKS)})")
    try:
        result = run_named(name, seconds)
    except ModuleNotFoundError as err:
        fail(f"benchmark '{name}' is not available: {err}")
    path = write_json(result, out)
    typer.echo(f'wrote {path}')


def main() -> None:
    try:
        app()
    except SageError as err:
        typer.echo(f'ERROR: {err}', err=True)
        sys.exit(2)


if __name__ == '__main__':
    main()
