"""`sage memory query TEXT`: recall by text from a memory database, printed as a table.

The text is embedded by the embedder the memory node's parameters name and answered by the
same recall code as /sage/memory/query (sage_memory.index.recall), over the database opened
read-only: it can run beside a live memory node and changes nothing.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.table import Table

from sage_common.errors import SageError
from sage_common.params import resolve
from sage_memory.memory_params import PARAMS

# Characters of an experience's text shown per row.
TEXT_CHARS = 60
# Console width when the output is not a terminal (files, pipes, tests).
PLAIN_WIDTH = 140


def run_memory_query(text: str, k: int = 10, url: str = '', out: TextIO | None = None,
                     err: TextIO | None = None) -> int:
    """Print the k language memories most similar to text.

    Args:
        text: what to recall.
        k: number of results (1..1000).
        url: database URL or SQLite path ('' = the default file).
        out: where the table goes (None: standard output).
        err: where errors go (None: standard error).

    Returns:
        0 when the query ran (even with no match), 2 on a user or database error.
    """
    # lazy: keeps SQLAlchemy and faiss out of this module's import
    from sage_memory.memory import Memory, MemoryConfig
    from sage_memory.index.recall import Query, text_embedder
    from sage_memory.store.memory_store import StoreConfig, resolve_url, sqlite_path

    out = out or sys.stdout
    err = err or sys.stderr
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None and not path.exists():
        print(f'ERROR: no memory database at {path}', file=err)
        return 2
    # The memory node's defaults: its text embedder, and snapshots beside a SQLite file.
    params = resolve(PARAMS, {})
    store = StoreConfig(database_url=resolved, read_only=True,
                        data_dir=str(path.parent) if path is not None else params['data_dir'])
    try:
        memory = Memory(MemoryConfig(store=store, snapshot_period_s=0.0, refresh_period_s=0.0),
                        text_embedder(params))
    except SageError as error:
        print(f'ERROR: {error}', file=err)
        return 2
    try:
        memory.wait_index_ready()
        results = memory.query(Query(k=k, text=text))
    except SageError as error:
        print(f'ERROR: {error}', file=err)
        return 2
    finally:
        memory.close()
    _print_table(text, results, out)
    return 0


def _print_table(text: str, results: list, out: TextIO) -> None:
    table = Table(title=f'{len(results)} memories recalled for {text!r} (most similar first)',
                  title_justify='left')
    for col in ('#', 'score', 'when', 'modality', 'kind', 'salience', 'text', 'uuid'):
        table.add_column(col, justify='right' if col in ('#', 'score', 'salience') else 'left')
    for n, rec in enumerate(results, 1):
        when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rec.stamp))
        table.add_row(str(n), f'{rec.score:.3f}', when, rec.modality, rec.kind,
                      f'{rec.salience:.2f}', rec.text[:TEXT_CHARS], rec.uuid[:12])
    tty = out.isatty() if hasattr(out, 'isatty') else False
    Console(file=out, width=None if tty else PLAIN_WIDTH).print(table)
