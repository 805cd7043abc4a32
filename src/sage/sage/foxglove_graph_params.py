"""The graph nodes' parameters for Foxglove's Parameters panel, through each node's own
parameter services (list_parameters, get_parameters, set_parameters).

A write goes to the node that owns the parameter, so its descriptor's range and its own
checks apply (a refused value comes back unchanged, and the reason is reported). Requests
arrive on the SDK's threads and wait here for the answers, which the node's executor thread
delivers; the service clients themselves are made on the executor thread (`refresh`).
"""
from __future__ import annotations

from array import array
from collections.abc import Callable
import threading
import time
from typing import Any

from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python

from sage.foxglove_core import coerce_like, param_key, split_param_key


def _plain(value: Any) -> Any:
    """A parameter value as Foxglove takes it (arrays as lists)."""
    if isinstance(value, array):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


class _Clients:
    def __init__(self, node: Node, fqn: str) -> None:
        self.list = node.create_client(ListParameters, f'{fqn}/list_parameters')
        self.get = node.create_client(GetParameters, f'{fqn}/get_parameters')
        self.set = node.create_client(SetParameters, f'{fqn}/set_parameters')

    def ready(self) -> bool:
        return bool(self.list.service_is_ready() and self.get.service_is_ready()
                    and self.set.service_is_ready())


class GraphParameters:
    """Foxglove's parameter store (sage.foxglove_server.ParameterStore) over the ROS graph."""

    def __init__(self, node: Node, timeout_s: float,
                 on_refused: Callable[[str], None]) -> None:
        self._node = node
        self.timeout_s = timeout_s
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._clients: dict[str, _Clients] = {}

    def refresh(self) -> None:
        """Service clients for every node now on the graph (call on the executor thread)."""
        found = {(ns.rstrip('/') + '/' + name).lstrip('/')
                 for name, ns in self._node.get_node_names_and_namespaces()}
        with self._lock:
            for name in sorted(found - set(self._clients)):
                self._clients[name] = _Clients(self._node, '/' + name)

    def nodes(self) -> dict[str, _Clients]:
        with self._lock:
            return {n: c for n, c in self._clients.items() if c.ready()}

    def _call(self, calls: list[tuple[Any, Any]]) -> list[Any]:
        """Send every request at once; each response, or None when it did not come in time."""
        done = threading.Semaphore(0)
        futures = []
        for client, request in calls:
            future = client.call_async(request)
            future.add_done_callback(lambda _f: done.release())
            futures.append(future)
        for _ in futures:
            if not done.acquire(timeout=self.timeout_s):
                break
        return [f.result() if f.done() and f.exception() is None else None for f in futures]

    def get(self, names: list[str]) -> list[tuple[str, Any]]:
        """Values of the named parameters ('/node.param'); every parameter for []."""
        nodes = self.nodes()
        deadline = time.monotonic() + self.timeout_s
        while not nodes and time.monotonic() < deadline:
            time.sleep(0.05)  # a viewer's first request: the clients are being made (refresh)
            nodes = self.nodes()
        wanted: dict[str, list[str]] = {}
        if names:
            for key in names:
                try:
                    node, name = split_param_key(key)
                except ValueError:
                    continue
                if node in nodes:
                    wanted.setdefault(node, []).append(name)
        else:
            order = sorted(nodes)
            listed = self._call([(nodes[n].list, ListParameters.Request()) for n in order])
            wanted = {n: list(r.result.names) for n, r in zip(order, listed) if r is not None}
        order = sorted(wanted)
        answers = self._call([(nodes[n].get, GetParameters.Request(names=wanted[n]))
                              for n in order])
        out = []
        for node, answer in zip(order, answers):
            if answer is None:
                continue
            for name, value in zip(wanted[node], answer.values):
                if value.type:  # 0: PARAMETER_NOT_SET
                    out.append((param_key(node, name), _plain(parameter_value_to_python(value))))
        return out

    def set(self, values: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Write each value to its node in the type of its current value; every written
        parameter's value afterwards (a refused one keeps its old value)."""
        current = dict(self.get([k for k, _ in values]))
        nodes = self.nodes()
        by_node: dict[str, list[Parameter[Any]]] = {}
        for key, value in values:
            if key not in current:
                self._on_refused(f'{key}: no such parameter on the graph')
                continue
            try:
                node, name = split_param_key(key)
                typed = coerce_like(current[key], value, key)
            except ValueError as err:
                self._on_refused(str(err))
                continue
            by_node.setdefault(node, []).append(Parameter(name, value=typed))
        order = sorted(n for n in by_node if n in nodes)
        answers = self._call([(nodes[n].set, SetParameters.Request(
            parameters=[p.to_parameter_msg() for p in by_node[n]])) for n in order])
        for node, answer in zip(order, answers):
            if answer is None:
                self._on_refused(f'/{node}: no answer to set_parameters')
                continue
            for param, result in zip(by_node[node], answer.results):
                if not result.successful:
                    self._on_refused(f'{param_key(node, param.name)}: {result.reason}')
        return self.get([k for k, _ in values])
