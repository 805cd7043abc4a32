"""Capture-thread scheduling: SCHED_FIFO when permitted, a reported fallback when not."""
import subprocess
import sys
import threading

import pytest

from sage_common.health import Health
from sage_sensors.capture import CaptureRunner
from sage_sensors.errors import StreamEnded
from sage_sensors.realtime import (MAX_PRIORITY, raised_priority, set_thread_priority,
                                   thread_scheduling)


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(5)
    return out[0]


def test_zero_leaves_the_thread_at_normal_scheduling():
    assert _in_thread(lambda: (set_thread_priority(0), thread_scheduling())) == ('normal',
                                                                                 'normal')


def test_out_of_range_priorities_are_refused():
    with pytest.raises(ValueError, match='0..98'):
        set_thread_priority(MAX_PRIORITY + 1)
    with pytest.raises(ValueError):
        set_thread_priority(-1)


def test_only_the_calling_thread_is_raised():
    result, seen = _in_thread(lambda: (set_thread_priority(7), thread_scheduling()))
    if result.startswith('normal ('):
        pytest.skip(f'SCHED_FIFO not permitted here: {result}')
    assert result == seen == 'fifo:7'
    assert thread_scheduling() == 'normal'        # this (main) thread is untouched


DROP_AND_TRY = """
import os, resource
from sage_sensors.realtime import set_thread_priority, thread_scheduling
resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
if os.geteuid() == 0:   # nobody: no CAP_SYS_NICE, rtprio limit 0
    os.setgid(65534)
    os.setuid(65534)
print(set_thread_priority(20))
print(thread_scheduling())
"""


def test_without_permission_the_thread_runs_normally_and_says_why():
    out = subprocess.run([sys.executable, '-c', DROP_AND_TRY], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split('\n')
    assert out[0].startswith('normal (fifo:20 not permitted: ')
    assert 'rtprio' in out[0]
    assert out[1] == 'normal'


class OneItem:
    name, reconnectable, dropped = 'one', False, 0

    def __init__(self):
        self.items = [1]

    def open(self):
        pass

    def read(self):
        if not self.items:
            raise StreamEnded('done')
        return self.items.pop()

    def close(self):
        pass


def test_capture_runner_reports_its_thread_scheduling():
    health, seen = Health(), []
    runner = CaptureRunner(OneItem(), lambda item: seen.append(thread_scheduling()), health,
                           threading.Event(), priority=4)
    runner.start()
    runner._thread.join(5)
    scheduling = health.values['scheduling']
    if scheduling.startswith('normal ('):
        assert seen == ['normal'] and 'not permitted' in scheduling
        assert health.counters['warnings'] == 2       # the scheduling, then the stream end
    else:
        assert scheduling == 'fifo:4' and seen == ['fifo:4']   # emit runs at that priority


def test_threads_started_in_a_raised_block_inherit_its_priority():
    def body():
        with raised_priority(6) as scheduling:
            child = _in_thread(thread_scheduling)
        return scheduling, child, thread_scheduling()

    scheduling, child, after = _in_thread(body)
    if scheduling.startswith('normal ('):
        pytest.skip(f'SCHED_FIFO not permitted here: {scheduling}')
    assert (scheduling, child, after) == ('fifo:6', 'fifo:6', 'normal')
