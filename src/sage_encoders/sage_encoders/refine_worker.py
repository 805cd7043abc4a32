"""Refinement off the salience path: begun inputs refined on a thread of their own.

An encoder node begins each input on its executor thread (features, nearest codes, the
latent before refinement, which SNARC scores) and hands it here; this thread refines it under
the ATP available then and hands the record on (the refined latent: memory, trust). So the
next input is not held behind the refinement steps the previous one bought. No rclpy.

When inputs come faster than they are refined, at most `depth` wait for refinement: the
oldest waiting one is then finished without steps (its record says atp_spent 0), so the
refined latents stay a bounded time behind the inputs.

Salience first (`SALIENCE_FIRST`, one per process): the encoders begin each input inside
`SALIENCE_FIRST.busy()`, and refinement waits between its steps while any input of the
process is being begun. The threads of a process share one interpreter lock, so a refinement
step run meanwhile would hold back the input that salience waits for. (A lower OS priority
for the refinement thread does not do it: descheduled while it holds the interpreter lock, it
stalls every thread of the process.)
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
import threading
from typing import Any, Generic, Iterator, TypeVar

P = TypeVar('P')  # a begun input (vision_core.PendingFrame, audio_core.PendingWindow)


class SalienceFirst:
    """Counts the inputs being begun in this process; refinement steps wait for none."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Around the work an input's salience waits for (begin)."""
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                if not self._busy:
                    self._cond.notify_all()

    def wait_idle(self) -> None:
        """Return once no input is being begun (between two refinement steps)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._busy)


SALIENCE_FIRST = SalienceFirst()


@dataclass
class _Waiting(Generic[P]):
    pending: P
    refine: bool  # False: finished without steps (the queue overflowed)


class RefineWorker(Generic[P]):
    """A thread that finishes begun inputs in order.

    Args:
        finish: `core.finish(pending, atp)` -> record.
        available: ATP available for the next refinement (None = the core's default).
        done: gets each record, on this thread (publishes the refined latent).
        failed: gets an exception `finish` or `done` raised (the input is lost, the thread
            goes on).
        depth: inputs waiting for refinement at most (>= 1).
        name: the thread's name.
    """

    def __init__(self, finish: Callable[[P, float | None], Any],
                 available: Callable[[], float | None], done: Callable[[Any], None],
                 failed: Callable[[Exception], None], depth: int, name: str) -> None:
        self._finish = finish
        self._available = available
        self._done = done
        self._failed = failed
        self.depth = max(1, int(depth))
        self._queue: deque[_Waiting[P]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.unrefined = 0  # inputs finished without steps because the queue was full
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, pending: P) -> None:
        """Queue a begun input for refinement (returns at once)."""
        with self._cond:
            self._queue.append(_Waiting(pending, True))
            waiting = [w for w in self._queue if w.refine]
            for w in waiting[:max(0, len(waiting) - self.depth)]:
                w.refine = False
                self.unrefined += 1
            self._cond.notify()

    def backlog(self) -> int:
        """Inputs queued and not finished yet."""
        with self._cond:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item = self._queue.popleft()
            try:
                self._done(self._finish(item.pending, self._available() if item.refine
                                        else 0.0))
            except Exception as err:  # noqa: BLE001 - reported by the node; the thread goes on
                self._failed(err)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the input being refined (waiting ones are dropped)."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify()
        self._thread.join(timeout=timeout)

