"""One sleep of the memory node (sage_memory.sleep.cycle), with a stand-in memory and worker:
consolidation then retraining, stopped when the dream it ran in ends."""
from __future__ import annotations

from typing import Any

from sage_common.params import resolve
from sage_memory.memory_params import PARAMS
from sage_memory.sleep.consolidation import SleepReport
from sage_memory.sleep.cycle import RETRAIN_STATE_KEY, SleepCycle
from sage_memory.sleep.retrain import RetrainOutcome


class StandInMemory:
    read_only = ''

    def __init__(self) -> None:
        self.states: dict[str, Any] = {}

    def sleep(self, max_duration_s: float, should_stop=lambda: False) -> SleepReport:
        return SleepReport(examined=10, consolidated=2, absorbed=6, duration_s=0.01,
                           complete=True)

    def load_state(self, key: str) -> dict[str, Any] | None:
        return self.states.get(key)

    def save_state(self, key: str, value: Any) -> None:
        self.states[key] = value


class StandInRetrainer:
    """Runs `during(should_stop)` as the worker would poll, then returns `outcome`."""

    def __init__(self, during=None, outcome: RetrainOutcome | None = None) -> None:
        self.during = during
        self.outcome = outcome or RetrainOutcome(ran=True)
        self.commands: list[list[str]] = []

    def run(self, cmd, should_stop, max_rss_mb, on_event=None):
        self.commands.append(cmd)
        if self.during is not None:
            return self.during(should_stop)
        return self.outcome


def cycle(retrainer, **values) -> tuple[SleepCycle, StandInMemory]:
    memory = StandInMemory()
    params = resolve(PARAMS, values)
    return SleepCycle(memory, params, '/tmp/versions', retrainer, lambda _: None), memory


def test_a_sleep_called_before_the_dream_state_stops_when_that_dream_ends():
    # The Sleep call and the DREAM state come by a service and a topic: either order happens.
    seen = []

    def worker(should_stop):
        sleeper.on_state('DREAM')  # the state arrives after the call
        seen.append(should_stop())
        sleeper.on_state('WAKE')  # a salience spike ends the dream
        seen.append(should_stop())
        return RetrainOutcome(ran=True, preempted=True)
    sleeper, _ = cycle(StandInRetrainer(worker))
    sleeper.on_state('WAKE')
    result = sleeper.sleep(600.0)
    assert seen == [False, True]
    assert result.retrain is not None and result.retrain.preempted
    assert 'preempted' in result.message and result.report.consolidated == 2


def test_a_dream_that_ended_during_consolidation_starts_no_retraining():
    retrainer = StandInRetrainer()
    sleeper, memory = cycle(retrainer)
    sleeper.on_state('DREAM')
    memory.sleep = lambda budget, should_stop: (sleeper.on_state('WAKE'),
                                                SleepReport(0, 0, 0, 0.0, True))[1]
    result = sleeper.sleep(600.0)
    assert result.retrain is None and retrainer.commands == []
    assert result.message.endswith('retraining not started: the dream ended')


def test_entering_dream_is_told_once_per_dream():
    sleeper, _ = cycle(StandInRetrainer())
    assert [sleeper.on_state(s) for s in ('WAKE', 'DREAM', 'DREAM', 'WAKE', 'DREAM')] == [
        False, True, False, False, True]


def test_retraining_learns_from_inputs_newer_than_its_last_decision():
    decided = RetrainOutcome(ran=True, result={'modalities': {
        'vision': {'decision': 'promoted', 'until': 1234.5, 'version': 'v0002'},
        'audio': {'decision': 'skipped', 'until': 99.0}}})
    retrainer = StandInRetrainer(outcome=decided)
    sleeper, memory = cycle(retrainer)
    sleeper.sleep(600.0)
    assert memory.states[RETRAIN_STATE_KEY]['until'] == {'vision': 1234.5}
    sleeper.sleep(600.0)
    since = retrainer.commands[1][retrainer.commands[1].index('--since') + 1]
    assert since == 'vision=1234.500000'  # audio was skipped: it keeps gathering inputs


def test_no_retraining_without_time_left_or_when_off():
    retrainer = StandInRetrainer()
    sleeper, _ = cycle(retrainer, **{'sleep.retrain.export_reserve_s': 30.0})
    result = sleeper.sleep(20.0)  # the export reserve takes the whole budget
    assert result.retrain is None and retrainer.commands == []
    assert result.message.endswith('no time left in this sleep for retraining')
    sleeper, _ = cycle(retrainer, **{'sleep.retrain.enabled': False})
    assert sleeper.sleep(600.0).retrain is None and retrainer.commands == []


def test_a_cancel_stops_the_retraining_as_the_end_of_a_dream_does():
    # The Sleep action's cancel: should_stop() turns true while the worker runs.
    cancelled = []

    def worker(should_stop):
        seen = [should_stop()]
        cancelled.append(True)
        seen.append(should_stop())
        assert seen == [False, True]
        return RetrainOutcome(ran=True, preempted=True)
    events = []
    sleeper, _ = cycle(StandInRetrainer(worker))
    result = sleeper.sleep(600.0, should_stop=lambda: bool(cancelled), on_event=events.append)
    assert result.retrain is not None and result.retrain.preempted
    assert [e['phase'] for e in events] == ['consolidate', 'consolidated']
    assert events[1]['consolidated'] == 2 and events[1]['examined'] == 10


def test_a_cancel_during_consolidation_starts_no_retraining():
    retrainer = StandInRetrainer()
    sleeper, memory = cycle(retrainer)
    memory.sleep = lambda budget, should_stop: SleepReport(4, 0, 0, 0.0, False)
    result = sleeper.sleep(600.0, should_stop=lambda: True)
    assert result.retrain is None and retrainer.commands == []
    assert '(cancelled)' in result.message
    assert result.message.endswith('retraining not started: the sleep was cancelled')
