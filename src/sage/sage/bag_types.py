"""Message types for bags: a rosbags typestore that knows SAGE's custom messages (no rclpy).

rosbags ships the standard ROS 2 message definitions; SAGE's own types come from the
sage_interfaces .msg files (the source checkout, or the installed share/ folder), so bags carry
the same definitions and type hashes (RIHS01) as `ros2 bag record` would write.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from rosbags.typesys import get_types_from_msg
from rosbags.typesys.store import Typestore

from sage_common.errors import SageError
from sage_common.typestore import msg_folders, sage_typestore

__all__ = ['BagError', 'ensure_type', 'message_class', 'msg_file', 'sage_typestore']


class BagError(SageError):
    """A bag cannot be written, read or played (the message says which and why)."""


def msg_file(msgtype: str) -> Path | None:
    """The .msg file defining 'pkg/msg/Name', from the source checkout or a share/ folder."""
    pkg, _, name = msgtype.partition('/msg/')
    if not name:
        return None
    candidates = [folder / f'{name}.msg' for folder in msg_folders(pkg)]
    return next((c for c in candidates if c.is_file()), None)


def _nested_names(fielddef: Any) -> Iterable[str]:
    """Names of message types a rosbags field definition refers to."""
    kind, detail = fielddef
    if getattr(kind, 'name', '') == 'NAME':
        yield detail
    elif getattr(kind, 'name', '') in ('ARRAY', 'SEQUENCE'):
        yield from _nested_names(detail[0])


def ensure_type(store: Typestore, msgtype: str) -> bool:
    """Register msgtype (and the types it nests) from .msg files if the store lacks it.

    Returns:
        True when the store knows the type afterwards.
    """
    if msgtype in store.fielddefs:
        return True
    path = msg_file(msgtype)
    if path is None:
        return False
    types = get_types_from_msg(path.read_text(), msgtype)
    for _consts, fields in types.values():
        for _name, fielddef in fields:
            for nested in _nested_names(fielddef):
                if nested not in types and not ensure_type(store, nested):
                    return False
    store.register(types)
    return msgtype in store.fielddefs


def message_class(msgtype: str) -> type:
    """The rclpy message class for 'pkg/msg/Name' (imports the generated Python module).

    Raises:
        BagError: the package or type is not installed.
    """
    pkg, _, name = msgtype.partition('/msg/')
    if not name:
        raise BagError(f"'{msgtype}' is not a message type name (pkg/msg/Name)")
    try:
        module = __import__(f'{pkg}.msg', fromlist=[name])
        return cast(type, getattr(module, name))
    except (ImportError, AttributeError) as err:
        raise BagError(f"message type '{msgtype}' is not installed: {err}") from err
