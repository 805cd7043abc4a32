"""Memory footprint of a process tree (a launcher and everything it started), from
/proc/PID/smaps_rollup: RSS counts shared pages once per process, PSS splits them among the
processes that share them (the sum is what the tree really costs the machine)."""
from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys
import time
from typing import NamedTuple

import psutil

from sage_common.processes import interrupt

KIB_PER_MIB = 1024
DEFAULT_AFTER_S = 20.0  # the figures were taken ~20 s after `sage launch` started
STOP_TIMEOUT_S = 60.0  # for the measured command to stop after SIGINT


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


def main(argv: list[str] | None = None) -> int:
    """`python -m sage_bench.footprint [--after S] -- COMMAND...`: start COMMAND, wait S seconds
    (default 20), print the summed RSS and PSS of it and its descendants, stop it (SIGINT)."""
    parser = argparse.ArgumentParser(prog='python -m sage_bench.footprint')
    parser.add_argument('--after', type=float, default=DEFAULT_AFTER_S,
                        help='seconds after the start to measure')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='-- COMMAND ...')
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no command given (python -m sage_bench.footprint -- sage launch nano)')
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(args.after)
        if proc.poll() is not None:
            print(f'ERROR: {command[0]} ended with {proc.returncode} before the measurement',
                  file=sys.stderr)
            return 1
        found = tree_footprint(proc.pid)
        print(f'{found.processes} processes, RSS {found.rss_mb:.0f} MB, '
              f'PSS {found.pss_mb:.0f} MB ({args.after:.0f} s after the start)')
        return 0
    finally:
        interrupt(proc, STOP_TIMEOUT_S)


if __name__ == '__main__':
    raise SystemExit(main())
