"""`sage bench sleep --preempt N`: from a salience spike in DREAM to a stopped sleep (issue 18,
must-show 4).

The profile's orchestrator and memory node run as processes under the launcher's supervisor,
without sensors, encoders or SNARC (nothing else is salient, so the orchestrator idles into
DREAM; its idle times are shortened to seconds). The memory node's store holds inputs of a
realistic scene of E (`sleep_setup.scene_inputs`, as the encoders hand them over), so each
DREAM's Sleep starts a retraining worker. A trial waits for DREAM and the worker, lets the
worker run a random 1-5 s (importing torch, decoding, scoring or fine-tuning), then publishes
one Salience above `metabolic.dream_preempt_salience` on /sage/salience, as SNARC would, and
measures from that publish to the orchestrator's WAKE on /sage/metabolic_state and to the
worker's exit (psutil, polled every `POLL_S`). After each trial no model version may have been
written and the packaged models must still be live; at the end the store must hold every
experience and training input it held before.
"""
from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
import sqlite3
import tempfile
import threading
import time
from typing import Any

import numpy as np
import psutil

from sage_bench.salience import scene
from sage_bench.salience_timing import percentiles
from sage_bringup.environment import joined_graph, resolve_domain
from sage_bringup.launch_cmd import graph_supervisor
from sage_bringup.profile import load_profile
from sage_common.errors import SageError
from sage_common.records import SalienceRecord
from sage_common.vocabulary import MetabolicState as StateName, Topic
from sage_encoders.model_versions import ModelVersions

POLL_S = 0.005
LIMIT_S = 1.0  # the bound from the spike to the stopped sleep
SPIKE = 0.95  # salience of the spike (the nano dream_preempt_salience is 0.6)
RUN_S = (1.0, 5.0)  # how long the worker runs before the spike, drawn per trial
STEP_TIMEOUT_S = 120.0  # longest wait for a state or a worker before the bench gives up
# Shortened metabolic timers: DREAM within seconds of the previous trial's WAKE.
FAST_STATES = ('orchestrator.metabolic.idle_rest_s=1.0', 'orchestrator.metabolic.idle_dream_s=1.0',
               'orchestrator.metabolic.dream_cooldown_s=1.0',
               'orchestrator.metabolic.dwell.wake=0.5', 'orchestrator.metabolic.dwell.rest=0.5')


def _wait(cond: Callable[[], Any], what: str, timeout: float = STEP_TIMEOUT_S,
          poll_s: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(poll_s)
    raise SageError(f'bench sleep --preempt: no {what} within {timeout:.0f} s')


def _workers(pid: int) -> list[Any]:
    """The sleep workers under process pid."""
    out = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for child in children:
        try:
            if 'sage_memory.sleep.worker' in ' '.join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            pass
    return out


def _store_state(data_dir: Path) -> dict[str, Any]:
    """SQLite's integrity check, the experiences' uuids and the training inputs' count."""
    conn = sqlite3.connect(data_dir / 'sage_memory.db')
    try:
        return {'integrity': conn.execute('PRAGMA integrity_check').fetchone()[0],
                'uuids': {r[0] for r in conn.execute('SELECT uuid FROM experiences')},
                'training_inputs': conn.execute('SELECT COUNT(*) FROM training_inputs'
                                                ).fetchone()[0]}
    finally:
        conn.close()


class _Graph:
    """The bench's own rclpy node: the spike publisher and the metabolic states received."""

    def __init__(self) -> None:
        # lazy: keeps ROS out of this module's import
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
        from sage_interfaces.msg import MetabolicState, Salience
        self.states: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('sage_bench_preempt', context=self.context)
        self.node.create_subscription(MetabolicState, Topic.METABOLIC_STATE, self._on_state,
                                      LATCHED_QOS)
        self.salience = self.node.create_publisher(Salience, Topic.SALIENCE, RELIABLE_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_state(self, msg: Any) -> None:
        with self.lock:
            self.states.append((time.monotonic(), str(msg.state)))

    def state(self) -> str:
        with self.lock:
            return self.states[-1][1] if self.states else ''

    def first_state_after(self, t: float, state: str) -> float | None:
        with self.lock:
            return next((a for a, s in self.states if a >= t and s == state), None)

    def spike(self) -> float:
        # lazy: keeps ROS out of this module's import
        from sage_common.convert import salience_to_msg
        stamp = self.node.get_clock().now().nanoseconds * 1e-9
        msg = salience_to_msg(SalienceRecord(stamp, 'audio', 0, 0, 0, SPIKE, 0, 0, SPIKE, 0.5,
                                             True))
        t = time.monotonic()
        self.salience.publish(msg)
        return t

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def _run_trials(graph: Any, work: Path, data_dir: Path, mem: dict[str, Any], trials: int,
                rng: np.random.Generator) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Start the two nodes, preempt `trials` sleeps; the rows and the nodes' restarts."""
    sup = graph_supervisor(graph, work / 'run', int(resolve_domain(graph, None).value),
                           compose=False)
    probe = _Graph()
    sup.start()
    rows: list[dict[str, Any]] = []
    try:
        memory_pid = sup.pids()['memory']
        _wait(lambda: probe.salience.get_subscription_count() > 0, 'orchestrator '
              'subscribed to /sage/salience')
        for _ in range(trials):
            _wait(lambda: probe.state() == StateName.DREAM.value, StateName.DREAM.value)
            worker = _wait(lambda: _workers(memory_pid), 'sleep worker', poll_s=0.01)[0]
            started = time.monotonic()
            run_s = float(rng.uniform(*RUN_S))
            time.sleep(run_s)
            if not worker.is_running():
                raise SageError('the sleep worker ended before the spike: raise '
                                'memory.sleep.retrain.max_steps or inputs_per_modality')
            t0 = probe.spike()
            while worker.is_running() and time.monotonic() - t0 < STEP_TIMEOUT_S:
                time.sleep(POLL_S)
            stop_s = time.monotonic() - t0
            stopped = not worker.is_running()
            if not stopped:  # reported; the next DREAM must not find this worker
                _wait(lambda: not worker.is_running(), 'end of the unstopped worker',
                      timeout=float(mem['sleep.retrain.time_budget_s']) + STEP_TIMEOUT_S)
            woke = _wait(lambda: probe.first_state_after(t0, StateName.WAKE.value),
                         'WAKE after the spike', timeout=10.0)
            models = {m: ModelVersions(data_dir / 'models', m) for m in ('vision', 'audio')}
            rows.append({'worker_ran_s': round(t0 - started, 3), 'stopped': stopped,
                         'wake_s': round(woke - t0, 4), 'stop_s': round(stop_s, 4),
                         'versions_written': sum(len(v.versions()) for v in models.values()),
                         'live': {m: v.live_version() for m, v in models.items()}})
            sup.poll()
        restarts = {c.spec.name: c.restarts for c in sup.children}
    finally:
        probe.close()
        sup.stop()
    return rows, restarts


def run_preempt(profile: str = 'nano', overrides: list[str] | None = None, trials: int = 10,
                inputs_per_modality: int = 200, program: str = 'short', seed: int = 0,
                cache: Path | None = None, keep_dir: Path | None = None) -> dict[str, Any]:
    """Preempt `trials` sleeps with a salience spike each; time the stop.

    Args:
        profile: profile whose orchestrator and memory node run (with FAST_STATES).
        overrides: more profile overrides, node.param=value.
        trials: spikes, one per DREAM.
        inputs_per_modality: vision frames and audio windows in the store (enough for the
            worker to train: at least the profile's sleep.retrain.min_inputs).
        program: program of the report scene the inputs come from ('short': about 80 s).
        seed: seed of the run-time draws (how long the worker runs before each spike).
        cache: scene cache folder (default: `sage bench salience`'s).
        keep_dir: work in this folder and keep it (default: a temporary folder, removed).

    Returns:
        JSON-able dict: per trial the seconds from the spike to WAKE and to the worker's exit
        (stopped: false when it was still running STEP_TIMEOUT_S after the spike);
        their n/p50/p95/p99 and max; whether every stop was within LIMIT_S; the versions
        written (must be none) and the store's counts before and after.

    Raises:
        SageError: bad arguments, a graph that does not reach DREAM or start a worker.
    """
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_bench.sleep_setup import fill_store, scene_inputs
    from sage_eval.realistic import REPORT_SEEDS
    from sage_eval.inputs import ENCODER_PARAMS, resolved_params

    if trials < 1:
        raise SageError('--preempt takes at least 1 trial')
    tmp = None if keep_dir else tempfile.TemporaryDirectory(prefix='sage-bench-preempt-')
    work = Path(keep_dir or tmp.name)  # type: ignore[union-attr]
    data_dir = work / 'memory'
    prof = load_profile(profile, [*FAST_STATES, *(overrides or []),
                                  f'memory.data_dir={data_dir}'])
    names = [n.name for n in prof.nodes]
    if 'orchestrator' not in names or 'memory' not in names:
        raise SageError(f'profile {profile} has no orchestrator and memory node to preempt')
    params = {n.name: dict(n.parameters) for n in prof.nodes}
    mem = resolved_params(params, 'memory', 'sage_memory.memory_params')
    orch = resolved_params(params, 'orchestrator', 'sage_orchestrator.orchestrator_params')
    if not mem['sleep.retrain.enabled']:
        raise SageError('memory.sleep.retrain.enabled is off: no sleep to preempt')
    if SPIKE < float(orch['metabolic.dream_preempt_salience']):
        raise SageError(f'the spike ({SPIKE}) is under metabolic.dream_preempt_salience')
    graph = prof.without([n for n in names if n not in ('orchestrator', 'memory')])
    rng = np.random.default_rng(seed)
    try:
        work.mkdir(parents=True, exist_ok=True)
        vision = resolved_params(params, 'vision_encoder', ENCODER_PARAMS['vision_encoder'])
        audio = resolved_params(params, 'audio_encoder', ENCODER_PARAMS['audio_encoder'])
        kept = [k for k in scene_inputs(scene('realistic', REPORT_SEEDS[0], program, cache),
                                        vision, audio, inputs_per_modality,
                                        inputs_per_modality) if k.answer.found]
        fill_store(data_dir, kept, float(mem['training_inputs.budget_mb']))
        before = _store_state(data_dir)
        # graph_supervisor joins this process to the graph; the caller's values come back.
        with joined_graph(dict(os.environ)):
            rows, restarts = _run_trials(graph, work, data_dir, mem, trials, rng)
        after = _store_state(data_dir)
        stops = [r['stop_s'] for r in rows]
        return {
            'profile': profile, 'trials': rows, 'spike_salience': SPIKE,
            'stop_s': {**percentiles(stops), 'max': max(stops)},
            'wake_s': {**percentiles(r['wake_s'] for r in rows),
                       'max': max(r['wake_s'] for r in rows)},
            'limit_s': LIMIT_S,
            'within_limit': all(r['stopped'] and r['stop_s'] <= LIMIT_S for r in rows),
            'versions_written': sum(r['versions_written'] for r in rows),
            'packaged_live': all(v == 'packaged' for r in rows for v in r['live'].values()),
            'store': {'integrity': after['integrity'],
                      'experiences_before': len(before['uuids']),
                      'experiences_lost': len(before['uuids'] - after['uuids']),
                      'training_inputs_before': before['training_inputs'],
                      'training_inputs_after': after['training_inputs']},
            'restarts': restarts}
    finally:
        if tmp is not None:
            tmp.cleanup()
