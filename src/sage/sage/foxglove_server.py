"""The Foxglove SDK side of the live view: its WebSocket server, channels and listener.

No rclpy here. The server speaks foxglove.websocket.v1 (the SDK's Rust implementation, on its
own threads); the live view's channels live in a Context of their own, so stopping the server
closes exactly them. The listener keeps which client subscribed to which channel (the node
subscribes to a graph topic only while a channel needs it) and answers Foxglove's parameter
requests through a `ParameterStore` (sage.foxglove_graph_params: the graph nodes' own
parameter services).
"""
from __future__ import annotations

from collections.abc import Callable
import threading
from typing import Any, Protocol

import foxglove
from foxglove.channels import (CompressedImageChannel, LogChannel, RawImageChannel,
                               SceneUpdateChannel)
from foxglove.websocket import Capability, ChannelView, Client

from sage.foxglove_core import ChannelSpec, Kind, channel_specs

_TYPED = {Kind.COMPRESSED_IMAGE: CompressedImageChannel, Kind.RAW_IMAGE: RawImageChannel,
          Kind.SCENE: SceneUpdateChannel, Kind.LOG: LogChannel}


class ParameterStore(Protocol):
    """Where Foxglove's parameter reads and writes go: (name, value) pairs, names in
    foxglove_bridge's '/node.parameter' form."""

    def get(self, names: list[str]) -> list[tuple[str, Any]]: ...

    def set(self, values: list[tuple[str, Any]]) -> list[tuple[str, Any]]: ...


def to_parameter(name: str, value: Any) -> foxglove.Parameter:
    """A Foxglove Parameter; floats keep their type on the wire (1.0 is not 1)."""
    if isinstance(value, float):
        return foxglove.Parameter(name, value=value, type=foxglove.ParameterType.Float64)
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return foxglove.Parameter(name, value=value, type=foxglove.ParameterType.Float64Array)
    return foxglove.Parameter(name, value=value)


class _Listener:
    """The server's callbacks (called on the SDK's threads)."""

    def __init__(self, params: ParameterStore | None, on_error: Callable[[str], None]) -> None:
        self.lock = threading.Lock()
        self.subscriptions: dict[int, set[str]] = {}
        self.param_names: set[str] = set()
        self._params = params
        self._on_error = on_error

    def on_subscribe(self, client: Client, channel: ChannelView) -> None:
        with self.lock:
            self.subscriptions.setdefault(client.id, set()).add(channel.topic)

    def on_unsubscribe(self, client: Client, channel: ChannelView) -> None:
        with self.lock:
            topics = self.subscriptions.get(client.id, set())
            topics.discard(channel.topic)
            if not topics:
                self.subscriptions.pop(client.id, None)

    def on_get_parameters(self, client: Client, param_names: list[str],
                          request_id: str | None = None) -> list[foxglove.Parameter]:
        if self._params is None:
            return []
        try:
            return [to_parameter(n, v) for n, v in self._params.get(list(param_names))]
        except Exception as err:  # noqa: BLE001 - an SDK thread must not see it; reported
            self._on_error(f'parameter read failed: {err}')
            return []

    def on_set_parameters(self, client: Client, parameters: list[foxglove.Parameter],
                          request_id: str | None = None) -> list[foxglove.Parameter]:
        if self._params is None:
            return []
        try:
            done = self._params.set([(p.name, p.get_value()) for p in parameters])
            return [to_parameter(n, v) for n, v in done]
        except Exception as err:  # noqa: BLE001 - an SDK thread must not see it; reported
            self._on_error(f'parameter write failed: {err}')
            return []

    def on_parameters_subscribe(self, param_names: list[str]) -> None:
        with self.lock:
            self.param_names.update(param_names)

    def on_parameters_unsubscribe(self, param_names: list[str]) -> None:
        with self.lock:
            self.param_names.difference_update(param_names)


class LiveServer:
    """A running WebSocket server with every channel of sage.foxglove_core advertised.

    Raises (at construction):
        RuntimeError: the server cannot listen (the port is taken, the address is not ours).
    """

    def __init__(self, host: str, port: int, backlog: int, params: ParameterStore | None,
                 on_error: Callable[[str], None], name: str = 'SAGE') -> None:
        self.context = foxglove.Context()
        self.specs: dict[str, ChannelSpec] = {s.topic: s for s in channel_specs()}
        self.channels: dict[str, Any] = {t: _channel(s, self.context)
                                         for t, s in self.specs.items()}
        self.listener = _Listener(params, on_error)
        self._stopped = False
        try:
            self.server = foxglove.start_server(
                name=name, host=host, port=port, capabilities=[Capability.Parameters],
                server_listener=self.listener, context=self.context,
                message_backlog_size=backlog)
        except Exception as err:
            for channel in self.channels.values():
                channel.close()
            raise RuntimeError(f'cannot serve on {host}:{port}: {err}') from err

    @property
    def port(self) -> int:
        return int(self.server.port)

    def subscribed(self) -> set[str]:
        """Channels at least one client subscribes to."""
        with self.listener.lock:
            return set().union(*self.listener.subscriptions.values())

    def clients(self) -> int:
        """Clients subscribed to at least one channel."""
        with self.listener.lock:
            return len(self.listener.subscriptions)

    def parameter_subscriptions(self) -> set[str]:
        with self.listener.lock:
            return set(self.listener.param_names)

    def log(self, topic: str, message: Any) -> None:
        """Send a message on a channel (a dict on a JSON channel, else its Foxglove schema)."""
        self.channels[topic].log(message)

    def publish_parameters(self, values: list[tuple[str, Any]]) -> None:
        self.server.publish_parameter_values([to_parameter(n, v) for n, v in values])

    def stop(self) -> None:
        """Stop serving and close the channels (a second call does nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self.server.stop()
        for channel in self.channels.values():
            channel.close()


def _channel(spec: ChannelSpec, context: foxglove.Context) -> Any:
    if spec.kind == Kind.JSON:
        return foxglove.Channel(spec.topic, schema=spec.schema, context=context)
    return _TYPED[spec.kind](spec.topic, context=context)
