"""`python -m sage_bringup.start_later SECONDS -- COMMAND [ARG...]`: COMMAND, SECONDS later.

How a profile node entry's `start_delay_s` is kept, by `sage launch` and the launch files alike
(a prefix of the node's command): the wait is in the node's own process, so no launcher blocks
on it and a respawn waits again. SIGINT or SIGTERM during the wait ends it with exit 0, as a
node stopped before it started. Then the process becomes COMMAND (exec: same pid, so signals,
the parent-death signal and the exit code are the node's own).
"""
from __future__ import annotations

import os
import signal
import sys
import time

MODULE = 'sage_bringup.start_later'
USAGE = f'usage: python -m {MODULE} SECONDS -- COMMAND [ARG...]'


def prefix(delay_s: float, python: str) -> list[str]:
    """The command prefix that starts a process delay_s seconds late ([]: at once)."""
    return [python, '-m', MODULE, f'{delay_s:g}', '--'] if delay_s > 0 else []


def _stopped(signum: int, frame: object) -> None:
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        delay = float(argv[0])
    except (IndexError, ValueError):
        delay = -1.0
    if delay < 0 or len(argv) < 3 or argv[1] != '--':
        print(USAGE, file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, _stopped)
    signal.signal(signal.SIGTERM, _stopped)
    time.sleep(delay)
    # exec puts caught signals back to their default: the node sets up its own
    os.execvp(argv[2], argv[2:])


if __name__ == '__main__':
    sys.exit(main())
