"""Child processes: stopping one (SIGINT, then SIGKILL) and tying one to its parent."""
import signal
import subprocess
import sys
import time

import pytest

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


POOL_PARENT = '''
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from sage_common.processes import die_with_parent
with ProcessPoolExecutor(1, initializer=die_with_parent) as pool:
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(60)
'''


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl is Linux only')
def test_a_pool_worker_tied_to_its_parent_ends_when_the_parent_is_killed():
    parent = subprocess.Popen([sys.executable, '-c', POOL_PARENT], stdout=subprocess.PIPE,
                              text=True)
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    parent.kill()  # SIGKILL: no chance to shut the pool down itself
    parent.wait()
    deadline = time.monotonic() + 10.0
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)
