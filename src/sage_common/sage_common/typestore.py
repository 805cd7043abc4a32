"""rosbags typestore with every sage_interfaces message registered (bags, replay, reports)."""
from __future__ import annotations

import os
from pathlib import Path
import sys
from typing import Any

from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from sage_common.errors import SageError

INTERFACES_PACKAGE = 'sage_interfaces'


def latest_store() -> Stores:
    """The newest ROS 2 distribution rosbags knows (Kilted or later)."""
    for name in ('ROS2_LYRICAL', 'ROS2_KILTED', 'ROS2_JAZZY', 'ROS2_HUMBLE'):
        store: Stores | None = getattr(Stores, name, None)
        if store is not None:
            return store
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


def msg_folders(package: str = INTERFACES_PACKAGE) -> list[Path]:
    """Candidate msg/ folders of a package: $SAGE_INTERFACES_MSG_DIR, the source checkout,
    then every share/ prefix (the source checkout wins over an install)."""
    folders = []
    if package == INTERFACES_PACKAGE and os.environ.get('SAGE_INTERFACES_MSG_DIR'):
        folders.append(Path(os.environ['SAGE_INTERFACES_MSG_DIR']))
    folders.append(Path(__file__).resolve().parents[2] / package / 'msg')
    folders += [share / package / 'msg' for share in share_prefixes()]
    return folders


def interface_msg_files() -> list[Path]:
    """Every sage_interfaces .msg file.

    Raises:
        SageError: no folder with the definitions was found.
    """
    for folder in msg_folders():
        files = sorted(folder.glob('*.msg'))
        if files:
            return files
    raise SageError('cannot find the sage_interfaces .msg files (source checkout, '
                    'share/sage_interfaces/msg under AMENT_PREFIX_PATH, or set '
                    'SAGE_INTERFACES_MSG_DIR)')


def sage_typestore() -> Typestore:
    """A fresh latest-distribution typestore with every sage_interfaces message registered."""
    store = get_typestore(latest_store())
    types: dict[str, Any] = {}
    for path in interface_msg_files():
        types.update(get_types_from_msg(path.read_text(),
                                        f'{INTERFACES_PACKAGE}/msg/{path.stem}'))
    store.register(types)
    return store
