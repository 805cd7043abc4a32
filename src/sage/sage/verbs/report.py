"""An HTML report of a bag or run: `sage report`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


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

