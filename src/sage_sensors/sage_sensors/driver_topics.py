"""Subscribing to a robot driver's topic from a sensor node shell (rclpy).

- `driver_qos`: best effort and volatile, so it matches every publisher a driver may have
  (reliable or best effort, volatile or transient local: a best-effort reader is compatible
  with both reliabilities, a volatile one with both durabilities).
- `TopicTypeWatch`: a topic whose message type depends on the driver (Image or
  CompressedImage, the two audio_common families) is subscribed once the graph shows its
  type; until then the node keeps looking (and says so on /diagnostics).
- `DriverFeed`: one DriverWatch per driver topic, fed from the subscription callbacks and
  read on the node's diagnostics timer.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from sage_common.health import Health, Level

from sage_sensors.driver_watch import DriverWatch, Gap

#: How often the graph is looked at for a topic's type (s).
LOOK_PERIOD_S = 0.5


def driver_qos(depth: int) -> QoSProfile:
    """Best effort, volatile, keep last `depth`: matches reliable and best-effort drivers."""
    return QoSProfile(depth=max(1, int(depth)), reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)


def _resolved(node: Node, topic: str) -> str:
    """The topic's full name as the graph lists it (remappings applied where rclpy can)."""
    resolve = getattr(node, 'resolve_topic_name', None)   # not in every distro's rclpy
    if resolve is not None:
        return str(resolve(topic))
    if topic.startswith('/'):
        return topic
    return f"{node.get_namespace().rstrip('/')}/{topic.lstrip('~/')}"


class TopicTypeWatch:
    """Calls on_found(type name) once `topic` appears on the graph with one of `known` types.

    Args:
        node: the node whose graph view is used.
        topic: the topic name (absolute, or relative to the node's namespace).
        known: type names ('sensor_msgs/msg/Image', ...) the caller can subscribe with.
        on_found: called once, from the executor, with the type name found.
        health: told while the topic is missing or has a type nobody here reads.
    """

    def __init__(self, node: Node, topic: str, known: tuple[str, ...],
                 on_found: Callable[[str], None], health: Health) -> None:
        self._node = node
        self._topic = _resolved(node, topic)
        self._known = known
        self._on_found = on_found
        self._health = health
        self._found = False
        self._timer = node.create_timer(LOOK_PERIOD_S, self._look)

    def _look(self) -> None:
        if self._found:
            return
        types = dict(self._node.get_topic_names_and_types()).get(self._topic, [])
        usable = [t for t in types if t in self._known]
        if usable:
            self._found = True
            self._timer.cancel()
            self._health.condition('driver_type', Level.OK, '')
            self._health.values['driver_type'] = usable[0]
            self._on_found(usable[0])
        elif types:
            self._health.condition('driver_type', Level.ERROR,
                                   f"{self._topic} carries {', '.join(types)}; SAGE reads "
                                   f"{', '.join(self._known)} there")


class DriverFeed:
    """The watches of a node's driver topics, reported into its Health.

    Args:
        health: where counters, gaps and silence go.
        gap_factor, silent_s: DriverWatch thresholds (the driver.* parameters).
        monotonic: arrival clock (silence is judged on it, not on the driver's stamps).
    """

    def __init__(self, health: Health, gap_factor: float, silent_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._health = health
        self._gap_factor = gap_factor
        self._silent_s = silent_s
        self._mono = monotonic
        self.watches: dict[str, DriverWatch] = {}

    @classmethod
    def from_params(cls, health: Health, values: Mapping[str, Any]) -> DriverFeed:
        """A feed with the node's driver.gap_factor and driver.silent_s."""
        return cls(health, float(values['driver.gap_factor']), float(values['driver.silent_s']))

    def watch(self, topic: str) -> DriverWatch:
        """Start watching a topic (silence counts from now)."""
        watch = DriverWatch(topic, self._gap_factor, self._silent_s)
        watch.start(self._mono())
        self.watches[topic] = watch
        return watch

    def message(self, topic: str, stamp: float) -> None:
        """One message on topic stamped `stamp` by the driver (subscription callback)."""
        watch = self.watches.get(topic) or self.watch(topic)
        gap: Gap | None = watch.message(stamp, self._mono())
        if gap is not None:
            self._health.problem(Level.WARN, f'gap in {topic}: {gap.interval_s * 1e3:.0f} ms '
                                 f'between stamps, {gap.period_s * 1e3:.1f} ms expected '
                                 f'(about {gap.missing} missing)')

    def report(self) -> None:
        """Counters and silence into Health (the node's 1 s timer)."""
        now = self._mono()
        for i, (topic, watch) in enumerate(self.watches.items()):
            prefix = '' if i == 0 else f'{topic}:'
            for key, value in watch.values().items():
                self._health.values[prefix + key] = value
            silence = watch.silence(now)
            # a driver that went quiet is a dead modality (ERROR); one never heard may not
            # have started yet (WARN)
            level = Level.ERROR if silence and watch.messages else Level.WARN
            self._health.condition(f'silent:{topic}', level, silence)
