"""What `sage topic echo` prints: a ROS message as plain data, big arrays summarised.

Pure Python (no rclpy): a message is anything whose class has `get_fields_and_field_types()`
(every rosidl-generated Python message), so the tests feed it real messages without a graph.
"""
from __future__ import annotations

import array
import importlib
import json
import math
from typing import Any

import yaml

# Sequences longer than this are shown as their length, element type and first items.
DEFAULT_ARRAY_ITEMS = 16
# float32 fields are shown with the digits a float32 holds (0.3, not 0.30000001192092896).
FLOAT32_DIGITS = 7


class MessageTypeError(ValueError):
    """A type name that is not 'package/msg/Type', or whose module cannot be imported."""


def message_class(type_name: str) -> Any:
    """The Python class of a graph type name such as 'sage_interfaces/msg/Salience'.

    rosidl_runtime_py (which does the same) is not in the PyPI wheels: importlib of the
    generated module is all it takes.

    Raises:
        MessageTypeError: the name is malformed or its package is not installed here.
    """
    parts = type_name.split('/')
    if len(parts) != 3 or not all(parts):
        raise MessageTypeError(f"'{type_name}' is not a type name (package/msg/Type)")
    package, kind, name = parts
    try:
        module = importlib.import_module(f'{package}.{kind}')
        cls = getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise MessageTypeError(f"type {type_name} is not installed here ({err}); "
                               f'install the package that defines it') from err
    return cls


def is_message(value: Any) -> bool:
    return callable(getattr(type(value), 'get_fields_and_field_types', None))


def _element_type(field_type: str) -> str:
    """'sequence<uint8>' -> 'uint8', 'double[9]' -> 'double', 'sequence<float, 5>' -> 'float'."""
    if field_type.startswith('sequence<'):
        return field_type[len('sequence<'):].rstrip('>').split(',')[0].strip()
    return field_type.split('[')[0]


def _scalar(value: Any, field_type: str) -> Any:
    """A scalar as JSON/YAML-friendly Python (numpy scalars unwrapped, float32 shortened)."""
    if is_message(value):
        return message_data(value)
    if isinstance(value, (bytes, bytearray)):  # byte/char fields come as one-byte bytes
        return value[0] if len(value) == 1 else list(value)
    item = getattr(value, 'item', None)
    if callable(item):  # a numpy scalar
        value = item()
    if isinstance(value, float) and field_type == 'float' and math.isfinite(value):
        return float(f'{value:.{FLOAT32_DIGITS}g}')
    return value


def _sequence(values: Any, field_type: str, max_items: int) -> Any:
    element = _element_type(field_type)
    items = list(values) if not isinstance(values, list) else values
    if max_items and len(items) > max_items:
        head = ', '.join(str(_scalar(v, element)) for v in items[:min(4, max_items)])
        return f'<{len(items)} x {element}: {head}, ...>'
    return [_scalar(v, element) for v in items]


def message_data(msg: Any, max_items: int = DEFAULT_ARRAY_ITEMS) -> dict[str, Any]:
    """The message as a dict of plain values (field order kept); sequences of more than
    max_items elements become one summary string (0 = never summarise)."""
    out: dict[str, Any] = {}
    for name, field_type in type(msg).get_fields_and_field_types().items():
        value = getattr(msg, name)
        if is_message(value):
            out[name] = message_data(value, max_items)
        elif isinstance(value, (list, tuple, array.array, bytes, bytearray)) or \
                hasattr(value, 'shape'):
            out[name] = _sequence(value, field_type, max_items)
        else:
            out[name] = _scalar(value, field_type)
    return out


def render_yaml(data: dict[str, Any]) -> str:
    """One message as a YAML document followed by '---' (the shape `ros2 topic echo` prints)."""
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=1000)
    return text + '---\n'


def render_json(data: dict[str, Any]) -> str:
    """One message as one JSON line."""
    return json.dumps(data, ensure_ascii=False) + '\n'
