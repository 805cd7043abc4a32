"""The rclpy side of `sage topic`, `sage param`, `sage say` and `sage reward`: one short-lived
node that looks at the graph, listens, calls parameter services and publishes.

Formatting and value parsing live in sage.inspect_messages / sage.inspect_values (pure); this
module only talks DDS. The node joins whatever domain the process environment names (the verbs
set it by the domain rule first, see sage.cli_args.graph_settings).
"""
from __future__ import annotations

from collections.abc import Callable
import os
import time
from typing import Any

import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters

from sage.inspect_values import NodeName, NodeNameError, PublisherQos, resolve_node, \
    subscriber_qos
from sage_common.errors import SageError
from sage_common.ros import spin_until

# How long a graph must stay unchanged before `topic list` trusts it has seen every topic.
SETTLE_S = 1.0
# How long a parameter service may take to answer.
SERVICE_TIMEOUT_S = 5.0
# The queue of an echo/hz subscription (a burst after a stall is not lost).
LISTEN_DEPTH = 100

_VALUE_FIELDS = {
    ParameterType.PARAMETER_BOOL: 'bool_value',
    ParameterType.PARAMETER_INTEGER: 'integer_value',
    ParameterType.PARAMETER_DOUBLE: 'double_value',
    ParameterType.PARAMETER_STRING: 'string_value',
    ParameterType.PARAMETER_BYTE_ARRAY: 'byte_array_value',
    ParameterType.PARAMETER_BOOL_ARRAY: 'bool_array_value',
    ParameterType.PARAMETER_INTEGER_ARRAY: 'integer_array_value',
    ParameterType.PARAMETER_DOUBLE_ARRAY: 'double_array_value',
    ParameterType.PARAMETER_STRING_ARRAY: 'string_array_value',
}


class InspectError(SageError):
    """The graph does not have what the command asked for (a topic, node or parameter)."""


def value_from_msg(msg: ParameterValue) -> Any:
    """A ParameterValue as Python (None when not set)."""
    field = _VALUE_FIELDS.get(msg.type)
    if field is None:
        return None
    value = getattr(msg, field)
    if msg.type == ParameterType.PARAMETER_BYTE_ARRAY:
        return [b[0] if isinstance(b, (bytes, bytearray)) else int(b) for b in value]
    if msg.type in (ParameterType.PARAMETER_BOOL_ARRAY, ParameterType.PARAMETER_INTEGER_ARRAY,
                    ParameterType.PARAMETER_DOUBLE_ARRAY, ParameterType.PARAMETER_STRING_ARRAY):
        return [v.item() if hasattr(v, 'item') else v for v in value]
    return value


def value_to_msg(type_code: int, value: Any) -> ParameterValue:
    msg = ParameterValue(type=type_code)
    field = _VALUE_FIELDS[type_code]
    if type_code == ParameterType.PARAMETER_BYTE_ARRAY:
        value = [bytes([int(v)]) for v in value]
    setattr(msg, field, value)
    return msg


class GraphClient:
    """One node in its own context, spun by the calling thread; close() when done.

    Ctrl-C reaches the caller as KeyboardInterrupt (rclpy's own handler is not installed), so
    a listening command stops where it is and still prints its last line.
    """

    def __init__(self, role: str, namespace: str = '') -> None:
        self.context = rclpy.Context()
        kwargs: dict[str, Any] = {'context': self.context}
        try:
            # lazy: optional, rclpy before Humble has no SignalHandlerOptions
            from rclpy.signals import SignalHandlerOptions
            kwargs['signal_handler_options'] = SignalHandlerOptions.NO
        except ImportError:
            pass
        rclpy.init(**kwargs)
        # In a namespace, SAGE's relative topic names resolve as the graph's own nodes' do.
        self.node = rclpy.create_node(f'sage_{role}_{os.getpid()}', context=self.context,
                                      namespace=namespace or None,
                                      start_parameter_services=False)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spin_until(self, cond: Callable[[], Any], timeout: float) -> bool:
        return spin_until(self.executor, cond, timeout)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.1, max(0.0, end - time.monotonic())))

    # --- topics ---------------------------------------------------------------------------

    def topics(self, timeout: float) -> list[tuple[str, list[str]]]:
        """(name, types) of every topic another node publishes or subscribes to, once
        discovery has settled: some seen, and no change for SETTLE_S (or timeout passed)."""
        seen: list[Any] = [None, time.monotonic()]

        def foreign() -> list[tuple[str, list[str]]]:
            return sorted((n, list(t)) for n, t in self.node.get_topic_names_and_types()
                          if any(self.endpoint_counts(n)))

        def settled() -> bool:
            now = foreign()
            if now != seen[0]:
                seen[0], seen[1] = now, time.monotonic()
            return bool(now) and time.monotonic() - seen[1] >= SETTLE_S
        self.spin_until(settled, timeout)
        return foreign()

    def endpoint_counts(self, topic: str) -> tuple[int, int]:
        """(publishers, subscribers) of a topic, this command's own node left out."""
        me = self.node.get_name()
        pubs = [i for i in self.node.get_publishers_info_by_topic(topic) if i.node_name != me]
        subs = [i for i in self.node.get_subscriptions_info_by_topic(topic)
                if i.node_name != me]
        return len(pubs), len(subs)

    def topic_type(self, topic: str, timeout: float) -> str:
        """The type of a topic that has a publisher, waiting up to timeout for one.

        Raises:
            InspectError: no publisher appeared, or the topic has more than one type.
        """
        def published() -> bool:
            return bool(self.node.get_publishers_info_by_topic(topic))
        if not self.spin_until(published, timeout):
            raise InspectError(f'no publisher on {topic} (waited {timeout:g} s): is the graph '
                               f'running on this domain, and is the name right? '
                               f'(`sage topic list`)')
        types = sorted({i.topic_type for i in self.node.get_publishers_info_by_topic(topic)})
        if len(types) != 1:
            raise InspectError(f'{topic} is published with {len(types)} types: '
                               f'{", ".join(types)}')
        return types[0]

    def listen_qos(self, topic: str) -> QoSProfile:
        """A QoS that hears every current publisher of the topic (best effort for sensor
        streams, transient local for latched state)."""
        infos = self.node.get_publishers_info_by_topic(topic)
        reliable, latched = subscriber_qos([PublisherQos(
            best_effort=i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT,
            transient_local=i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL)
            for i in infos])
        return QoSProfile(
            depth=LISTEN_DEPTH, history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def subscribe(self, msg_class: Any, topic: str, callback: Callable[[Any], None],
                  raw: bool = False) -> Any:
        return self.node.create_subscription(msg_class, topic, callback,
                                             self.listen_qos(topic), raw=raw)

    def publish_once(self, msg_class: Any, topic: str, fill: Callable[[Any, Any], None],
                     qos: QoSProfile, timeout: float) -> Any:
        """Publish one message once a subscriber listens, stamped now; wait for its delivery.

        fill(msg, stamp) sets the fields. Returns the message sent.

        Raises:
            InspectError: nothing subscribed within timeout (the message would be lost).
        """
        pub = self.node.create_publisher(msg_class, topic, qos)
        if not self.spin_until(lambda: pub.get_subscription_count() > 0, timeout):
            raise InspectError(f'nothing subscribes to {pub.topic_name} (waited {timeout:g} s): '
                               f'is the graph running on this domain?')
        # Every subscriber, not the first one matched (a reward goes to SNARC and the
        # orchestrator): discovery is done once the count holds for SETTLE_S / 2.
        counts = [pub.get_subscription_count(), time.monotonic()]

        def settled() -> bool:
            if pub.get_subscription_count() != counts[0]:
                counts[:] = [pub.get_subscription_count(), time.monotonic()]
            return time.monotonic() - counts[1] >= SETTLE_S / 2
        self.spin_until(settled, timeout)
        msg = msg_class()
        fill(msg, self.node.get_clock().now().to_msg())
        pub.publish(msg)
        if not pub.wait_for_all_acked(Duration(seconds=timeout)):
            raise InspectError(f'{pub.topic_name}: the subscribers did not acknowledge the '
                               f'message within {timeout:g} s')
        return msg

    # --- parameters -----------------------------------------------------------------------

    def find_node(self, typed: str, timeout: float) -> NodeName:
        """The graph's node for what the user typed, waiting up to timeout for it to appear.

        Raises:
            InspectError: no such node (the nodes seen are named), or the name is ambiguous.
        """
        found: list[NodeName] = []
        error: list[str] = ['']

        def appeared() -> bool:
            try:
                found.append(resolve_node(typed, self.node.get_node_names_and_namespaces()))
                return True
            except NodeNameError as err:
                error[0] = str(err)
                return err.ambiguous  # waiting does not help
        if not self.spin_until(appeared, timeout) or not found:
            raise InspectError(error[0] + ('' if found else f' (waited {timeout:g} s)'))
        return found[0]

    def _call(self, node: NodeName, srv: Any, suffix: str, request: Any) -> Any:
        client = self.node.create_client(srv, f'{node.full}/{suffix}')
        try:
            if not self.spin_until(client.service_is_ready, SERVICE_TIMEOUT_S):
                raise InspectError(f'{node.full} offers no {suffix} service')
            future = client.call_async(request)
            if not self.spin_until(future.done, SERVICE_TIMEOUT_S) or future.result() is None:
                raise InspectError(f'{node.full}/{suffix} did not answer within '
                                   f'{SERVICE_TIMEOUT_S:g} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def list_parameters(self, node: NodeName) -> list[str]:
        resp = self._call(node, ListParameters, 'list_parameters', ListParameters.Request())
        return sorted(resp.result.names)

    def get_parameters(self, node: NodeName, names: list[str]) -> dict[str, ParameterValue]:
        """name -> ParameterValue message (type NOT_SET for a parameter the node lacks)."""
        resp = self._call(node, GetParameters, 'get_parameters',
                          GetParameters.Request(names=names))
        if len(resp.values) != len(names):  # rclpy answers nothing for an undeclared name
            return self._one_by_one(node, names)
        return dict(zip(names, resp.values))

    def _one_by_one(self, node: NodeName, names: list[str]) -> dict[str, ParameterValue]:
        out: dict[str, ParameterValue] = {}
        for name in names:
            resp = self._call(node, GetParameters, 'get_parameters',
                              GetParameters.Request(names=[name]))
            out[name] = resp.values[0] if resp.values else ParameterValue()
        return out

    def set_parameter(self, node: NodeName, name: str, value: ParameterValue) -> tuple[bool, str]:
        """(accepted, the node's reason when it refused)."""
        resp = self._call(node, SetParameters, 'set_parameters', SetParameters.Request(
            parameters=[Parameter(name=name, value=value)]))
        result = resp.results[0]
        return bool(result.successful), str(result.reason)
