"""Stopping a child process the way a user's Ctrl-C would."""
from __future__ import annotations

import signal
import subprocess


def interrupt(proc: subprocess.Popen, timeout_s: float) -> int:
    """SIGINT (a launcher then stops its nodes in order), SIGKILL if it is not gone within
    timeout_s; returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
