"""Compare parameter sets on one bag: `sage experiment`."""
from __future__ import annotations

import os
from pathlib import Path
import sys

import typer


# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


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
    from sage.progress import progress_bar
    from sage_eval.encoded_cache import default_dir
    variants = parse_variants(set_, vs)
    with progress_bar(f'experiment {bag.name}', len(variants), unit='variants') as report:
        # out named here: under a bar, sys.stdout is rich's proxy that prints above the bar
        run_experiment(bag, profile, variants, sys.stdout,
                       jobs=jobs or len(os.sched_getaffinity(0)),
                       cache=default_dir() if cache else None, progress=report)

