"""The memory store's files are private: data folder 0700, database and snapshots 0600.

Called by the Store before it opens the database, so a fresh SQLite file is created 0600 (SQLite
gives its -wal and -shm files the database file's mode) and files an older version left
readable are tightened, with one warning each.
"""
from __future__ import annotations

import os
from pathlib import Path

from sage_common.private_files import create_private, private_dir, private_files, private_tree

# Files SQLite and the Store keep beside the database (journal, WAL, shared memory, markers).
SIDE_SUFFIXES = ('-wal', '-shm', '-journal', '.open', '.check-failed')
# Sub-folder of data_dir holding the vector index snapshots (sage_memory.memory).
INDEX_DIRNAME = 'index'


def lock_down_store(db_path: Path | None, data_dir: Path) -> list[str]:
    """Make the data folder, the SQLite file (None: PostgreSQL) and snapshots private.

    The database's own folder is tightened only when it is the data folder: a file the user
    placed elsewhere is made private, not the folder they keep it in.

    Returns:
        one warning per file or folder whose mode had to be fixed.
    """
    data_dir = Path(data_dir).expanduser()
    warnings = private_dir(data_dir)
    warnings += private_tree(data_dir / INDEX_DIRNAME)
    if db_path is None:
        return warnings
    own_folder = db_path.parent.resolve() == data_dir.resolve()
    if not own_folder:
        warnings += private_dir(db_path.parent, fix_existing=False)
    if not db_path.exists():
        os.close(create_private(db_path))  # an empty file is an empty SQLite database
    warnings += private_files([db_path, *(Path(f'{db_path}{s}') for s in SIDE_SUFFIXES)])
    return warnings
