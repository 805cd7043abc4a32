"""Progress bars for the commands that run for more than a few seconds (rich, with an ETA).

A bar is drawn on stderr only when both stdout and stderr are terminals and no JSON output is
asked for: a pipe, a file, CI or `--json` get the command's output and nothing else (no cursor
moves, no carriage returns). The work itself never imports this module: it takes a plain
`progress(done, total)` callable (lower layers stay free of UI code), and the verb passes the
one this helper yields.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
import sys
from typing import Optional, TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)

# progress(done, total): how far the work is, in its own unit (seconds of a bag, steps,
# variants); total may change as the work learns it, None while unknown.
Report = Callable[[float, Optional[float]], None]


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def wanted(json_output: bool = False) -> bool:
    """Whether this process draws bars: stdout and stderr terminals, no JSON asked for."""
    return not json_output and is_terminal(sys.stdout) and is_terminal(sys.stderr)


def ignore(done: float, total: Optional[float] = None) -> None:
    """The progress callable when no bar is drawn."""


class _Bar:
    """One rich task: report() moves it (thread-safe: rich locks its tasks)."""

    def __init__(self, progress: Progress, task: TaskID, total: Optional[float]) -> None:
        self._progress = progress
        self._task = task
        self._total = total

    def report(self, done: float, total: Optional[float] = None) -> None:
        if total is not None and total != self._total:
            self._total = total
            self._progress.update(self._task, total=total)
        limit = self._total if self._total is not None else done
        self._progress.update(self._task, completed=max(0.0, min(done, limit)))


@contextmanager
def progress_bar(description: str, total: Optional[float] = None, *, unit: str = '',
                 enabled: Optional[bool] = None, json_output: bool = False,
                 file: Optional[TextIO] = None) -> Iterator[Report]:
    """A bar for the length of a block; yields its progress(done, total) callable.

    Args:
        description: what runs (shown left of the bar).
        total: the amount of work, when known up front (else the first report gives it).
        unit: shown after done/total (e.g. 's of bag', 'steps').
        enabled: draw (True) or not (False); None decides by `wanted(json_output)`.
        json_output: the command prints JSON (no bar then, when enabled is None).
        file: where the bar goes (default stderr; tests pass a buffer with enabled=True).
    """
    if enabled is None:
        enabled = wanted(json_output)
    if not enabled:
        yield ignore
        return
    console = Console(file=file or sys.stderr, force_terminal=True)
    columns = [SpinnerColumn(), TextColumn('{task.description}'), BarColumn(),
               MofNCompleteColumn(), TextColumn(unit), TextColumn('elapsed'),
               TimeElapsedColumn(), TextColumn('ETA'), TimeRemainingColumn()]
    # transient: the finished bar is wiped, what the command prints stays
    with Progress(*columns, console=console, transient=True, refresh_per_second=4) as progress:
        bar = _Bar(progress, progress.add_task(description, total=total), total)
        yield bar.report
