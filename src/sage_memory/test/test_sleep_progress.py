"""A sleep's progress (sage_memory.sleep.progress) from its events, and the worker's progress
lines reaching the memory node's side (Retrainer.run's on_event) from a real child process."""
from __future__ import annotations

import json
import sys

from sage_interfaces.action import Sleep

from sage_memory.sleep import progress
from sage_memory.sleep.progress import (CONSOLIDATION_SHARE, DONE, TRAINED, Decision,
                                        SleepProgress)
from sage_memory.sleep.retrain import Retrainer
from sage_memory.sleep.worker import PROGRESS_PREFIX


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_follows_the_phases_and_the_time_and_never_goes_back():
    clock = Clock()
    p = SleepProgress(200.0, ['vision', 'audio'], clock)
    s = p.snapshot()
    assert (s.phase, s.progress, s.time_left_s, s.decisions) == ('consolidate', 0.0, 200.0, ())
    clock.t += 2.0
    p.on_event({'phase': 'consolidated', 'examined': 40, 'consolidated': 3, 'absorbed': 9})
    s = p.snapshot()
    assert (s.examined, s.consolidated, s.progress) == (40, 3, CONSOLIDATION_SHARE)
    assert s.time_left_s == 198.0 and s.elapsed_s == 2.0
    p.on_event({'phase': 'start', 'modalities': ['vision', 'audio']})
    p.on_event({'phase': 'retrain', 'modality': 'vision', 'share_s': 80.0})
    slot = (1.0 - CONSOLIDATION_SHARE) / 2
    clock.t += 20.0  # a quarter of its time, no step yet
    s = p.snapshot()
    assert (s.phase, s.modality, s.steps) == ('retrain', 'vision', 0)
    assert abs(s.progress - (CONSOLIDATION_SHARE + slot * TRAINED * 0.25)) < 1e-9
    p.on_event({'phase': 'retrain', 'modality': 'vision', 'steps': 150, 'max_steps': 200})
    s = p.snapshot()  # steps are further than time: they count
    assert s.steps == 150 and s.phase == 'retrain'
    assert abs(s.progress - (CONSOLIDATION_SHARE + slot * TRAINED * 0.75)) < 1e-9
    p.on_event({'phase': 'export', 'modality': 'vision'})
    assert abs(p.snapshot().progress - (CONSOLIDATION_SHARE + slot * TRAINED)) < 1e-9
    p.on_event({'phase': 'decided', 'modality': 'vision', 'decision': 'promoted',
                'version': 'v0004', 'inputs': 30, 'steps': 200, 'reason': 'gain 8 %'})
    s = p.snapshot()
    assert s.decisions == (Decision('vision', 'promoted', 'v0004', 30, 200, 'gain 8 %'),)
    assert abs(s.progress - (CONSOLIDATION_SHARE + slot)) < 1e-9
    before = s.progress
    p.on_event({'phase': 'retrain', 'modality': 'audio', 'share_s': 0.0})
    assert p.snapshot().progress == before  # a new phase at 0 does not take it back
    clock.t += 500.0
    assert p.snapshot().time_left_s == 0.0
    p.on_event({'phase': DONE})
    assert p.snapshot().progress == 1.0


def test_without_retraining_consolidation_is_the_whole_sleep_and_unknown_events_pass():
    p = SleepProgress(10.0, [], Clock())
    changes = p.changes
    p.on_event({'phase': 'something newer'})
    assert p.changes == changes
    p.on_event({'phase': 'consolidated', 'examined': 0, 'consolidated': 0})
    assert p.snapshot().progress == 1.0


# A stand-in worker: progress lines and a log line on stderr, its JSON line on stdout.
STAND_IN = [sys.executable, '-c', (
    'import json, sys\n'
    f'P = {PROGRESS_PREFIX!r}\n'
    'sys.stderr.write(P + json.dumps({"phase": "start", "modalities": ["vision"]}) + "\\n")\n'
    'sys.stderr.write("sleep_worker: a log line\\n")\n'
    'sys.stderr.write(P + "{cut short\\n")\n'
    'sys.stderr.write(P + json.dumps({"phase": "retrain", "modality": "vision"}) + "\\n")\n'
    'print(json.dumps({"modalities": {}, "preempted": False}))\n')]


def test_the_worker_progress_lines_reach_on_event_and_the_rest_stays_its_log():
    events: list[dict] = []
    out = Retrainer(lambda s: None).run(STAND_IN, lambda: False, on_event=events.append)
    assert out.exit_code == 0 and out.result == {'modalities': {}, 'preempted': False}
    assert events == [{'phase': 'start', 'modalities': ['vision']},
                      {'phase': 'retrain', 'modality': 'vision'}]
    assert out.error == ''


def test_a_failing_listener_does_not_stop_the_drain():
    def listener(event: dict) -> None:
        raise RuntimeError('listener bug')
    out = Retrainer(lambda s: None).run(STAND_IN, lambda: False, on_event=listener)
    assert out.exit_code == 0 and json.dumps(out.result)  # the run still ended and was read


def test_the_phases_are_the_actions_constants():
    for name, value in (('CONSOLIDATE', progress.CONSOLIDATE), ('RETRAIN', progress.RETRAIN),
                        ('EXPORT', progress.EXPORT), ('EMBED', progress.EMBED),
                        ('DONE', progress.DONE)):
        assert getattr(Sleep.Feedback, f'PHASE_{name}') == value
