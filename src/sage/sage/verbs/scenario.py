"""Labelled scenario bags: `sage scenario`."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from sage.cli_args import fail
from sage_common.errors import SageError

app = typer.Typer(no_args_is_help=True, help='Labelled scenario bags for tests.')

# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


@app.command('make')
def scenario_make(
    out: Path = typer.Argument(..., help='bag folder to create'),
    seed: int = typer.Option(0, '--seed'),
    duration: float = typer.Option(150.0, '--duration', min=10.0),
    program: str = typer.Option('standard', '--program', help='standard | reward'),
) -> None:
    """Write a labelled scenario bag (real photos and speech) and its labels JSON."""
    from sage_eval.scenario import labels_path, make_scenario
    from sage.progress import progress_bar
    with progress_bar(f'scenario {out.name}', duration, unit='s of scene') as report:
        make_scenario(out, seed, duration, program=program, progress=report)
    typer.echo(f'wrote {out} and {labels_path(out)}')


@app.command('score')
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

