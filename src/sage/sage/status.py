"""`sage status`: a live terminal screen of the running graph (rich).

Shows salience per modality and axis over the last seconds, ATP bars per plugin, the metabolic
state and its last reason, rates/drops/latencies per node from /diagnostics, memory size and
the latest stored experiences.

This module is the ROS side: it extends sage_bringup.monitor.GraphMonitor with the budget and
/diagnostics subscriptions, feeds sage.status_model.StatusModel from a background thread and
shows it with sage.status_render.
"""
from __future__ import annotations

from collections.abc import Sequence
import sys
import threading
import time
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.live import Live

from sage.status_model import StatusModel
from sage.status_render import render
from sage.viz_core import budget_from_msg, state_from_msg, stored_from_msg
from sage_common.vocabulary import Topic


# --- ROS side ---------------------------------------------------------------------------------

def _make_monitor(model: StatusModel, lock: threading.Lock, context: Any) -> Any:
    """A GraphMonitor extended with the budget, /diagnostics and richer stored/state data."""
    # lazy: keeps ROS out of this module's import
    from diagnostic_msgs.msg import DiagnosticArray
    from sage_interfaces.msg import AtpBudget
    from sage_bringup.monitor import GraphMonitor
    from sage_common.ros import RELIABLE_QOS

    class StatusMonitor(GraphMonitor):
        def __init__(self) -> None:
            super().__init__(model.stats, lock, context=context)
            self.create_subscription(AtpBudget, Topic.BUDGET, self._on_budget, RELIABLE_QOS)
            self.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS, self._on_diagnostics, 50)

        def _on_budget(self, msg: Any) -> None:
            with lock:
                model.on_budget(budget_from_msg(msg))

        def _on_stored(self, msg: Any) -> None:
            super()._on_stored(msg)
            with lock:
                model.on_stored(stored_from_msg(msg))

        def _on_state(self, msg: Any) -> None:
            super()._on_state(msg)
            with lock:
                model.on_state(state_from_msg(msg))

        def _on_diagnostics(self, msg: Any) -> None:
            with lock:
                for s in msg.status:
                    level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else s.level
                    model.on_diagnostic(s.name, int(level), s.message,
                                        {kv.key: kv.value for kv in s.values})

    return StatusMonitor()


class StatusListener:
    """Runs the status monitor node in a background thread with its own context."""

    def __init__(self, model: StatusModel, namespace: str = '') -> None:
        self.model = model
        self.namespace = namespace  # the graph's ROS namespace ('' = none)
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # lazy: keeps ROS out of this module's import
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self._context = rclpy.Context()
        kwargs: dict[str, Any] = {'context': self._context,
                                  # the launcher's monitor is also 'sage_monitor': rename ours
                                  'args': ['--ros-args', '-r', '__node:=sage_status']}
        if self.namespace.strip('/'):  # its relative names then resolve in the graph's
            kwargs['args'] += ['-r', f"__ns:=/{self.namespace.strip('/')}"]
        try:
            # lazy: optional, rclpy before Humble has no SignalHandlerOptions
            from rclpy.signals import SignalHandlerOptions
            kwargs['signal_handler_options'] = SignalHandlerOptions.NO
        except ImportError:
            pass
        rclpy.init(**kwargs)
        self._node = _make_monitor(self.model, self.lock, self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - a shutdown race ends the thread quietly
            pass

    def render(self, size: tuple[int, int] | None = None) -> RenderableType:
        with self.lock:
            return render(self.model, size)

    def stop(self) -> None:
        # lazy: keeps ROS out of this module's import
        import rclpy
        self._executor.shutdown(timeout_sec=1.0)
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._context)
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def run_status(duration: float | None = None, once: bool = False, out: TextIO = sys.stdout,
               window_s: float = 10.0, settings: Sequence[Any] = (), namespace: str = '') -> int:
    """Watch the running graph and show the status screen.

    Args:
        duration: stop after this many seconds (None: until Ctrl-C). With once=True, how long
            to listen before printing (default 3 s).
        once: print one screen after listening instead of a live, refreshing screen.
        out: where the screen goes (a terminal gets colours and live refresh).
        window_s: the salience columns summarise this many recent seconds.
        settings: the DDS settings this process joined (sage_bringup.environment.Choice);
            the screen
            names the domain and where it came from.
        namespace: the graph's ROS namespace (`sage launch --namespace`; '' = none).

    Returns:
        0 when the graph was heard, 1 when nothing arrived on any SAGE topic.
    """
    domain = next((f'{c.value} ({c.source})' for c in settings if c.key == 'ROS_DOMAIN_ID'),
                  None)
    model = StatusModel(window_s=window_s, domain=domain)
    listener = StatusListener(model, namespace)
    listener.start()
    console = Console(file=out, width=None if _is_tty(out) else 140,
                      force_terminal=_is_tty(out) or None)

    def size() -> tuple[int, int] | None:
        """A terminal's current size, read for every frame (the full screen goes to files)."""
        return (console.width, console.height) if _is_tty(out) else None
    try:
        if once:
            time.sleep(3.0 if duration is None else duration)
            console.print(listener.render(size()))
        else:
            end = None if duration is None else time.monotonic() + duration
            with Live(listener.render(size()), console=console, refresh_per_second=2,
                      transient=False) as live:
                while end is None or time.monotonic() < end:
                    time.sleep(0.5)
                    live.update(listener.render(size()))
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
    return 0 if model.heard_anything else 1


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
