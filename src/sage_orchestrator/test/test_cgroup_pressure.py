"""Memory pressure under a real memory cgroup limit.

Skipped, with the reason, where none can be made (not root, no memory controller to use).

A child process moves itself into a fresh memory cgroup with a 256 MiB limit (a child of the
test's own cgroup, so every limit above still applies; removed afterwards), finds it through
/proc/self/cgroup like the node does, allocates until the classifier reports red, frees, and
reports back. Only the cgroup reading is given thresholds here, so the levels it prints come
from the real cgroup files alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import time

import pytest

LIMIT = 256 * 1024 * 1024
CHILD = r"""
import json, os, sys, time
with open(os.path.join(sys.argv[1], 'cgroup.procs'), 'w') as f:
    f.write(str(os.getpid()))
import numpy as np
from sage_orchestrator.pressure import (PressureClassifier, PressureConfig, PressurePaths,
                                        read_sample)
c = PressureClassifier(PressureConfig(yellow_psi=100.0, red_psi=100.0,
                                      yellow_available_mb=0.0, red_available_mb=0.0,
                                      yellow_cgroup=0.6, red_cgroup=0.8, hold_s=0.0))
def report(tag):
    s = read_sample(PressurePaths())
    c.update(s, time.monotonic())
    print(json.dumps({'tag': tag, 'fraction': s.cgroup_fraction, 'limit_mb': s.cgroup_limit_mb,
                      'level': c.name, 'errors': list(s.errors)}), flush=True)
report('start')
blocks = []
for i in range(40):
    blocks.append(np.ones(1 << 20))  # 8 MiB, every page written
    report('alloc')
    if c.name == 'red':
        break
blocks.clear()
report('freed')
"""


def own_memory_cgroup() -> tuple[Path, str]:
    """(directory of this process's memory cgroup, limit file name), or skip with a reason."""
    if os.geteuid() != 0:
        pytest.skip('needs root to create a memory cgroup')
    text = Path('/proc/self/cgroup').read_text()
    root = Path('/sys/fs/cgroup')
    for line in text.splitlines():
        hid, controllers, rel = line.split(':', 2)
        if hid == '0' and controllers == '':
            here = root / rel.lstrip('/')
            control = here / 'cgroup.subtree_control'
            if control.exists() and 'memory' in control.read_text().split():
                return here, 'memory.max'
        elif 'memory' in controllers.split(','):
            here = root / 'memory' / rel.lstrip('/')
            if (here / 'memory.limit_in_bytes').exists():
                return here, 'memory.limit_in_bytes'
    pytest.skip('no memory cgroup controller this process can delegate to (cgroup v2 '
                'without memory in subtree_control, or no v1 memory hierarchy)')


@pytest.mark.timeout(120)
def test_a_real_cgroup_limit_drives_the_levels_up_and_back_down():
    parent, limit_file = own_memory_cgroup()
    cg = parent / f'sage_orchestrator_test_{os.getpid()}'
    try:
        cg.mkdir()
        (cg / limit_file).write_text(str(LIMIT))
    except OSError as err:
        pytest.skip(f'cannot create a memory cgroup under {parent}: {err}')
    try:
        out = subprocess.run([sys.executable, '-c', CHILD, str(cg)], capture_output=True,
                             text=True, timeout=90)
    finally:
        for _ in range(50):  # the child's exit is asynchronous to the cgroup
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(not line['errors'] for line in lines)
    assert lines[0]['limit_mb'] == pytest.approx(LIMIT / 2**20)
    levels = [line['level'] for line in lines]
    assert levels[0] == 'green' and lines[0]['fraction'] < 0.6
    assert 'yellow' in levels
    assert levels.index('yellow') < levels.index('red')
    assert lines[levels.index('red')]['fraction'] >= 0.8
    assert lines[-1]['tag'] == 'freed' and levels[-1] == 'green'
    assert lines[-1]['fraction'] < 0.48  # cleared yellow's 0.6 by the 20 % margin
