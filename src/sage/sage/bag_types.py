"""Message types for bags: a rosbags typestore that knows SAGE's custom messages (no rclpy).

rosbags ships the standard ROS 2 message definitions; SAGE's own types come from the
sage_interfaces .msg files (the source checkout, or the installed share/ folder), so bags carry
the same definitions and type hashes (RIHS01) as `ros2 bag record` would write.
"""
from __future__ import annotations

from collections.abc import Iterable
import os
from pathlib import Path
import sys
from typing import Any, cast

from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from sage.paths import repo_root
from sage_common.errors import SageError

INTERFACES_PACKAGE = 'sage_interfaces'


class BagError(SageError):
    """A bag cannot be written, read or played (the message says which and why)."""


def latest_store() -> Stores:
    """The newest ROS 2 distribution rosbags knows (Kilted or later)."""
    for name in ('ROS2_LYRICAL', 'ROS2_KILTED', 'ROS2_JAZZY', 'ROS2_HUMBLE'):
        store = getattr(Stores, name, None)
        if store is not None:
            return cast(Stores, store)
    return Stores.LATEST


def share_prefixes() -> list[Path]:
    """share/ folders that may hold `<package>/msg/*.msg` (ament prefixes, then this venv)."""
    prefixes = [Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    out: list[Path] = []
    for prefix in prefixes:
        share = prefix / 'share'
        if share.is_dir() and share not in out:
            out.append(share)
    return out


def msg_file(msgtype: str) -> Path | None:
    """The .msg file defining 'pkg/msg/Name', from the source checkout or a share/ folder."""
    pkg, _, name = msgtype.partition('/msg/')
    if not name:
        return None
    root = repo_root()
    candidates = [root / 'src' / pkg / 'msg' / f'{name}.msg'] if root else []
    candidates += [share / pkg / 'msg' / f'{name}.msg' for share in share_prefixes()]
    return next((c for c in candidates if c.is_file()), None)


def interface_msg_files() -> list[Path]:
    """Every sage_interfaces .msg file (the source checkout wins over an install)."""
    root = repo_root()
    folders = [root / 'src' / INTERFACES_PACKAGE / 'msg'] if root else []
    folders += [share / INTERFACES_PACKAGE / 'msg' for share in share_prefixes()]
    for folder in folders:
        files = sorted(folder.glob('*.msg'))
        if files:
            return files
    raise BagError('cannot find the sage_interfaces .msg files (source checkout or '
                   'share/sage_interfaces/msg under AMENT_PREFIX_PATH)')


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


def sage_typestore() -> Typestore:
    """The latest ROS 2 typestore with every sage_interfaces message registered."""
    store = get_typestore(latest_store())
    types: dict[str, Any] = {}
    for path in interface_msg_files():
        types.update(get_types_from_msg(path.read_text(),
                                        f'{INTERFACES_PACKAGE}/msg/{path.stem}'))
    store.register(types)
    return store


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
