"""One sleep of the memory node: consolidation, then retraining, stopped when the dream ends.

`SleepCycle.sleep(budget)` runs from the node's Sleep service or action, or when the robot
enters DREAM (sleep.on_dream_s). It consolidates (Memory.sleep), then, with time left in the
budget and the dream still on, fine-tunes the encoders in the sleep worker on the inputs stored
since the last retraining decision (kept in the store under RETRAIN_STATE_KEY). Dreams are
counted as they end (DREAM -> another state, `on_state`): a sleep stops when one ends after it
began, whichever of the orchestrator's state topic and the Sleep call reached the node first (a
topic and a service: either order happens). A Sleep asked for by hand outside any dream runs
to its budget, unless its caller stops it (`should_stop`: the action's cancel), which stops it
the same way. No ROS here: the node turns the result into its response, logs and
diagnostics; `on_event` hears each phase (sage_memory.sleep.progress).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import time
from typing import Any, Protocol

from sage_common.vocabulary import MetabolicState
from sage_encoders.model_versions import PACKAGED, ModelVersions
from sage_memory.sleep.consolidation import SleepReport
from sage_memory.sleep.retrain import Retrainer, RetrainOutcome, worker_command

RETRAIN_STATE_KEY = 'retrain'  # the last retraining: inputs stored until when, its result
_DREAM = MetabolicState.DREAM.value


class Sleeper(Protocol):
    """What a sleep needs of the memory (sage_memory.memory.Memory)."""

    @property
    def read_only(self) -> str:
        """Why nothing can be written ('' when it can)."""

    def sleep(self, max_duration_s: float,
              should_stop: Callable[[], bool] = ...) -> SleepReport:
        """Consolidate for at most max_duration_s, or until should_stop()."""

    def load_state(self, key: str) -> dict[str, Any] | None:
        """The state document under key, or None."""

    def save_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Write a state document now."""


@dataclass(frozen=True)
class SleepResult:
    """What one sleep did.

    Attributes:
        report: the consolidation's report.
        message: one line for the Sleep response and the log.
        retrain: the retraining's outcome (None: not run: off, read-only, no time left, or
            the dream ended first).
    """

    report: SleepReport
    message: str
    retrain: RetrainOutcome | None


def retrain_modalities(values: Mapping[str, Any]) -> list[str]:
    """The encoders sleep retrains (sleep.retrain.modalities)."""
    return [m for m in str(values['sleep.retrain.modalities']).split(',') if m]


def live_models(versions_dir: str, modalities: list[str]) -> dict[str, dict[str, str]]:
    """Live version and its folder ('' for the packaged model) of each retrained encoder."""
    doc = {}
    for m in modalities:
        versions = ModelVersions(versions_dir, m)
        name = versions.live_version()
        doc[m] = {'version': name, 'path': '' if name == PACKAGED else str(versions.dir / name)}
    return doc


class SleepCycle:
    """Consolidation then retraining, within a budget, until the dream ends.

    Args:
        memory: the store, index and consolidation.
        values: the memory node's parameters (sleep.retrain.*, database_url, data_dir).
        versions_dir: folder of the encoder model versions.
        retrainer: runs the sleep worker.
        log: progress lines.
    """

    def __init__(self, memory: Sleeper, values: Mapping[str, Any], versions_dir: str,
                 retrainer: Retrainer, log: Callable[[str], None]) -> None:
        self.memory = memory
        self.values = values
        self.versions_dir = versions_dir
        self.retrainer = retrainer
        self.log = log
        self._state = ''
        # Dreams that have ended (DREAM -> another state) since the node started.
        self._dream_exits = 0

    def on_state(self, state: str) -> bool:
        """Follow the metabolic state; True when this state begins a dream."""
        began = state == _DREAM and self._state != _DREAM
        if self._state == _DREAM and state != _DREAM:
            self._dream_exits += 1
        self._state = state
        return began

    def planned_modalities(self) -> list[str]:
        """The encoders a sleep would retrain now ([] when retraining is off or the store
        read-only)."""
        if not self.values['sleep.retrain.enabled'] or self.memory.read_only:
            return []
        return retrain_modalities(self.values)

    def sleep(self, budget: float, should_stop: Callable[[], bool] = lambda: False,
              on_event: Callable[[dict[str, Any]], None] = lambda event: None
              ) -> SleepResult:
        """Consolidate, then retrain; stops when a dream ends after this call began, or
        once should_stop() is true.

        Raises:
            SageError: the store cannot be read or written.
        """
        t0 = time.monotonic()
        exits = self._dream_exits
        on_event({'phase': 'consolidate'})
        rep = self.memory.sleep(budget, should_stop=should_stop)
        on_event({'phase': 'consolidated', 'examined': rep.examined,
                  'consolidated': rep.consolidated, 'absorbed': rep.absorbed})
        message = (f'{rep.consolidated} patterns, {rep.absorbed} experiences '
                   f'consolidated in {rep.duration_s:.2f} s'
                   + ('' if rep.complete else
                      ' (cancelled)' if should_stop() else ' (budget reached)'))
        if not self.planned_modalities():
            return SleepResult(rep, message, None)

        def preempted() -> bool:
            return self._dream_exits > exits or should_stop()
        if preempted():
            why = 'the sleep was cancelled' if should_stop() else 'the dream ended'
            return SleepResult(rep, f'{message}; retraining not started: {why}', None)
        left_s = budget - (time.monotonic() - t0)
        time_budget = min(float(self.values['sleep.retrain.time_budget_s']),
                          left_s - float(self.values['sleep.retrain.export_reserve_s']))
        if time_budget <= 0.0:
            return SleepResult(rep, message + '; no time left in this sleep for retraining',
                               None)
        outcome = self._retrain(time_budget, preempted, on_event)
        return SleepResult(rep, message + '; ' + outcome.summary(), outcome)

    def _retrain(self, time_budget: float, preempted: Callable[[], bool],
                 on_event: Callable[[dict[str, Any]], None]) -> RetrainOutcome:
        # Fine-tune the encoders on the inputs stored since the last retraining decision.
        state = self.memory.load_state(RETRAIN_STATE_KEY) or {}
        since = {m: float(v) for m, v in state.get('until', {}).items()}
        cmd = worker_command(self.values, str(self.values['database_url']),
                             str(self.values['data_dir']), self.versions_dir, time_budget,
                             since, seed=int(time.time()))
        outcome = self.retrainer.run(cmd, preempted,
                                     float(self.values['sleep.retrain.max_rss_mb']),
                                     on_event=on_event)
        self.log(f'sleep: {outcome.summary()} (worker peak {outcome.peak_rss_mb:.0f} MB)')
        if outcome.ran:
            # A modality retrained (promoted or rejected) next learns from newer inputs only;
            # one skipped for too few inputs keeps gathering them.
            since.update(outcome.decided_until())
            self.memory.save_state(RETRAIN_STATE_KEY, {'until': since,
                                                       'result': outcome.result})
        return outcome
