"""Where the orchestrator keeps state across restarts (trust), behind one small interface.

Today: a JSON file per key under `state_dir`, written atomically (temporary file in the same
directory, fsync, rename), so a crash mid-write leaves the previous file intact. The memory
node's key-value store can replace `JsonFileStore` later by implementing `StateStore`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import re
import tempfile
from typing import Any, Protocol

from sage_common.private_files import private_dir, private_tree
from sage_orchestrator.errors import PersistError

_KEY = re.compile(r'^[A-Za-z0-9_.-]+$')


class StateStore(Protocol):
    """A small key -> JSON-able dict store."""

    def load(self, key: str) -> dict[str, Any] | None:
        """The saved dict, or None when nothing was saved."""

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Save a dict, replacing the previous one."""

    def lock_down(self) -> list[str]:
        """Make the stored state private to its owner; one warning per fix."""


class JsonFileStore:
    """One JSON file per key under a directory; atomic replace on save."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()

    def path(self, key: str) -> Path:
        """File that holds a key.

        Raises:
            PersistError: the key has characters outside [A-Za-z0-9_.-].
        """
        if not _KEY.match(key):
            raise PersistError(f'bad state key {key!r}')
        return self.directory / f'{key}.json'

    def load(self, key: str) -> dict[str, Any] | None:
        """Load a key.

        Raises:
            PersistError: the file exists but cannot be read or is not a JSON object.
        """
        path = self.path(key)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise PersistError(f'cannot read {path}: {err}') from err
        try:
            state = json.loads(text)
        except ValueError as err:
            raise PersistError(f'{path} is not valid JSON: {err}') from err
        if not isinstance(state, dict):
            raise PersistError(f'{path} does not hold a JSON object')
        return state

    def lock_down(self) -> list[str]:
        """Make the directory (0700) and its files (0600) private; warnings for each fix."""
        if not self.directory.is_dir():
            return []
        return private_tree(self.directory)

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Save a key atomically.

        Raises:
            PersistError: the directory cannot be created or written.
        """
        path = self.path(key)
        try:
            private_dir(self.directory)  # 0700; mkstemp creates the file 0600
            fd, tmp = tempfile.mkstemp(prefix=f'.{key}.', suffix='.tmp', dir=self.directory)
            try:
                with os.fdopen(fd, 'w') as f:
                    json.dump(state, f, indent=1, sort_keys=True, allow_nan=False)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, ValueError) as err:
            raise PersistError(f'cannot save {path}: {err}') from err


def open_store(state_dir: str) -> StateStore | None:
    """The store for a `state_dir` parameter ('' = no persistence)."""
    return JsonFileStore(state_dir) if state_dir.strip() else None
