"""A node process's CPU priority (its profile entry's `nice`), set by the launcher.

Each node process runs in a session of its own (the Supervisor's start_new_session), and with
the kernel's autogroup scheduling on (most desktop and Jetson kernels) the CPU is first shared
between sessions and only then by niceness within one: a niceness alone would order nothing.
So the process's autogroup gets the niceness too, where the kernel has one.
"""
from __future__ import annotations

import os
from pathlib import Path

from sage_bringup.profile import NICE_MAX


def autogroup_path(pid: int) -> Path:
    return Path(f'/proc/{pid}/autogroup')


def read_autogroup_nice(pid: int) -> int | None:
    """The niceness of the process's autogroup ('/autogroup-12 nice 5'); None without one."""
    try:
        text = autogroup_path(pid).read_text()
    except OSError:
        return None
    words = text.split()
    return int(words[-1]) if len(words) >= 3 and words[-2] == 'nice' else None


def lower_priority(pid: int, nice: int) -> list[str]:
    """Add `nice` (1-19) to a just-started process's niceness and to its autogroup's (kept at
    most 19). Raising it needs no privilege; what the kernel refuses is returned, not raised:
    the node runs either way, only at the launcher's priority.

    Call it right after the process started: threads it starts later take its niceness, ones
    it has already started keep theirs (Linux sets a niceness per thread).
    """
    problems = []
    try:
        os.setpriority(os.PRIO_PROCESS, pid,
                       min(NICE_MAX, os.getpriority(os.PRIO_PROCESS, pid) + nice))
    except OSError as err:
        problems.append(f'niceness not raised by {nice}: {err}')
    group = read_autogroup_nice(pid)
    if group is not None:
        try:
            autogroup_path(pid).write_text(str(min(NICE_MAX, group + nice)))
        except OSError as err:
            problems.append(f'autogroup niceness not raised by {nice}: {err}')
    return problems
