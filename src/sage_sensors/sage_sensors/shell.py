"""What the three sensor node shells share: clock, logging, and the capture thread's life."""
from __future__ import annotations

from collections.abc import Callable, Mapping
import threading
from typing import Any

from rclpy.node import Node

from sage_common.health import Health, Level
from sage_common.ros import DiagnosticsPublisher

from sage_sensors.capture import CaptureRunner, Source
from sage_sensors.driver_topics import DriverFeed
from sage_sensors.pacing import ClockMap


def node_clock(node: Node) -> Callable[[], float]:
    """The node clock as a float-seconds function (what stamps are made of)."""
    clock = node.get_clock()
    return lambda: clock.now().nanoseconds * 1e-9


def level_logger(node: Node) -> Callable[[Level, str], None]:
    """log(level, message) onto the node's logger (OK -> info, WARN, ERROR)."""
    logger = node.get_logger()

    def log(level: Level, message: str) -> None:
        if level >= Level.ERROR:
            logger.error(message)
        elif level >= Level.WARN:
            logger.warning(message)
        else:
            logger.info(message)
    return log


# make_source(values, clock, stop, log) -> Source, as make_camera/make_microphone/make_imu
SourceFactory = Callable[..., Source]


class SensorNode(Node):
    """A node whose one source is read by a CaptureRunner thread.

    Subclasses declare their parameters into `self._cfg`, build their source and publishers,
    then call `_start_capture`. Diagnostics, the stopped-stream watch, the synthetic fallback
    and the capture thread's scheduling come from the shared source parameters.
    """

    def __init__(self, name: str, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.health = Health()
        self._stop = threading.Event()
        self._cmap = ClockMap(node_clock(self))
        self._cfg: Mapping[str, Any] = {}
        self._runner: CaptureRunner | None = None
        self._feed: DriverFeed | None = None
        self._driver_subs: list[Any] = []     # subscriptions to the robot's driver topics

    def _driver_feed(self) -> DriverFeed:
        """The watches of this node's driver topics (ros / audio_common backends)."""
        if self._feed is None:
            self._feed = DriverFeed.from_params(self.health, self._cfg)
        return self._feed

    def _start_capture(self, source: Source, publish: Callable[[Any], None],
                       make_source: SourceFactory) -> None:
        cfg = self._cfg
        self._diag = DiagnosticsPublisher(self, self.health, float(cfg['diagnostics_period_s']))
        self._watch = self.create_timer(1.0, self._check_stream)

        def fallback() -> Source:
            # the values of now: a rate changed at run time carries over to the fallback
            synthetic = dict(self._cfg, backend='synthetic')
            return make_source(synthetic, self._cmap, self._stop, self.get_logger().info)
        self._runner = CaptureRunner(source, publish, self.health, self._stop,
                                     level_logger(self),
                                     fallback=fallback if cfg['fallback'] == 'synthetic' else None,
                                     priority=int(cfg['capture_priority']))
        self._runner.start()

    def _check_stream(self) -> None:
        if self._feed is not None:
            self._feed.report()
        runner = self._runner
        if runner is not None and not runner.running and not self._stop.is_set():
            self.health.problem(Level.ERROR, f'{runner.source.name}: stream stopped')

    def close(self) -> None:
        """Stop the capture thread and release the device or file."""
        if self._runner is not None:
            self._runner.stop()
