"""How far one sleep has got, for the Sleep action's feedback (no ROS here).

A sleep reports events, dicts with a 'phase': SleepCycle its consolidation ('consolidate',
'consolidated' with its counts), the sleep worker its own (sage_memory.sleep.worker.progress:
'start' with the modalities it retrains, 'retrain' (again with its steps while it trains),
'export', 'embed' and 'decided' per modality). SleepProgress keeps what they said and
estimates progress 0..1 and the time left of the budget. Events come from the sleep's thread
and the worker's reader thread while the action's feedback loop takes snapshots: a lock keeps
them apart.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import threading
import time
from typing import Any

# The phases of the action's feedback (sage_interfaces/action/Sleep: its PHASE_* constants).
CONSOLIDATE, RETRAIN, EXPORT, EMBED, DONE = 'consolidate', 'retrain', 'export', 'embed', 'done'
# Consolidation's share of the estimate when retraining follows: it is the short part.
CONSOLIDATION_SHARE = 0.05
# Where one encoder stands within its share: fine-tuning fills up to TRAINED by its steps
# against its step limit or its time against the time the worker gave it, whichever is
# further; the export and the embedding come after.
TRAINED = 0.85
_AFTER_TRAINING = {EXPORT: TRAINED, EMBED: 0.92}


@dataclass(frozen=True)
class Decision:
    """What the retraining decided for one encoder (the worker's 'decided' event)."""

    modality: str
    decision: str
    version: str = ''
    inputs: int = 0
    steps: int = 0
    reason: str = ''

    @classmethod
    def from_entry(cls, modality: str, entry: Mapping[str, Any]) -> Decision:
        """From a worker event or the worker's JSON entry for one modality."""
        return cls(modality=modality, decision=str(entry.get('decision', '')),
                   version=str(entry.get('version') or ''),
                   inputs=int(entry.get('inputs') or 0), steps=int(entry.get('steps') or 0),
                   reason=str(entry.get('reason') or ''))


@dataclass(frozen=True)
class Snapshot:
    """One feedback message's worth."""

    phase: str
    modality: str
    steps: int
    progress: float
    time_left_s: float
    elapsed_s: float
    examined: int
    consolidated: int
    decisions: tuple[Decision, ...]


class SleepProgress:
    """The latest phase and counts of one sleep, and its estimated progress.

    Args:
        budget_s: the sleep's time budget.
        modalities: the encoders it plans to retrain ([] when retraining is off); the
            worker's 'start' event replaces them.
        clock: monotonic seconds.
    """

    def __init__(self, budget_s: float, modalities: Sequence[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = float(budget_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._t0 = clock()
        self._phase = CONSOLIDATE
        self._modality = ''
        self._phase_t0 = self._t0
        self._share_s = 0.0
        self._steps = 0
        self._max_steps = 0
        self._modalities = list(modalities)
        self._consolidated_at: float | None = None
        self._examined = 0
        self._consolidated = 0
        self._decisions: list[Decision] = []
        self._best = 0.0
        self.changes = 0  # counts events: the feedback loop publishes at once on a change

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Take one event (unknown phases are ignored: a newer worker may say more)."""
        phase = str(event.get('phase', ''))
        modality = str(event.get('modality', ''))
        with self._lock:
            now = self._clock()
            if phase == 'consolidated':
                self._examined = int(event.get('examined', 0))
                self._consolidated = int(event.get('consolidated', 0))
                self._consolidated_at = now
            elif phase == 'start':
                self._modalities = [str(m) for m in event.get('modalities', [])]
            elif phase == RETRAIN and 'steps' in event:  # training goes on
                self._modality = modality
                self._steps = int(event['steps'])
                self._max_steps = int(event.get('max_steps', 0))
            elif phase in (CONSOLIDATE, RETRAIN, EXPORT, EMBED, DONE):
                self._phase, self._modality, self._phase_t0 = phase, modality, now
                if phase == RETRAIN:
                    self._share_s = float(event.get('share_s', 0.0))
                    self._steps = self._max_steps = 0
            elif phase == 'decided':
                self._decisions.append(Decision.from_entry(modality, event))
                self._modality = ''
            else:
                return
            self.changes += 1

    def snapshot(self) -> Snapshot:
        """The state now, with progress (never lower than the last one given) and time left."""
        with self._lock:
            now = self._clock()
            elapsed = now - self._t0
            self._best = max(self._best, self._estimate(now))
            return Snapshot(phase=self._phase, modality=self._modality,
                            steps=self._steps if self._modality else 0, progress=self._best,
                            time_left_s=max(0.0, self.budget_s - elapsed), elapsed_s=elapsed,
                            examined=self._examined, consolidated=self._consolidated,
                            decisions=tuple(self._decisions))

    def _estimate(self, now: float) -> float:
        if self._phase == DONE:
            return 1.0
        share = CONSOLIDATION_SHARE if self._modalities else 1.0
        if self._consolidated_at is None:
            return 0.0
        if not self._modalities:
            return share
        slot = (1.0 - share) / len(self._modalities)
        within = 0.0
        if self._modality and self._phase == RETRAIN:
            by_time = (now - self._phase_t0) / self._share_s if self._share_s > 0.0 else 0.0
            by_steps = self._steps / self._max_steps if self._max_steps > 0 else 0.0
            within = TRAINED * min(1.0, max(by_time, by_steps))
        elif self._modality:
            within = _AFTER_TRAINING.get(self._phase, 0.0)
        done = min(len(self._decisions), len(self._modalities))
        return min(1.0, share + slot * (done + within))
