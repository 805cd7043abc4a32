"""Parameter specs: declared once, validated the same way at start, on --set and at runtime.

A node module lists its parameters as a tuple of ParamSpec. The rclpy shell declares them with
descriptors (`declare_params`), the launcher checks profile values and `--set` overrides against
the same specs before any process starts (`resolve`), and the set-parameters callback reuses
`check_value`. This module imports no rclpy so the launcher and cores can use it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
import difflib
import math
from typing import Any, Union

from sage_common.errors import ParamError

ParamValue = Union[bool, int, float, str, list[Any]]


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: its default, meaning and allowed values.

    Attributes:
        name: parameter name (dots allowed for groups, e.g. 'weights.surprise').
        default: default value; its Python type fixes the parameter type.
        description: one line shown by `ros2 param describe` and `sage launch --help-params`.
        min_value: inclusive lower bound for int/float parameters (None = unbounded).
        max_value: inclusive upper bound for int/float parameters (None = unbounded).
        choices: allowed values for string parameters (empty = any string).
        read_only: True when the value cannot change after start.
    """

    name: str
    default: ParamValue
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)
    read_only: bool = False

    @property
    def kind(self) -> type:
        """Python type of the parameter (bool before int: bool is an int subclass)."""
        return type(self.default)


def coerce(spec: ParamSpec, value: Any) -> ParamValue:
    """Convert a YAML or command-line value to the spec's type.

    Raises:
        ParamError: the value cannot be converted; the message names the parameter.
    """
    kind = spec.kind
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ('true', 'false', '1', '0'):
                return value.lower() in ('true', '1')
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
        if kind is list:
            if isinstance(value, str):
                value = [v for v in value.split(',') if v]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            return list(value)
    except (TypeError, ValueError) as err:
        raise ParamError(
            f"parameter '{spec.name}': cannot use {value!r} as {kind.__name__}") from err
    raise ParamError(f"parameter '{spec.name}': unsupported type {kind.__name__}")


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """Return an error message naming the parameter, or None when the value is allowed."""
    try:
        value = coerce(spec, value)
    except ParamError as err:
        return str(err)
    if isinstance(value, float) and not math.isfinite(value):
        return f"parameter '{spec.name}': {value} is not a finite number"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.min_value is not None and value < spec.min_value:
            return f"parameter '{spec.name}': {value} is below the minimum {spec.min_value}"
        if spec.max_value is not None and value > spec.max_value:
            return f"parameter '{spec.name}': {value} is above the maximum {spec.max_value}"
    if spec.choices and value not in spec.choices:
        return (f"parameter '{spec.name}': {value!r} is not one of "
                f"{', '.join(spec.choices)}")
    return None


Validator = Callable[[Mapping[str, ParamValue]], list[str]]


def resolve(specs: Iterable[ParamSpec], values: Mapping[str, Any],
            validator: Validator | None = None, node: str = '') -> dict[str, ParamValue]:
    """Merge values over the defaults, coerce and check every one.

    Args:
        specs: the node's parameter specs.
        values: values from a profile and overrides; unknown names are errors.
        validator: optional cross-field check returning error messages.
        node: node name used in error messages.

    Returns:
        A complete name -> value mapping.

    Raises:
        ParamError: listing every problem found.
    """
    by_name = {s.name: s for s in specs}
    where = f'{node}: ' if node else ''
    errors = [f"{where}unknown parameter '{k}'{_suggest(k, by_name)}"
              for k in values if k not in by_name]
    out: dict[str, ParamValue] = {}
    for name, spec in by_name.items():
        raw = values.get(name, spec.default)
        problem = check_value(spec, raw)
        if problem:
            errors.append(where + problem)
        else:
            out[name] = coerce(spec, raw)
    if not errors and validator is not None:
        errors.extend(where + e for e in validator(out))
    if errors:
        raise ParamError('; '.join(errors))
    return out


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ''


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Turn nested YAML mappings into dotted ROS parameter names."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat
