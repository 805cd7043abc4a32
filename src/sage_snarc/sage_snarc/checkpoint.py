"""Serialise a `SnarcCore.state_dict()` to bytes and back (npz; no pickle).

Arrays go into the npz under their path in the nested dict; everything else goes into one
JSON skeleton in which each array is replaced by {"__array__": "<path>"}.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sage_common.private_files import create_private, private_dir
from sage_snarc.errors import SnarcError

_META = '__meta__'


def dumps(state: dict[str, Any]) -> bytes:
    """Nested dict of JSON values and numpy arrays -> bytes."""
    arrays: dict[str, np.ndarray] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, np.ndarray):
            arrays[path] = obj
            return {'__array__': path}
        if isinstance(obj, dict):
            return {str(k): walk(v, f'{path}/{k}') for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [walk(v, f'{path}/{i}') for i, v in enumerate(obj)]
        if isinstance(obj, np.generic):
            return obj.item()
        return obj

    skeleton = walk(state, '')
    buf = io.BytesIO()
    meta = np.frombuffer(json.dumps(skeleton).encode(), dtype=np.uint8)
    np.savez(buf, **{_META: meta}, **arrays)
    return buf.getvalue()


def loads(data: bytes) -> dict[str, Any]:
    """Inverse of `dumps`.

    Raises:
        SnarcError: the bytes are not a SNARC checkpoint.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            skeleton = json.loads(bytes(npz[_META]).decode())
            arrays = {k: npz[k] for k in npz.files if k != _META}
    except (OSError, ValueError, KeyError) as err:
        raise SnarcError(f'not a SNARC checkpoint: {err}') from err

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            if set(obj) == {'__array__'}:
                return arrays[obj['__array__']]
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(skeleton)


def save(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temp file + rename)."""
    path = Path(path)
    private_dir(path.parent, fix_existing=False)  # a folder SAGE creates is 0700
    tmp = path.with_suffix(path.suffix + '.tmp')
    with os.fdopen(create_private(tmp), 'wb') as fh:  # 0600: learned statistics of the scene
        fh.write(dumps(state))
    tmp.replace(path)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save`."""
    return loads(Path(path).read_bytes())
