"""Multi-device memory: export to a portable file, import from one, sync through PostgreSQL.

The portable file is a SQLite database with the store's own schema (single file, rollback
journal), so it can be inspected with any SQLite tool and imported anywhere. Every transfer is
one operation, `merge(src, dst)`:

- rows are matched by their globally unique uuid; rows missing in dst are copied byte for
  byte (all columns but the local id); rows already there are never duplicated;
- the only mutable column, `pattern_uuid` (set by sleep), merges deterministically: a missing
  value is filled in, and two different values resolve to the smaller uuid on both sides;
- uuids that dst evicted itself (its tombstones) are not brought back into dst;
- state documents (export/import only) go across when newer; the store's internal keys never.

So merging is idempotent and loses nothing: a second merge changes nothing, and a sync
(merge both ways) leaves both databases with the same rows.
"""
from __future__ import annotations

from pathlib import Path
import sqlite3
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy import exc as sa_exc

from sage_memory.errors import MemoryStoreError, TransferError
from sage_memory.store.models import EXPERIENCES, PORTABLE_COLUMNS, STATE, TOMBSTONES
from sage_memory.store.database import make_engine, migrate, redact, resolve_url
from sage_memory.store.queries import summarize
from sage_memory.store.statements import INTERNAL_PREFIX, insert_ignore, upsert_state

__all__ = ['export_memory', 'import_memory', 'sync', 'merge', 'summarize', 'portable_rows']

_CHUNK = 500


def _open(url: str, journal: str = 'WAL') -> Engine:
    resolved = resolve_url(url)
    pragmas = {} if journal == 'WAL' else {'journal_mode': journal}
    engine = make_engine(resolved, pragmas=pragmas)
    try:
        migrate(engine)
    except MemoryStoreError as err:
        engine.dispose()
        raise TransferError(str(err)) from err
    return engine


def _file_url(path: str | Path) -> str:
    return f'sqlite:///{Path(path).expanduser().resolve()}'


def _uuid_map(conn: Connection) -> dict[str, str | None]:
    q = select(EXPERIENCES.c.uuid, EXPERIENCES.c.pattern_uuid).order_by(EXPERIENCES.c.id)
    return {u: p for u, p in conn.execute(q)}


def portable_rows(url: str) -> dict[str, tuple]:
    """Every row of a store by uuid, with every column but the local id (what a transfer
    copies): two stores hold the same experiences when these are equal."""
    engine = make_engine(resolve_url(url))
    try:
        cols = [EXPERIENCES.c[c] for c in PORTABLE_COLUMNS]
        with engine.connect() as conn:
            return {r.uuid: tuple(r) for r in conn.execute(select(*cols))}
    finally:
        engine.dispose()


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(EXPERIENCES)).scalar_one())


def merge(src: Engine, dst: Engine, include_state: bool = False) -> dict[str, int]:
    """Copy into dst every src row it lacks and merge pattern assignments.

    Returns:
        Counts: inserted, updated (pattern_uuid), skipped (tombstoned in dst), states.

    Raises:
        TransferError: either database cannot be read or written.
    """
    try:
        with src.connect() as sconn, dst.begin() as dconn:
            return _merge(sconn, dconn, dst, include_state)
    except (sa_exc.SQLAlchemyError, sqlite3.Error) as err:
        raise TransferError(f'merge {redact(str(src.url))} -> {redact(str(dst.url))} '
                            f'failed: {err}') from err


def _merge(sconn: Connection, dconn: Connection, dst: Engine,
           include_state: bool) -> dict[str, int]:
    src_map = _uuid_map(sconn)
    dst_map = _uuid_map(dconn)
    dead = set(dconn.execute(select(TOMBSTONES.c.uuid)).scalars())
    missing = [u for u in src_map if u not in dst_map and u not in dead]
    skipped = sum(1 for u in src_map if u not in dst_map and u in dead)
    cols = [EXPERIENCES.c[name] for name in PORTABLE_COLUMNS]
    ins = insert_ignore(dst, EXPERIENCES)
    for i in range(0, len(missing), _CHUNK):
        chunk = missing[i:i + _CHUNK]
        q = select(*cols).where(EXPERIENCES.c.uuid.in_(chunk)).order_by(EXPERIENCES.c.id)
        rows = [dict(r._mapping) for r in sconn.execute(q)]
        if rows:
            dconn.execute(ins, rows)
    # Counted, not taken from rowcount (drivers differ for executemany with ON CONFLICT).
    inserted = _count(dconn) - len(dst_map)
    updated = 0
    for u, sp in src_map.items():
        if sp is None or u not in dst_map:
            continue
        dp = dst_map[u]
        if dp is None or sp < dp:
            dconn.execute(update(EXPERIENCES).where(EXPERIENCES.c.uuid == u)
                          .values(pattern_uuid=sp))
            updated += 1
    states = _merge_state(sconn, dconn, dst) if include_state else 0
    return {'inserted': inserted, 'updated': updated, 'skipped': skipped, 'states': states}


def _merge_state(sconn: Connection, dconn: Connection, dst: Engine) -> int:
    theirs = {r.key: r for r in sconn.execute(select(STATE))
              if not r.key.startswith(INTERNAL_PREFIX)}
    ours = {r.key: r.updated_at for r in dconn.execute(select(STATE.c.key, STATE.c.updated_at))}
    newer = [{'key': r.key, 'value': r.value, 'updated_at': r.updated_at,
              'device_id': r.device_id}
             for k, r in sorted(theirs.items()) if k not in ours or r.updated_at > ours[k]]
    if newer:
        dconn.execute(upsert_state(dst), newer)
    return len(newer)


def export_memory(url: str, path: str | Path) -> dict[str, Any]:
    """Write every row and state document of a store to a portable file.

    An existing export file is merged into (re-exporting adds only what is new).

    Args:
        url: the store's database_url ('' = default SQLite file), path or URL.
        path: the file to write.

    Raises:
        TransferError: the store or the file cannot be opened or written.
    """
    src = _open(url)
    try:
        dst = _open(_file_url(path), journal='DELETE')
        try:
            counts = merge(src, dst, include_state=True)
        finally:
            dst.dispose()
    finally:
        src.dispose()
    return {'path': str(Path(path).expanduser().resolve()), **counts}


def import_memory(url: str, path: str | Path) -> dict[str, Any]:
    """Merge a portable file into a store (idempotent).

    Raises:
        TransferError: the file is missing or not a memory export, or the store fails.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise TransferError(f'no export file at {p}')
    try:
        con = sqlite3.connect(f'file:{p}?mode=ro', uri=True)
        try:
            con.execute('SELECT count(*) FROM experiences').fetchone()
        finally:
            con.close()
    except sqlite3.Error as err:
        raise TransferError(f'{p} is not a SAGE memory export: {err}') from err
    src = _open(_file_url(p), journal='DELETE')
    try:
        dst = _open(url)
        try:
            counts = merge(src, dst, include_state=True)
        finally:
            dst.dispose()
    finally:
        src.dispose()
    return {'path': str(p.resolve()), **counts}


def sync(local_url: str, remote_url: str) -> dict[str, Any]:
    """Two-way merge between a device's store and a shared (PostgreSQL) store.

    Experiences only: state documents are per device and stay local.

    Returns:
        {'pushed': counts local -> remote, 'pulled': counts remote -> local}.

    Raises:
        TransferError: either database fails, or both URLs name the same database.
    """
    if resolve_url(local_url) == resolve_url(remote_url):
        raise TransferError('local and remote are the same database')
    local = _open(local_url)
    try:
        remote = _open(remote_url)
        try:
            pushed = merge(local, remote)
            pulled = merge(remote, local)
        finally:
            remote.dispose()
    finally:
        local.dispose()
    return {'pushed': pushed, 'pulled': pulled}
