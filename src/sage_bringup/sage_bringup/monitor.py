"""An rclpy node that watches the graph's outputs for `sage launch` and `sage status`."""
from __future__ import annotations

import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sage_interfaces.msg import Experience, MetabolicState, Salience

from sage_bringup.graph_stats import GraphStats
from sage_common.convert import salience_from_msg
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
from sage_common.vocabulary import Topic


class GraphMonitor(Node):
    """Subscribes to sage/salience, sage/memory/stored and sage/metabolic_state (in the
    graph's namespace: '' is the root, /sage/...)."""

    def __init__(self, stats: GraphStats, lock: threading.Lock,
                 context: rclpy.Context | None = None, namespace: str = '') -> None:
        super().__init__('sage_monitor', context=context, namespace=namespace)
        self.stats = stats
        self.lock = lock
        self.create_subscription(Salience, Topic.SALIENCE, self._on_salience, RELIABLE_QOS)
        self.create_subscription(Experience, Topic.MEMORY_STORED, self._on_stored,
                                 RELIABLE_QOS)
        self.create_subscription(MetabolicState, Topic.METABOLIC_STATE, self._on_state,
                                 LATCHED_QOS)

    def _on_salience(self, msg: Salience) -> None:
        with self.lock:
            self.stats.on_salience(salience_from_msg(msg))

    def _on_stored(self, msg: Experience) -> None:
        with self.lock:
            self.stats.on_stored(msg.modality)

    def _on_state(self, msg: MetabolicState) -> None:
        with self.lock:
            self.stats.on_state(msg.state, msg.reason)


class MonitorThread:
    """Runs a GraphMonitor in a background thread with its own context."""

    def __init__(self, namespace: str = '') -> None:
        self.namespace = namespace
        self.stats = GraphStats()
        self.lock = threading.Lock()
        self._context = rclpy.Context()
        self._thread: threading.Thread | None = None
        self._executor: SingleThreadedExecutor | None = None

    def start(self) -> None:
        kwargs = {'context': self._context}
        try:  # Humble and newer: leave SIGINT to the launcher
            # lazy: optional, rclpy before Humble has no SignalHandlerOptions
            from rclpy.signals import SignalHandlerOptions
            kwargs['signal_handler_options'] = SignalHandlerOptions.NO
        except ImportError:
            pass
        rclpy.init(**kwargs)
        self._node = GraphMonitor(self.stats, self.lock, context=self._context,
                                  namespace=self.namespace)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the thread quietly
            pass

    def snapshot_line(self) -> str:
        with self.lock:
            return self.stats.line()

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=self._context)
