"""Where SAGE finds its config/ and launch/ folders, in a source checkout or a colcon install."""
from __future__ import annotations

import os
from pathlib import Path


def share_dir() -> Path:
    """Folder holding config/ and launch/.

    Order: $SAGE_SHARE_DIR, the source checkout this module lives in (venv installs are
    editable), then the colcon install's share/sage (found through the ament index).
    """
    env = os.environ.get('SAGE_SHARE_DIR')
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / 'config' / 'nano.yaml').is_file():
        return checkout
    try:
        # lazy: ament_index_python exists only on a ROS install (a checkout needs none)
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('sage'))
    except (ImportError, LookupError) as err:  # LookupError covers PackageNotFoundError
        raise FileNotFoundError('cannot find SAGE config/: set SAGE_SHARE_DIR') from err


def config_dir() -> Path:
    return share_dir() / 'config'


def repo_root() -> Path | None:
    """The source checkout, when running from one (None in a colcon install)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / 'src' / 'sage_interfaces').is_dir() else None
