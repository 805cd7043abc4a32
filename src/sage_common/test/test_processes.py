"""Stopping a child process: SIGINT first, SIGKILL when it does not stop in time."""
import signal
import subprocess
import sys

from sage_common.processes import interrupt

STUBBORN = ('import signal, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n'
            'print("ready", flush=True)\ntime.sleep(60)\n')


def test_a_process_that_stops_on_sigint_exits_on_its_own_terms():
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    assert interrupt(proc, 10.0) == -signal.SIGINT or proc.returncode == 1


def test_a_process_that_ignores_sigint_is_killed_after_the_timeout():
    proc = subprocess.Popen([sys.executable, '-c', STUBBORN], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'ready'  # its handler is in place
    assert interrupt(proc, 0.5) == -signal.SIGKILL


def test_a_process_that_already_ended_keeps_its_code():
    proc = subprocess.Popen([sys.executable, '-c', 'raise SystemExit(3)'])
    proc.wait()
    assert interrupt(proc, 1.0) == 3
