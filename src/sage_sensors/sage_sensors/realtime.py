"""Real-time scheduling for capture threads (Linux SCHED_FIFO), degrading to normal scheduling.

On a 2-core Orin Nano the encoders and SNARC keep both cores busy; a capture thread at normal
priority then wakes 10-20 ms late, which costs IMU samples at the subscribers and pushes audio
frames past their deadline (measured: audio capture->publish p95 45 ms instead of 34 ms). A
SCHED_FIFO thread preempts the busy normal-priority work as soon as its tick is due; it sleeps
for almost all of its period, so it takes little from the rest (and the kernel's RT throttling
keeps 5 % for everything else even if it were to spin). No rclpy.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import os

#: highest priority we accept: 99 is left to the kernel's own watchdog threads
MAX_PRIORITY = 98


def set_thread_priority(priority: int) -> str:
    """Put the calling thread on SCHED_FIFO at `priority` (0 = leave it alone).

    Returns a short description of the scheduling now in force, e.g. 'fifo:20', 'normal', or
    'normal (fifo:20 not permitted: ...)'. Never raises for lack of permission: the node keeps
    running at normal priority and reports why.
    """
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f'priority must be in 0..{MAX_PRIORITY}, got {priority}')
    if priority == 0:
        return 'normal'
    wanted = f'fifo:{priority}'
    if not hasattr(os, 'sched_setscheduler'):
        return f'normal ({wanted} not available on this platform)'
    try:
        # pid 0 is the calling thread on Linux, so only the capture thread is raised
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as err:
        return (f'normal ({wanted} not permitted: {err.strerror}; needs CAP_SYS_NICE or an '
                "rtprio limit, e.g. '@sage - rtprio 50' in /etc/security/limits.conf)")
    return wanted


def thread_scheduling() -> str:
    """The calling thread's policy and priority, e.g. 'fifo:20' or 'normal'."""
    policy = os.sched_getscheduler(0)
    if policy == os.SCHED_FIFO:
        return f'fifo:{os.sched_getparam(0).sched_priority}'
    if policy == getattr(os, 'SCHED_RR', -1):
        return f'rr:{os.sched_getparam(0).sched_priority}'
    return 'normal'


@contextmanager
def raised_priority(priority: int) -> Iterator[str]:
    """Run a block at SCHED_FIFO `priority`; threads started inside keep it (they inherit it).

    Used where the threads that matter are not ours to start, e.g. the DDS participant's
    receive threads, created while a node is being made. Yields set_thread_priority's
    description; the calling thread gets its previous policy back afterwards.
    """
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield set_thread_priority(priority)
    finally:
        if priority and os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)
