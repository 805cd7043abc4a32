"""Runs the sleep worker (sage_memory.sleep.worker) as a child process for the memory node.

Fine-tuning needs torch, which the memory node must not load (hundreds of MB it would keep
for the rest of the day): the worker is a separate process that reads the training inputs
from the database, writes a model version and promotes or rejects it. The node waits for it
inside the Sleep call and stops it (SIGTERM; the worker discards its unfinished version) when
the dream is preempted or the node shuts down.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from sage_memory.store.database import DEFAULT_DATA_DIR
# The worker module's top level is standard library only: no torch comes with these.
from sage_memory.sleep.worker import PARENT_ENV, PREEMPTED_EXIT, PROGRESS_PREFIX
# How often the node looks at the preempt flag while the worker runs (well under the 1 s the
# issue allows from a salience spike to a stopped sleep).
_POLL_S = 0.05
# Worker arguments named by the sleep.retrain.* parameters.
_ARGS = ('max_steps', 'audio_max_steps', 'learning_rate', 'min_inputs', 'holdout',
         'holdout_gap_s', 'rehearsal', 'audio_rehearsal', 'vision_gain_jitter',
         'vision_flip', 'freeze_codebook', 'min_gain',
         'max_forgetting', 'calibration_inputs', 'threads', 'nice')


@dataclass
class RetrainOutcome:
    """What one worker run did.

    Attributes:
        ran: a worker was started.
        preempted: it was stopped before it finished.
        exit_code: its exit code (None when it did not start).
        result: its final JSON line ({"modalities": {...}, "preempted": ...}), or {}.
        error: why it failed ('' when it did not).
        seconds: wall time of the run.
        stop_s: seconds from the stop request to the worker's exit (preempted runs).
        peak_rss_mb: the worker's largest resident size seen (polled with the stop flag).
    """

    ran: bool = False
    preempted: bool = False
    exit_code: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ''
    seconds: float = 0.0
    stop_s: float = 0.0
    peak_rss_mb: float = 0.0

    def decided_until(self) -> dict[str, float]:
        """Newest input stamp of each modality the run promoted or rejected a version for."""
        return {m: float(r['until']) for m, r in self.result.get('modalities', {}).items()
                if r.get('decision') in ('promoted', 'rejected') and r.get('until') is not None}

    def summary(self) -> str:
        """One line for the Sleep response and the log."""
        if not self.ran:
            return self.error or 'retraining off'
        if self.preempted and self.error:
            return f'retraining stopped: {self.error}'
        if self.preempted:
            return f'retraining preempted after {self.seconds:.1f} s'
        if self.error:
            return f'retraining failed: {self.error}'
        parts = []
        for m, r in sorted(self.result.get('modalities', {}).items()):
            parts.append(f"{m} {r.get('decision', '?')}"
                         + (f" {r['version']}" if r.get('version') else ''))
        return 'retraining: ' + (', '.join(parts) or 'nothing to do')


def worker_command(values: Mapping[str, Any], database_url: str, data_dir: str,
                   versions_dir: str, time_budget_s: float, since: Mapping[str, float],
                   seed: int) -> list[str]:
    """The worker's command line from the memory node's sleep.retrain.* parameters."""
    since_arg = ','.join(f'{m}={t:.6f}' for m, t in sorted(since.items())) or '0'
    cmd = [sys.executable, '-m', 'sage_memory.sleep.worker',
           '--database-url', database_url, '--data-dir', data_dir,
           '--versions-dir', versions_dir,
           '--modalities', str(values['sleep.retrain.modalities']),
           '--time-budget-s', f'{time_budget_s:.3f}', '--since', since_arg,
           '--seed', str(int(seed))]
    for name in _ARGS:
        cmd += [f"--{name.replace('_', '-')}", str(values[f'sleep.retrain.{name}'])]
    return cmd


class Retrainer:
    """Starts one worker at a time and stops it on request."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        with self._lock:
            return self._proc is not None

    def run(self, cmd: list[str], should_stop: Callable[[], bool],
            max_rss_mb: float = 0.0,
            on_event: Callable[[dict[str, Any]], None] | None = None) -> RetrainOutcome:
        """Run the worker to its end, or stop it once should_stop() is true or its resident
        size passes max_rss_mb (0 = no limit); on_event gets each of its progress lines
        (sage_memory.sleep.worker.progress), from a reader thread."""
        out = RetrainOutcome()
        t0 = time.monotonic()
        with self._lock:
            if self._closed:
                out.error = 'memory node shutting down'
                return out
            if self._proc is not None:
                out.error = 'a retraining is already running'
                return out
            try:
                self._proc = proc = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env={**os.environ, 'PYTHONUNBUFFERED': '1', PARENT_ENV: str(os.getpid())})
            except OSError as err:
                out.error = f'cannot start the sleep worker: {err}'
                return out
        out.ran = True
        reader = _Drain(proc, on_event)
        stop_at = 0.0
        over = ''
        try:
            while proc.poll() is None:
                rss = rss_mb(proc.pid)
                out.peak_rss_mb = max(out.peak_rss_mb, rss)
                if not stop_at and max_rss_mb > 0 and rss > max_rss_mb:
                    over = (f'the worker used {rss:.0f} MB, over sleep.retrain.max_rss_mb '
                            f'{max_rss_mb:g}')
                if not stop_at and (over or should_stop() or self._closed):
                    stop_at = time.monotonic()
                    proc.send_signal(signal.SIGTERM)
                time.sleep(_POLL_S)
        finally:
            with self._lock:
                self._proc = None
        reader.join()
        out.exit_code = proc.returncode
        out.seconds = time.monotonic() - t0
        out.result = _last_json(reader.stdout)
        if stop_at:
            out.stop_s = time.monotonic() - stop_at
        out.preempted = bool(stop_at) or proc.returncode == PREEMPTED_EXIT
        if over:
            out.error = over
        elif proc.returncode not in (0, PREEMPTED_EXIT):
            tail = (reader.stderr.strip().splitlines() or ['(no output)'])[-1]
            out.error = f'worker exited {proc.returncode}: {tail}'
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Stop a running worker (node shutdown); kill it if it does not stop in time."""
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


class _Drain:
    """Reads a child's pipes in threads, so a chatty worker never blocks on a full pipe;
    progress lines on stderr go to on_event as they come, the rest is kept."""

    def __init__(self, proc: subprocess.Popen[str],
                 on_event: Callable[[dict[str, Any]], None] | None) -> None:
        self.stdout = ''
        self.stderr = ''
        self._on_event = on_event
        self._threads = [threading.Thread(target=self._read, args=(proc.stdout,),
                                          daemon=True),
                         threading.Thread(target=self._read_lines, args=(proc.stderr,),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self, pipe: Any) -> None:
        self.stdout = pipe.read()

    def _read_lines(self, pipe: Any) -> None:
        kept = []
        for line in pipe:
            event = _progress_event(line)
            if event is None:
                kept.append(line)
            elif self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception as err:  # noqa: BLE001
                    # The drain goes on whatever the listener does: a full pipe blocks the
                    # worker.
                    kept.append(f'progress listener failed: {err}\n')
        self.stderr = ''.join(kept)

    def join(self) -> None:
        for t in self._threads:
            t.join(5.0)


def rss_mb(pid: int) -> float:
    """Resident size of a process in MB from /proc (0 when it is gone or not Linux)."""
    try:
        with open(f'/proc/{pid}/status') as fh:
            for line in fh:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _progress_event(line: str) -> dict[str, Any] | None:
    """The worker's progress line as a dict, or None for any other line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        doc = json.loads(line[len(PROGRESS_PREFIX):])
    except ValueError:
        return None  # cut short by a stop: kept as a log line
    return doc if isinstance(doc, dict) and 'phase' in doc else None


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    return {}


def versions_dir(data_dir: str) -> str:
    """Where model versions live: beside the memory database ('' = its default folder)."""
    return str(Path(data_dir or DEFAULT_DATA_DIR).expanduser() / 'models')
