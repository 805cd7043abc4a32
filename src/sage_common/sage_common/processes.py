"""Child processes: stopping one the way a user's Ctrl-C would, and tying one to its parent."""
from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies, even by SIGKILL.

    For a launcher's nodes, a sleep worker and a bench's pool workers: an orphan would keep
    holding cores or a database. Returns False where prctl is missing or refuses.
    """
    if not sys.platform.startswith('linux'):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    rc: int = libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    return rc == 0


def interrupt(proc: subprocess.Popen[Any], timeout_s: float,
              sig: signal.Signals = signal.SIGINT) -> int:
    """SIGINT (a launcher then stops its nodes in order; or `sig`, e.g. SIGTERM as systemd
    stops a node), SIGKILL if it is not gone within timeout_s; returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
