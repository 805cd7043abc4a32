"""`sage memory sleep`: ask the running graph's memory node to sleep now (the Sleep action).

The same sleep as the one the robot takes in DREAM: consolidation into patterns, then (with
sleep.retrain.enabled) fine-tuning the encoders on the inputs stored since the last retraining.
Asked for by hand it is not preempted by the metabolic state. Feedback is printed as it comes:
a line at each change of phase or decision, and the progress every PRINT_EVERY_S between.
Ctrl-C cancels the goal and waits for the memory node to stop the sleep (the unfinished version
is discarded, the previous model stays live), then prints what was done; a second Ctrl-C stops
waiting. Ctrl-C only sets a flag (CtrlC) that the waits look at: a KeyboardInterrupt raised
inside rclpy's conversion of a message comes out as another error.
"""
from __future__ import annotations

from collections.abc import Callable
import signal
import sys
import threading
import time
from typing import Any, TextIO

from sage_common.vocabulary import Topic

# How long to wait for the memory node's action server to be discovered, and to take the goal.
DISCOVERY_TIMEOUT_S = 10.0
PRINT_EVERY_S = 5.0
# A cancel lands within a second, but an export in progress finishes first (a few seconds).
CANCEL_WAIT_S = 30.0
EXIT_CANCELLED = 130  # as a shell reports a command ended by Ctrl-C
# Spins in short slices, so that a Ctrl-C is seen within one.
SPIN_STEP_S = 0.2


def feedback_line(fb: Any) -> str:
    """One line of a Sleep feedback: elapsed, phase (and encoder), progress, time left."""
    phase = f'{fb.phase} {fb.modality}'.strip()
    line = (f'[{fb.elapsed_s:6.1f} s] {phase:<16} {100.0 * fb.progress:3.0f} %  '
            f'{fb.time_left_s:.0f} s left')
    if fb.steps:
        line += f'  ({fb.steps} steps)'
    if fb.phase == 'consolidate' and (fb.examined or fb.consolidated):
        line += f'  (examined {fb.examined}, patterns {fb.consolidated})'
    return line


def decision_line(d: Any) -> str:
    """One encoder's retraining decision."""
    version = f' {d.version}' if d.version else ''
    reason = f' ({d.reason})' if d.reason else ''
    return f'  {d.modality}: {d.decision}{version}, {d.inputs} inputs, {d.steps} steps{reason}'


class FeedbackPrinter:
    """Prints feedback at a change of phase or decision, else every PRINT_EVERY_S."""

    def __init__(self, out: TextIO,
                 progress: Callable[[float, float | None], None] | None = None) -> None:
        self.out = out
        self.progress = progress  # (seconds slept, seconds it may take in all): a bar
        self.count = 0
        self._key: tuple[str, str] | None = None
        self._decided = 0
        self._printed = 0.0

    def __call__(self, message: Any) -> None:
        fb = message.feedback
        self.count += 1
        if self.progress is not None:
            self.progress(fb.elapsed_s, fb.elapsed_s + max(fb.time_left_s, 0.0))
        key = (fb.phase, fb.modality)
        now = time.monotonic()
        if key != self._key or now - self._printed >= PRINT_EVERY_S:
            print(feedback_line(fb), file=self.out, flush=True)
            self._key, self._printed = key, now
        for d in list(fb.models)[self._decided:]:
            print(decision_line(d), file=self.out, flush=True)
        self._decided = max(self._decided, len(fb.models))


class CtrlC:
    """Counts Ctrl-C presses (SIGINT) while in use, instead of raising KeyboardInterrupt.

    Only in the main thread (where Python runs signal handlers); elsewhere it counts nothing.
    """

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._press)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _press(self, signum: int, frame: Any) -> None:
        self.count += 1


def _context() -> Any:
    # lazy: keeps ROS out of this module's import
    import rclpy
    context = rclpy.Context()
    kwargs: dict[str, Any] = {'context': context}
    try:  # leave SIGINT to Python (KeyboardInterrupt): Ctrl-C cancels the goal
        # lazy: optional, rclpy before Humble has no SignalHandlerOptions
        from rclpy.signals import SignalHandlerOptions
        kwargs['signal_handler_options'] = SignalHandlerOptions.NO
    except ImportError:
        pass
    rclpy.init(**kwargs)
    return context


def run_memory_sleep(max_duration_s: float, out: TextIO | None = None,
                     err: TextIO | None = None,
                     progress: Callable[[float, float | None], None] | None = None) -> int:
    """Send a Sleep goal, print its feedback and result (progress: see FeedbackPrinter).

    Returns 0 on success, 1 when the sleep failed, 2 when no memory node answered,
    EXIT_CANCELLED when Ctrl-C cancelled it.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    context = _context()
    try:
        with CtrlC() as ctrl_c:
            return _run(context, ctrl_c, max_duration_s, out, err, progress)
    finally:
        context.try_shutdown()


def _run(context: Any, ctrl_c: CtrlC, max_duration_s: float, out: TextIO, err: TextIO,
         progress: Callable[[float, float | None], None] | None
         ) -> int:
    # lazy: keeps ROS out of this module's import
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor
    from sage_interfaces.action import Sleep
    from sage_common.ros import spin_until

    node = rclpy.create_node('sage_memory_sleep', context=context)
    client = ActionClient(node, Sleep, Topic.MEMORY_SLEEP_ACTION)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin_until(executor, lambda: client.server_is_ready() or ctrl_c.count, DISCOVERY_TIMEOUT_S,
               SPIN_STEP_S)
    if ctrl_c.count:
        return EXIT_CANCELLED  # nothing sent yet
    if not client.server_is_ready():
        print(f'no memory node serves the {Topic.MEMORY_SLEEP_ACTION} action on this '
              f'domain (waited {DISCOVERY_TIMEOUT_S:g} s): is the graph running?', file=err)
        return 2
    printer = FeedbackPrinter(out, progress)
    sent = client.send_goal_async(Sleep.Goal(max_duration_s=float(max_duration_s),
                                             reason='sage memory sleep'),
                                  feedback_callback=printer)
    spin_until(executor, lambda: sent.done() or ctrl_c.count, DISCOVERY_TIMEOUT_S, SPIN_STEP_S)
    result = None
    if sent.done():
        goal = sent.result()
        if goal is None or not goal.accepted:
            print('the memory node did not take the sleep goal', file=err)
            return 2
        result = goal.get_result_async()
        # The node bounds the sleep by max_duration_s; a margin for the result to come.
        spin_until(executor, lambda: result.done() or ctrl_c.count, max_duration_s + 60.0,
                   SPIN_STEP_S)
    cancelled = bool(ctrl_c.count)
    if cancelled:
        result = _cancel(executor, spin_until, ctrl_c, sent, result, err)
        if ctrl_c.count > 1:
            print('stopped waiting: the memory node still stops the sleep', file=err)
            return EXIT_CANCELLED
    answer = result.result() if result is not None and result.done() else None
    if answer is None:
        print('no result from the memory node', file=err)
        return EXIT_CANCELLED if cancelled else 2
    _report(answer.result, out)
    if cancelled:
        return EXIT_CANCELLED
    return 0 if answer.result.success else 1


def _cancel(executor: Any, spin_until: Callable[..., bool], ctrl_c: CtrlC, sent: Any,
            result: Any, err: TextIO) -> Any:
    """Ctrl-C: cancel the goal and wait for its result (None when it never arrives); a
    second Ctrl-C stops waiting."""
    print('Ctrl-C: cancelling the sleep (the previous model stays live) ...', file=err,
          flush=True)
    if not sent.done():  # the goal was still on its way: it is cancelled once it is taken
        spin_until(executor, lambda: sent.done() or ctrl_c.count > 1, DISCOVERY_TIMEOUT_S,
                   SPIN_STEP_S)
    goal = sent.result() if sent.done() else None
    if goal is None or not goal.accepted:
        return None
    t0 = time.monotonic()
    goal.cancel_goal_async()
    if result is None:
        result = goal.get_result_async()
    spin_until(executor, lambda: result.done() or ctrl_c.count > 1, CANCEL_WAIT_S,
               SPIN_STEP_S)
    if result.done():
        print(f'cancelled: the sleep ended {time.monotonic() - t0:.2f} s after the cancel',
              file=err)
    return result


def _report(res: Any, out: TextIO) -> None:
    print(res.message, file=out)
    print(f'examined {res.examined}, patterns written {res.consolidated}, experiences '
          f'absorbed {res.absorbed}', file=out)
    for d in res.models:
        print(decision_line(d), file=out)
    if res.live:
        print(f"live: {', '.join(res.live)}", file=out)
