"""Thin rclpy helpers shared by every node shell: parameters, diagnostics, QoS, main(), and
the event-driven wait of tools and tests (spin_until)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (HistoryPolicy, QoSProfile, ReliabilityPolicy, DurabilityPolicy,
                       qos_profile_sensor_data)

from sage_common.errors import ParamError, SageError
from sage_common.health import Health
from sage_common.params import ParamSpec, ParamValue, Validator, check_value, coerce
from sage_common.stamps import to_sec
from sage_common.vocabulary import Topic

# Sensor streams: best effort, shallow queue (a reliable publisher pushed flat out raises).
SENSOR_QOS = qos_profile_sensor_data


def sensor_qos(depth: int) -> QoSProfile:
    """SENSOR_QOS with a deeper queue, for a reader that must not lose samples to a stall.

    A best-effort reader keeps only `depth` samples between two takes: at 200 Hz the default
    5 is 25 ms, shorter than a Python process waits for a core when the encoders are busy.
    """
    return QoSProfile(depth=max(1, int(depth)), reliability=SENSOR_QOS.reliability,
                      durability=SENSOR_QOS.durability, history=HistoryPolicy.KEEP_LAST)


# Control and results: reliable, a little history for late joiners within a burst.
RELIABLE_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST)
# Latched state (metabolic state): the last value reaches nodes that start later.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         history=HistoryPolicy.KEEP_LAST)


# Nodes send their learned state to the memory node as std_msgs/String JSON
# {"key": name, "state": {...}}; it stores it and republishes every key, latched, as
# {"device_id": ..., "states": {key: state}}.
CHECKPOINT_TOPIC = Topic.MEMORY_CHECKPOINT
MEMORY_STATE_TOPIC = Topic.MEMORY_STATE


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    desc = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.kind is float and (spec.min_value is not None or spec.max_value is not None):
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min_value if spec.min_value is not None else -1e300),
            to_value=float(spec.max_value if spec.max_value is not None else 1e300))]
    elif spec.kind is int and (spec.min_value is not None or spec.max_value is not None):
        desc.integer_range = [IntegerRange(
            from_value=int(spec.min_value if spec.min_value is not None else -2**62),
            to_value=int(spec.max_value if spec.max_value is not None else 2**62), step=0)]
    return desc


def declare_params(node: Node, specs: Iterable[ParamSpec],
                   validator: Validator | None = None,
                   on_change: Callable[[dict[str, ParamValue]], None] | None = None,
                   ) -> dict[str, ParamValue]:
    """Declare every spec with its descriptor, check the values, and guard later changes.

    Start-up values and runtime `ros2 param set` go through the same `check_value` and
    cross-field `validator`. After an accepted change, `on_change` gets the full new values.

    Raises:
        ParamError: a start-up value is invalid (the shell lets it end the process).
    """
    specs = tuple(specs)
    by_name = {s.name: s for s in specs}
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as err:
            raise ParamError(f"parameter '{spec.name}': {err}") from err
    values: dict[str, ParamValue] = {}
    errors = []
    for spec in specs:
        raw = node.get_parameter(spec.name).value
        problem = check_value(spec, raw)
        if problem:
            errors.append(problem)
        else:
            values[spec.name] = coerce(spec, raw)
    if not errors and validator is not None:
        errors.extend(validator(values))
    if errors:
        raise ParamError('; '.join(errors))
    current = dict(values)

    def _check(params: list[Parameter[Any]]) -> SetParametersResult:
        proposed = dict(current)
        for p in params:
            spec = by_name.get(p.name)
            if spec is None:
                continue
            problem = check_value(spec, p.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            proposed[p.name] = coerce(spec, p.value)
        if validator is not None:
            problems = validator(proposed)
            if problems:
                return SetParametersResult(successful=False, reason='; '.join(problems))
        current.update(proposed)
        if on_change is not None:
            on_change(dict(current))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(_check)
    return values


class DiagnosticsPublisher:
    """Publishes a node's Health on /diagnostics at a fixed period."""

    def __init__(self, node: Node, health: Health, period_s: float = 1.0,
                 hardware_id: str = '') -> None:
        self._node = node
        self._health = health
        self._hardware_id = hardware_id or node.get_name()
        self._pub = node.create_publisher(DiagnosticArray, Topic.DIAGNOSTICS, 10)
        self._timer = node.create_timer(period_s, self.publish)

    def publish(self) -> None:
        snap = self._health.snapshot()
        status = DiagnosticStatus(
            level=bytes([int(snap.level)]), name=f'sage: {self._node.get_name()}',
            message=snap.message, hardware_id=self._hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in snap.values.items()])
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [status]
        self._pub.publish(msg)


def stamp_sec(msg: Any) -> float:
    """Header stamp of a message as float seconds."""
    return to_sec(msg.header.stamp)


def run(node_factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """The one main() shape of every SAGE executable (works on Humble and Jazzy).

    A domain error while constructing the node (bad parameters, a missing file) is printed
    as one clear line and ends the process with exit code 2, so the launcher can tell a
    configuration error (do not respawn) from a crash (respawn).
    """
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    code = 0
    try:
        node = node_factory()
        rclpy.spin(node)
    except SageError as err:
        print(f'ERROR: {err}', file=sys.stderr, flush=True)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # A signal-triggered shutdown can invalidate the context while spin is still
        # returning; that is a clean stop, anything else is a real error.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            close_node(node)
        rclpy.try_shutdown()
    return code


def close_node(node: Any) -> None:
    """Release what a node holds (its `close`, when it has one), then destroy it."""
    close = getattr(node, 'close', None)
    if callable(close):
        close()
    node.destroy_node()


def spin_until(executor: Any, cond: Callable[[], Any], timeout: float,
               step_s: float = 0.05) -> bool:
    """Spin until cond() is true (checked after every callback batch) or timeout seconds pass.

    Returns whether cond() came true: callers assert on it with their own message.
    """
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        executor.spin_once(timeout_sec=step_s)
