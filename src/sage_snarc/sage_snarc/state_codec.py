"""A checkpoint derived from a dataclass's fields (no hand-kept list of what is saved).

`encode` turns a state dataclass into nested dicts of JSON values and numpy arrays, field by
field: a component with its own `state_dict` (RobustStats, predictors, traces, windows) gives
that, arrays are copied, sets become sorted lists, dicts are encoded per value. `restore`
reads such a dict back into an existing instance: components load in place, plain fields are
converted by their annotated type, and a field missing from the dict keeps its value (a
checkpoint from before the field). Fields marked `transient()` are not saved.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field, fields, is_dataclass
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

import numpy as np

TRANSIENT = 'transient'

# Builds the element of a dict field for a key (a modality's state, a memory index).
Maker = Callable[[str, Any], Any]


def transient(**kwargs: Any) -> Any:
    """A dataclass field that is not part of the checkpoint (configuration, diagnostics)."""
    return field(metadata={TRANSIENT: True}, **kwargs)


def saved_fields(obj: Any) -> list[str]:
    """Names of the fields `encode` saves."""
    return [f.name for f in fields(obj) if not f.metadata.get(TRANSIENT)]


def encode(value: Any) -> Any:
    """A state value as nested dicts/lists of numbers, strings and numpy arrays."""
    if hasattr(value, 'state_dict'):
        return value.state_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {name: encode(getattr(value, name)) for name in saved_fields(value)}
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [list(k) if isinstance(k, tuple) else k for k in sorted(value)]
    return value


def restore(obj: Any, state: Mapping[str, Any],
            makers: Mapping[str, Maker] | None = None) -> None:
    """Load `encode(obj)`'s output back into the dataclass instance `obj`.

    Args:
        obj: a state dataclass, already built from the configuration.
        state: the encoded fields.
        makers: per dict field, how to build the element for a key from its encoded state
            (it loads the state too); such fields are replaced wholesale.

    Raises:
        KeyError, ValueError, TypeError: the state does not fit the fields.
    """
    hints = get_type_hints(type(obj))
    makers = makers or {}
    for name in saved_fields(obj):
        if name not in state:
            continue  # from before the field: its fresh value stays
        data = state[name]
        if name in makers:
            setattr(obj, name, {str(k): makers[name](str(k), v) for k, v in data.items()})
            continue
        current = getattr(obj, name)
        if hasattr(current, 'load_state_dict'):
            current.load_state_dict(data)
        elif is_dataclass(current):
            restore(current, data)
        else:
            setattr(obj, name, decode(hints[name], data))


def decode(kind: Any, data: Any) -> Any:
    """An encoded plain value back as its annotated type."""
    if data is None:
        return None
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):  # X | None
        return decode(next(a for a in get_args(kind) if a is not type(None)), data)
    if kind is np.ndarray:
        return np.asarray(data, np.float64).copy()
    if origin is set:
        return {tuple(str(x) for x in k) for k in data}
    if kind in (float, int, bool, str):
        return kind(data)
    raise TypeError(f'no checkpoint conversion for {kind!r}')
