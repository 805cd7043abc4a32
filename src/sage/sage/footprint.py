"""Memory footprint of a process tree (a launcher and everything it started), from
/proc/PID/smaps_rollup: RSS counts shared pages once per process, PSS splits them among the
processes that share them (the sum is what the tree really costs the machine)."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import psutil

KIB_PER_MIB = 1024


class Footprint(NamedTuple):
    rss_mb: float
    pss_mb: float
    processes: int


def rollup(pid: int) -> dict[str, float]:
    """Rss and Pss of one process in MiB.

    Raises:
        OSError: the process is gone or its smaps_rollup cannot be read.
    """
    out: dict[str, float] = {}
    for line in Path(f'/proc/{pid}/smaps_rollup').read_text().splitlines():
        key, _, value = line.partition(':')
        if key in ('Rss', 'Pss'):
            out[key] = int(value.split()[0]) / KIB_PER_MIB
    return out


def tree_footprint(pid: int) -> Footprint:
    """Summed Rss and Pss of pid and all its descendants (processes that end meanwhile are
    left out)."""
    root = psutil.Process(pid)
    rss = pss = 0.0
    count = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            mem = rollup(proc.pid)
        except OSError:
            continue
        rss += mem['Rss']
        pss += mem['Pss']
        count += 1
    return Footprint(rss, pss, count)
