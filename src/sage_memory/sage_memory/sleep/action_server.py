"""The memory node's Sleep action (sage_interfaces/action/Sleep): a sleep with feedback and cancel.

The goal is the Sleep service's request; both run the same sleep (sage_memory.sleep.cycle).
Here the sleep runs in a thread of its own while the execute callback publishes feedback at
each change of phase and every FEEDBACK_PERIOD_S between (sage_memory.sleep.progress). A
cancel is accepted at once and stops the sleep as a salience spike that ends DREAM does:
consolidation ends as at its budget (what it clustered is written), the worker gets SIGTERM
within sage_memory.sleep.retrain's poll, discards its unfinished version and leaves live.json
as it was (an export in progress finishes first: a few seconds). An encoder already decided
in this sleep keeps its decision. The goal then ends CANCELED with what was done.
One sleep goal at a time: a second one while one runs is aborted, and says why.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import threading
import time
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from sage_interfaces.action import Sleep
from sage_interfaces.msg import ModelDecision

from sage_common.errors import SageError
from sage_common.health import Health, Level
from sage_common.vocabulary import Topic
from sage_memory.sleep.cycle import SleepCycle, SleepResult, live_models, retrain_modalities
from sage_memory.sleep.progress import DONE, Decision, SleepProgress, Snapshot

# Feedback between changes of phase: the action's contract is at least every 2 s.
FEEDBACK_PERIOD_S = 0.5
MAX_BUDGET_S = 3600.0  # as the Sleep service

RunSleep = Callable[[float, Callable[[], bool], Callable[[dict[str, Any]], None]], SleepResult]


def decision_msg(d: Decision) -> ModelDecision:
    """One encoder's decision as a message."""
    return ModelDecision(modality=d.modality, decision=d.decision, version=d.version,
                         inputs=d.inputs, steps=d.steps, reason=d.reason)


def feedback_msg(s: Snapshot) -> Sleep.Feedback:
    """One feedback message from a progress snapshot."""
    return Sleep.Feedback(phase=s.phase, modality=s.modality, steps=s.steps,
                          progress=float(s.progress),
                          time_left_s=float(s.time_left_s), elapsed_s=float(s.elapsed_s),
                          examined=s.examined, consolidated=s.consolidated,
                          models=[decision_msg(d) for d in s.decisions])


def decisions_of(result: SleepResult, order: Sequence[str]) -> list[Decision]:
    """Each retrained encoder's decision from the worker's JSON line, in the order it ran."""
    entries = result.retrain.result.get('modalities', {}) if result.retrain else {}
    names = [m for m in order if m in entries] + sorted(set(entries) - set(order))
    return [Decision.from_entry(m, entries[m]) for m in names]


class SleepActionServer:
    """Serves Topic.MEMORY_SLEEP_ACTION on `node`.

    Args:
        node: the node that owns the action server (the memory node's service helper).
        group: a reentrant group on a multi-threaded executor: a goal runs for minutes while
            its cancel and other calls come in.
        sleeper: the node's sleep cycle (planned encoders, versions folder, parameters).
        run_sleep: run_sleep(budget, should_stop, on_event) -> SleepResult, the node's sleep
            (it reports the retraining on /diagnostics).
        health: the node's diagnostics.
    """

    def __init__(self, node: Node, group: CallbackGroup, sleeper: SleepCycle,
                 run_sleep: RunSleep, health: Health) -> None:
        self._node = node
        self._sleeper = sleeper
        self._run_sleep = run_sleep
        self._health = health
        self._busy = threading.Lock()
        self._cancel_at: dict[bytes, float] = {}
        self._server = ActionServer(node, Sleep, Topic.MEMORY_SLEEP_ACTION,
                                    execute_callback=self._execute, callback_group=group,
                                    goal_callback=self._on_goal,
                                    cancel_callback=self._on_cancel)

    def destroy(self) -> None:
        """Stop serving (node shutdown)."""
        self._server.destroy()

    def _on_goal(self, goal: Sleep.Goal) -> GoalResponse:
        # Accepted, also a bad one: its result says what is wrong (a rejection cannot).
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle: ServerGoalHandle) -> CancelResponse:
        self._cancel_at[bytes(goal_handle.goal_id.uuid)] = time.monotonic()
        self._node.get_logger().info('sleep goal: cancel requested')
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: ServerGoalHandle) -> Sleep.Result:
        budget = float(goal_handle.request.max_duration_s)
        if not 0.0 < budget <= MAX_BUDGET_S:
            return self._abort(goal_handle, f'max_duration_s must be in (0, {MAX_BUDGET_S:g}],'
                                            f' got {budget:g}')
        if not self._busy.acquire(blocking=False):
            return self._abort(goal_handle, 'a sleep goal is already running (one at a time)')
        try:
            self._node.get_logger().info(
                f'sleep goal: {budget:g} s ({goal_handle.request.reason or "no reason given"})')
            self._health.count('sleep_goals')
            return self._sleep(goal_handle, budget)
        finally:
            self._busy.release()
            self._cancel_at.pop(bytes(goal_handle.goal_id.uuid), None)

    def _abort(self, goal_handle: ServerGoalHandle, message: str) -> Sleep.Result:
        self._node.get_logger().warning(f'sleep goal aborted: {message}')
        self._health.problem(Level.WARN, f'sleep goal aborted: {message}')
        goal_handle.abort()
        return Sleep.Result(success=False, message=message)

    def _sleep(self, goal_handle: ServerGoalHandle, budget: float) -> Sleep.Result:
        t0 = time.monotonic()
        order = self._sleeper.planned_modalities()
        progress = SleepProgress(budget, order)
        changed = threading.Event()
        done: dict[str, Any] = {}

        def on_event(event: dict[str, Any]) -> None:
            progress.on_event(event)
            changed.set()

        def cancelled() -> bool:
            return bool(goal_handle.is_cancel_requested)

        def work() -> None:
            try:
                done['result'] = self._run_sleep(budget, cancelled, on_event)
            except SageError as err:
                done['error'] = str(err)
            finally:
                changed.set()
        thread = threading.Thread(target=work, daemon=True, name='sleep-goal')
        thread.start()
        while True:
            changed.clear()
            finished = not thread.is_alive()
            if finished:
                progress.on_event({'phase': DONE})
            goal_handle.publish_feedback(feedback_msg(progress.snapshot()))
            if finished:
                break
            changed.wait(FEEDBACK_PERIOD_S)
        thread.join()
        if 'error' in done:
            return self._abort(goal_handle, done['error'])
        return self._finish(goal_handle, done['result'], order, time.monotonic() - t0)

    def _finish(self, goal_handle: ServerGoalHandle, result: SleepResult, order: list[str],
                seconds: float) -> Sleep.Result:
        rep = result.report
        live = live_models(self._sleeper.versions_dir, retrain_modalities(self._sleeper.values))
        cancelled = bool(goal_handle.is_cancel_requested)
        out = Sleep.Result(
            success=True, message=result.message, examined=rep.examined,
            consolidated=rep.consolidated, absorbed=rep.absorbed, complete=rep.complete,
            models=[decision_msg(d) for d in decisions_of(result, order)],
            live=[f"{m} {v['version']}" for m, v in sorted(live.items())],
            preempted=cancelled or bool(result.retrain and result.retrain.preempted),
            duration_s=float(seconds))
        log = self._node.get_logger()
        if cancelled:
            asked = self._cancel_at.get(bytes(goal_handle.goal_id.uuid))
            if asked is not None:
                self._health.latency('sleep_cancel', (time.monotonic() - asked) * 1e3)
            self._health.count('sleep_goals_cancelled')
            log.info(f'sleep goal cancelled: {result.message}')
            goal_handle.canceled()
        else:
            log.info(f'sleep goal done: {result.message}')
            goal_handle.succeed()
        return out
