"""The pure part of `sage param` and `sage topic`: parameter values typed from the command line,
shown back, node names as the graph shows them, and the QoS that hears a topic's publishers.

No rclpy here: parameter types are rcl_interfaces/ParameterType's numbers (named below), and
publishers are described by two flags each, so all of it is unit-tested without a graph.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

# rcl_interfaces/msg/ParameterType constants (stable since ROS 2's first release).
NOT_SET, BOOL, INTEGER, DOUBLE, STRING = 0, 1, 2, 3, 4
BYTE_ARRAY, BOOL_ARRAY, INTEGER_ARRAY, DOUBLE_ARRAY, STRING_ARRAY = 5, 6, 7, 8, 9
TYPE_NAMES = {NOT_SET: 'not set', BOOL: 'bool', INTEGER: 'integer', DOUBLE: 'double',
              STRING: 'string', BYTE_ARRAY: 'byte array', BOOL_ARRAY: 'bool array',
              INTEGER_ARRAY: 'integer array', DOUBLE_ARRAY: 'double array',
              STRING_ARRAY: 'string array'}
_TRUE = ('true', 'yes', 'on', '1')
_FALSE = ('false', 'no', 'off', '0')


class ValueParseError(ValueError):
    """A command-line value that does not fit the parameter's declared type."""


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueParseError(f"'{text}' is not a bool (true/false)")


def _int(text: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise ValueParseError(f"'{text}' is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueParseError(f"'{text}' is not a number") from None


def _items(text: str) -> list[str]:
    """'[1, 2, 3]' or '1,2,3' -> ['1', '2', '3'] (YAML flow lists, so strings may be quoted)."""
    try:
        loaded = yaml.safe_load(text if text.strip().startswith('[') else f'[{text}]')
    except yaml.YAMLError as err:
        raise ValueParseError(f"'{text}' is not a list: {err}") from None
    if not isinstance(loaded, list):
        raise ValueParseError(f"'{text}' is not a list")
    return ['' if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for v in loaded]


def parse_value(type_code: int, text: str) -> Any:
    """The command-line text as a value of the parameter's declared type.

    Raises:
        ValueParseError: the text does not fit the type (or the parameter has none).
    """
    if type_code == BOOL:
        return _bool(text)
    if type_code == INTEGER:
        return _int(text)
    if type_code == DOUBLE:
        return _float(text)
    if type_code == STRING:
        return text
    if type_code == BOOL_ARRAY:
        return [_bool(v) for v in _items(text)]
    if type_code in (INTEGER_ARRAY, BYTE_ARRAY):
        return [_int(v) for v in _items(text)]
    if type_code == DOUBLE_ARRAY:
        return [_float(v) for v in _items(text)]
    if type_code == STRING_ARRAY:
        return _items(text)
    raise ValueParseError(f'the parameter has no value of a known type '
                          f'({TYPE_NAMES.get(type_code, type_code)})')


def format_value(value: Any) -> str:
    """A parameter value as one line of YAML (what `param get` prints and `param set` takes)."""
    if isinstance(value, (bytes, bytearray)):
        value = list(value)
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix('\n...').removesuffix('...').strip()


def dump_yaml(full_name: str, values: dict[str, Any]) -> str:
    """A node's parameters as a ROS 2 parameter file (loadable with --params-file)."""
    nested: dict[str, Any] = {}
    for name in sorted(values):
        value = values[name]
        parts = name.split('.')
        level = nested
        for part in parts[:-1]:
            child = level.setdefault(part, {})
            if not isinstance(child, dict):  # 'a' and 'a.b' both set: keep the dotted name
                level = nested
                parts = [name]
                break
            level = child
        level[parts[-1]] = list(value) if isinstance(value, (tuple, bytes)) else value
    doc = {full_name: {'ros__parameters': nested}}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


@dataclass(frozen=True)
class NodeName:
    """A node as the graph lists it."""

    name: str
    namespace: str

    @property
    def full(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


class NodeNameError(LookupError):
    """No node, or more than one (ambiguous), matches what the user typed."""

    def __init__(self, message: str, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


def resolve_node(typed: str, nodes: Iterable[tuple[str, str]]) -> NodeName:
    """The graph's node meant by `typed`: a full name (/ns/camera) must match exactly, a bare
    name (camera) matches that name in any namespace when only one node has it.

    Raises:
        NodeNameError: nothing matches, or a bare name is ambiguous.
    """
    known = sorted({NodeName(n, ns or '/') for n, ns in nodes}, key=lambda n: n.full)
    if typed.startswith('/'):
        hits = [n for n in known if n.full == typed.rstrip('/')]
    else:
        hits = [n for n in known if n.name == typed or n.full.lstrip('/') == typed]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise NodeNameError(f"'{typed}' names {len(hits)} nodes: "
                            f"{', '.join(n.full for n in hits)}; give the full name",
                            ambiguous=True)
    shown = ', '.join(n.full for n in known) or 'none'
    raise NodeNameError(f"no node '{typed}' in the graph (nodes seen: {shown})")


@dataclass(frozen=True)
class PublisherQos:
    """What matters of one publisher's QoS for a subscriber to hear it."""

    best_effort: bool
    transient_local: bool


def subscriber_qos(publishers: Sequence[PublisherQos]) -> tuple[bool, bool]:
    """(reliable, transient_local) for a subscriber that hears every publisher.

    A reliable reader does not match a best-effort writer (sensor streams), so one best-effort
    publisher makes the reader best effort; a transient-local reader does not match a volatile
    writer, so it asks for the latched history only when every publisher keeps one.
    """
    reliable = not any(p.best_effort for p in publishers)
    latched = bool(publishers) and all(p.transient_local for p in publishers)
    return reliable, latched
