"""SQLite files: why an open failed, the integrity verdict, quarantine, read-only access.

An open can fail for reasons that need different answers:

- busy: another process holds a lock (a backup, an operator's sqlite3 shell): wait for it;
- denied: the file or its folder cannot be written (permissions, a read-only mount, an
  immutable file): serve what is there, read-only;
- corrupt: SQLite's own integrity check (`PRAGMA quick_check`) fails: quarantine the file.

Only the last one ever moves a file, and only on the check's own verdict: a file that cannot
be read for any other reason stays where it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import errno
import os
from pathlib import Path
import pwd
import sqlite3
import time
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event

from sage_memory.errors import MemoryStoreError

# SQLite waits this long inside one attempt before the caller's own loop (with backoff and a
# report on /diagnostics) takes over: a lock is reported within seconds, not after 30 s.
OPEN_BUSY_TIMEOUT_S = 1.0
QUARANTINE_INFIX = '.corrupt-'


class Fault(str, Enum):
    """Why a SQLite file could not be opened or read."""

    BUSY = 'busy'          # locked by another process: retry later
    DENIED = 'denied'      # cannot be written here: read-only
    CORRUPT = 'corrupt'    # failed the integrity check: quarantine
    OTHER = 'other'        # anything else (I/O error, full disk...): report, touch nothing


# SQLite primary result codes (sqlite.org/rescode.html) -> fault.
_CODES = {3: Fault.DENIED, 5: Fault.BUSY, 6: Fault.BUSY, 8: Fault.DENIED, 11: Fault.CORRUPT,
          14: Fault.DENIED, 26: Fault.CORRUPT}
# Python 3.10's sqlite3 has no error codes: the same classes by SQLite's fixed messages.
_MESSAGES = (('database is locked', Fault.BUSY), ('database table is locked', Fault.BUSY),
             ('readonly database', Fault.DENIED), ('unable to open database', Fault.DENIED),
             ('access permission denied', Fault.DENIED), ('malformed', Fault.CORRUPT),
             ('file is not a database', Fault.CORRUPT))
_DENIED_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass(frozen=True)
class Problem:
    """A classified problem with a SQLite file."""

    fault: Fault
    detail: str


def classify(err: BaseException) -> Fault:
    """The fault behind a driver, SQLAlchemy or OS error."""
    orig = getattr(err, 'orig', None) or err  # SQLAlchemy wraps the driver's error
    if isinstance(orig, OSError):
        return Fault.DENIED if orig.errno in _DENIED_ERRNOS else Fault.OTHER
    code = getattr(orig, 'sqlite_errorcode', None)  # Python >= 3.11
    if isinstance(code, int):
        return _CODES.get(code & 0xFF, Fault.OTHER)
    text = str(orig).lower()
    for needle, fault in _MESSAGES:
        if needle in text:
            return fault
    return Fault.OTHER


def _user() -> str:
    uid = os.geteuid()
    try:
        return f'user {pwd.getpwuid(uid).pw_name}'
    except KeyError:
        return f'uid {uid}'


def access_problem(path: Path) -> str | None:
    """Why this process cannot keep a SQLite database at path, or None when it can.

    SQLite needs the file readable and writable and its folder writable (WAL and shared-memory
    files live beside it); a missing folder needs its nearest existing ancestor writable.
    os.access sees permissions, read-only mounts and immutable files alike.
    """
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return f'folder {folder} is not writable by {_user()}'
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f'{path} is not writable by {_user()}'
    return None


def examine(path: Path, full: bool = False,
            busy_timeout_s: float = OPEN_BUSY_TIMEOUT_S) -> Problem | None:
    """Check that an existing SQLite file is a usable database; None when it is.

    Always reads the schema; with full=True (or when the schema cannot be read) also runs
    `PRAGMA quick_check`, which reads every page. Only the check's own verdict gives
    Fault.CORRUPT; a lock or a permission problem met on the way is reported as such.
    """
    try:
        con = sqlite3.connect(f'file:{quote(str(path))}?mode=rw', uri=True,
                              timeout=busy_timeout_s)
    except sqlite3.Error as err:
        return Problem(classify(err), f'cannot open {path}: {err}')
    try:
        try:
            con.execute('SELECT count(*) FROM sqlite_master').fetchone()
        except sqlite3.Error as err:
            fault = classify(err)
            if fault in (Fault.BUSY, Fault.DENIED):
                return Problem(fault, f'cannot read {path}: {err}')
            full = True  # a schema that cannot be read: let the integrity check judge
        return _quick_check(con, path) if full else None
    finally:
        con.close()


def _quick_check(con: sqlite3.Connection, path: Path) -> Problem | None:
    try:
        rows = con.execute('PRAGMA quick_check').fetchall()
    except sqlite3.Error as err:
        fault = classify(err)
        if fault is Fault.CORRUPT:
            return Problem(fault, f'{path} failed quick_check: {err}')
        return Problem(fault, f'cannot check {path}: {err}')
    if rows != [('ok',)]:
        return Problem(Fault.CORRUPT,
                       f'{path} failed quick_check: ' + '; '.join(str(r[0]) for r in rows[:3]))
    return None


def quarantine(path: Path) -> Path:
    """Rename a corrupt database (and its -wal/-shm) to `<name>.corrupt-<time>`; returns it."""
    stamp = time.strftime('%Y%m%dT%H%M%S')
    target = path.with_name(f'{path.name}{QUARANTINE_INFIX}{stamp}')
    n = 1
    while target.exists():
        target = path.with_name(f'{path.name}{QUARANTINE_INFIX}{stamp}-{n}')
        n += 1
    for suffix in ('', '-wal', '-shm'):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    return target


def quarantined_files(path: Path) -> list[Path]:
    """Quarantined copies of a database lying beside it (oldest first)."""
    if not path.parent.is_dir():
        return []
    found = [p for p in path.parent.glob(f'{path.name}{QUARANTINE_INFIX}*')
             if not p.name.endswith(('-wal', '-shm'))]
    return sorted(found)


def read_only_engine(path: Path) -> Engine:
    """An engine that only reads the SQLite file at path, whatever its folder allows.

    `mode=ro` reads a WAL database when its shared-memory file exists or can be created;
    in a folder that cannot be written it cannot, and then a cleanly closed file (no WAL
    content) is read as immutable. A file with WAL content there cannot be read safely.

    Raises:
        MemoryStoreError: the file cannot be read at all.
    """
    uri = f'file:{quote(str(path))}?mode=ro'
    problem = _try_read(uri, path)
    if problem is not None and problem.fault is Fault.DENIED:
        wal = Path(f'{path}-wal')
        if wal.exists() and wal.stat().st_size > 0:
            raise MemoryStoreError(f'cannot read {path}: its write-ahead log {wal} holds '
                                   f'changes and {problem.detail}')
        uri += '&immutable=1'
        problem = _try_read(uri, path)
    if problem is not None:
        raise MemoryStoreError(problem.detail)
    engine = create_engine(f'sqlite:///{uri}&uri=true',
                           connect_args={'timeout': OPEN_BUSY_TIMEOUT_S})

    @event.listens_for(engine, 'connect')
    def _on_connect(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.execute('PRAGMA query_only=1')  # type: ignore[attr-defined]
    return engine


def _try_read(uri: str, path: Path) -> Problem | None:
    try:
        con = sqlite3.connect(uri, uri=True, timeout=OPEN_BUSY_TIMEOUT_S)
    except sqlite3.Error as err:
        return Problem(classify(err), f'cannot open {path}: {err}')
    try:
        con.execute('SELECT count(*) FROM sqlite_master').fetchone()
    except sqlite3.Error as err:
        return Problem(classify(err), f'cannot read {path}: {err}')
    finally:
        con.close()
    return None
