"""What the memory node reports on /diagnostics, from its parts' status (no ROS here).

Each function fills a `Health` (sage_common.health): problems at their level and key values
as strings; the node publishes it at its diagnostics period.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
import time
from typing import Any

from sage_common.health import Health, Level
from sage_memory.memory import MemoryStatus

# A problem found at start or by a background check (a corrupt file quarantined, a failed
# integrity check) is an ERROR for this long, then listed under 'problems'.
PROBLEM_ERROR_S = 60.0


def read_only_text(reason: str) -> str:
    """The line said when the database is read-only."""
    return (f'memory is read-only ({reason}): serving the experiences stored so far, '
            'storing nothing new')


class ProblemAges:
    """When each problem was first seen (monotonic seconds)."""

    def __init__(self) -> None:
        self._first: dict[str, float] = {}

    def fresh(self, problem: str, now: float) -> bool:
        """True while the problem is younger than PROBLEM_ERROR_S."""
        return now - self._first.setdefault(problem, now) < PROBLEM_ERROR_S


def report_memory(health: Health, st: MemoryStatus, quarantined: Sequence[str],
                  ages: ProblemAges, now: float | None = None) -> None:
    """The store's and the index's state: alarms, read-only, problems, counts."""
    now = time.monotonic() if now is None else now
    s = st.store
    if s.alarm:
        health.problem(Level.ERROR, s.alarm)
    if s.read_only:
        health.problem(Level.ERROR, read_only_text(s.read_only))
        health.values.update(read_only=s.read_only, refused=str(s.refused))
    if quarantined:
        health.values['quarantined'] = '; '.join(quarantined)
    for problem in st.problems:
        if ages.fresh(problem, now):
            health.problem(Level.ERROR, problem)
    if st.problems:
        health.values['problems'] = '; '.join(st.problems)
    health.values.update({
        'pending': str(s.pending + s.queued), 'rejected': str(s.rejected),
        'dropped': str(s.dropped), 'evicted': str(s.evicted),
        'index_ready': str(st.index_ready),
        **{f'index_{k}': str(v) for k, v in st.index_rows.items()}})


def report_outbox(health: Health, ob: dict[str, Any]) -> None:
    """The outbox to the shared store (sage_memory.sync.outbox.OutboxWorker.status)."""
    if ob['error']:  # the shared store is down: rows wait here, nothing is lost
        health.problem(Level.WARN, f"outbox: {ob['error']}")
    if ob['not_adopted']:  # a shared version failed its checks: never unpacked
        health.problem(Level.ERROR, f"shared model not adopted: {ob['not_adopted']}")
        health.values['models_not_adopted_last'] = ob['not_adopted']
        ob['not_adopted'] = ''  # reported once; the count stays
    health.values.update(
        outbox_backlog=str(ob['backlog']), outbox_shipped=str(ob['shipped']),
        outbox_errors=str(ob['errors']),
        outbox_last_exchange=f"{ob['last_exchange'] or 0:.3f}",
        outbox_inputs_shipped=str(ob['inputs_shipped']),
        patterns_taken_back=str(ob['patterns_pulled']),
        models_adopted=str(ob['models_adopted']), models_adopted_last=ob['adopted'],
        models_not_adopted=str(ob['models_skipped']))


def report_training(health: Health, st: Mapping[str, Any]) -> None:
    """The training inputs kept for sleep (MemoryStore.training_stats)."""
    health.values.update(
        training_inputs=str(st['count']), training_input_bytes=str(st['bytes']),
        training_input_bytes_each=f"{st['bytes_per_input']:.0f}",
        training_input_budget_bytes=str(st['budget_bytes']),
        training_inputs_dropped=str(st['dropped']),
        training_inputs_evicted=str(st['evicted_by_budget']
                                    + st['evicted_with_experiences']))
