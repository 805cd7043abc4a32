"""Private files for what SAGE remembers: directories 0700, files 0600.

The memory database, its index snapshots and the SNARC and orchestrator state describe what
the robot saw and heard (thumbnails, audio clips, text): other users of the machine must not
read them. New files and directories are created private whatever the umask; ones an older
version left readable are tightened at start, and each fix is returned as a warning so the
user learns about it. No rclpy here.
"""
from __future__ import annotations

from collections.abc import Iterable
import os
from pathlib import Path
import stat

DIR_MODE = 0o700
FILE_MODE = 0o600
# Permission bits for the group and for others: none may be set on private data.
SHARED_BITS = 0o077


def tighten(path: str | os.PathLike[str]) -> list[str]:
    """Remove group/other permissions from an existing file or directory.

    Symbolic links and missing paths are left alone. Returns one warning when a mode was
    changed (or could not be).
    """
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        return []
    mode = stat.S_IMODE(st.st_mode)
    if not mode & SHARED_BITS:
        return []
    new = mode & ~SHARED_BITS
    try:
        os.chmod(path, new)
    except OSError as err:
        return [f'{path} is readable by other users (mode {mode:o}) and cannot be made '
                f'private: {err}']
    return [f'{path} was accessible to other users (mode {mode:o}); now {new:o}']


def private_dir(path: str | os.PathLike[str], fix_existing: bool = True) -> list[str]:
    """Make sure a directory exists and only its owner can enter it.

    Directories this call creates (the missing ancestors too) are 0700. An existing directory
    is tightened when `fix_existing` (SAGE's own data and state folders), and left as it is
    otherwise (e.g. a user's folder that holds a state file they chose).

    Returns:
        warnings for the directories whose mode was fixed.
    """
    path = Path(path).expanduser()
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # created meanwhile by another process
            pass
        os.chmod(directory, DIR_MODE)  # mkdir's mode is reduced by the umask, never widened
    if missing or not fix_existing:
        return []
    return tighten(path)


def private_tree(root: str | os.PathLike[str]) -> list[str]:
    """Tighten a directory and everything below it (files and folders)."""
    root = Path(root)
    if not root.is_dir():
        return []
    warnings = tighten(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            warnings += tighten(Path(dirpath) / name)
    return warnings


def private_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Tighten each existing file of a list (missing ones are skipped)."""
    return [w for p in paths for w in tighten(p)]


def create_private(path: str | os.PathLike[str]) -> int:
    """Open a file for writing, created 0600 (truncated if it exists); returns the fd.

    An existing file keeps its inode: its mode is tightened too.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~SHARED_BITS)
    return fd
