"""`sage launch` under systemd: READY=1 once every node answers, WATCHDOG=1 while healthy.

A node answers when its /diagnostics status arrives; the graph is healthy while every node's
status is fresher than half of WatchdogSec. A hung node (deadlocked executor, SIGSTOP) goes
quiet, the pings stop, and systemd restarts the service after WatchdogSec. Outside a notify
service (no $NOTIFY_SOCKET) nothing here runs.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from sage_bringup.health_gate import HealthGate, node_of_status
from sage_bringup.sd_notify import Notifier
from sage_common.vocabulary import Topic

# A node counts as hung after half of WatchdogSec without a status: the other half leaves
# systemd's timer room for one more ping while a slow-but-alive node catches up.
STALE_FRACTION = 0.5
# Pings at a quarter of WatchdogSec (systemd suggests half): a late launcher tick under CPU
# load then still pings in time.
PING_FRACTION = 0.25
DIAGNOSTICS_DEPTH = 50  # every node publishes about once a second; a burst must not drop


class DiagnosticsListener(Node):
    """Records when each SAGE node's /diagnostics status arrives."""

    def __init__(self, on_node: Callable[[str], None], context: rclpy.Context) -> None:
        super().__init__('sage_service_watch', context=context)
        self._on_node = on_node
        self.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS, self._on_array,
                                 DIAGNOSTICS_DEPTH)

    def _on_array(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            node = node_of_status(status.name)
            if node is not None:
                self._on_node(node)


class ServiceWatch:
    """Feeds systemd from the launcher's loop (`tick`) with what a listener thread hears.

    Args:
        nodes: names of the nodes that must answer.
        notifier: the sd_notify client (enabled).
        log: one-line messages for the launcher's output (journald under systemd).
        clock: monotonic seconds.
    """

    def __init__(self, nodes: Iterable[str], notifier: Notifier,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.log = log
        self.clock = clock
        watchdog_s = notifier.watchdog_s
        self.ping_every_s = watchdog_s * PING_FRACTION if watchdog_s else None
        self.gate = HealthGate(frozenset(nodes),
                               watchdog_s * STALE_FRACTION if watchdog_s else float('inf'))
        self.is_ready = False
        self.pings = 0
        self._healthy = True
        self._last_ping = float('-inf')
        self._lock = threading.Lock()
        self._context = rclpy.Context()
        self._executor: SingleThreadedExecutor | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, nodes: Iterable[str],
                 log: Callable[[str], None] = print) -> ServiceWatch | None:
        """A watch when this process runs as a Type=notify service, else None."""
        notifier = Notifier()
        return cls(nodes, notifier, log) if notifier.enabled else None

    def _heard(self, node: str) -> None:
        with self._lock:
            self.gate.heard(node, self.clock())

    def start(self) -> None:
        """Listen to /diagnostics in a thread of its own (own context, no signal handlers)."""
        kwargs = {'context': self._context}
        try:  # leave SIGINT/SIGTERM to the launcher
            # lazy: optional, rclpy before Humble has no SignalHandlerOptions
            from rclpy.signals import SignalHandlerOptions
            kwargs['signal_handler_options'] = SignalHandlerOptions.NO
        except ImportError:  # rclpy before signal_handler_options (older than Humble)
            pass
        rclpy.init(**kwargs)
        node = DiagnosticsListener(self._heard, self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name='service-watch', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - a shutdown race ends the thread quietly
            pass

    def tick(self) -> None:
        """READY=1 when every node has answered; then WATCHDOG=1 while all are fresh."""
        now = self.clock()
        with self._lock:
            missing = self.gate.missing()
            stale = self.gate.stale(now)
        if not self.is_ready:
            if not missing:
                self.is_ready = True
                self.notifier.ready(f'{len(self.gate.expected)} nodes up')
                self.log(f'[sage] systemd: READY ({len(self.gate.expected)} nodes answered)')
            return
        if self.ping_every_s is None:
            return
        healthy = not stale
        if healthy != self._healthy:
            self._healthy = healthy
            text = ('healthy' if healthy else
                    f'no /diagnostics from {", ".join(stale)} for '
                    f'{self.gate.stale_after_s:.0f} s: watchdog pings held')
            self.notifier.status(text)
            self.log(f'[sage] systemd: {text}')
        if healthy and now - self._last_ping >= self.ping_every_s:
            self._last_ping = now
            if self.notifier.watchdog():
                self.pings += 1

    def stop(self, reason: str) -> None:
        self.notifier.stopping(f'stopping ({reason})')
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=self._context)
        self.notifier.close()
