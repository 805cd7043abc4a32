"""Versioned puzzle models written by sleep retraining (pure: no torch, no ORT).

Layout under a root folder (the memory node's `<data_dir>/models`):

  <root>/<modality>/v0001/        a complete model folder, the packaged file names
                                  (model_files), loadable as a model_dir, plus version.json
  <root>/<modality>/v0002/ ...
  <root>/<modality>/live.json     {"version": "v0002" | "packaged", "path": absolute folder
                                  ('' = packaged), "previous": the version live before,
                                  "promoted_at": wall time}

version.json: {version, modality, base (the version fine-tuned from, or 'packaged'),
created_at, data {count, since, until, heldout_uuids, ...}, validation {...},
decision 'promoted' | 'rejected', reason, memory_embeddings {count, ...}, ...}.

memory_embeddings.npz (MEMORY_EMBEDDINGS_FILE; promoted versions made by sleep): the stored
inputs re-embedded by this version as its encoder embeds them, `uuid` (N,) the experience
uuids and `embedding` (N, D) float32. SNARC fills this version's novelty memory from it when
the version goes live; versions without it (older ones, packaged) start that memory empty.

Writes are atomic. A version is built in `.tmp-<name>-<pid>` and renamed into place only when
complete (files and folders fsynced first), so a crash at any point leaves either no version or
a whole one. live.json is replaced by write-to-temp + fsync + os.replace: a crash leaves the old
or the new record, never a torn one. `.tmp-*` leftovers of a dead process go at the next write;
a version folder without a readable version.json is listed as broken and never made live.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
import fcntl
import json
import os
from pathlib import Path
import re
import shutil
import time
from typing import Any
import zipfile
import zlib

import numpy as np

from sage_encoders.model_files import PACKAGED, PACKAGED_DIR, VERSION_FILE

LIVE_FILE = 'live.json'
MEMORY_EMBEDDINGS_FILE = 'memory_embeddings.npz'
TMP_PREFIX = '.tmp-'
LOCK_FILE = '.lock'
DECISIONS = ('promoted', 'rejected')
_NAME = re.compile(r'v(\d{4,})')


class VersionError(ValueError):
    """A version that does not exist, is broken, or cannot be made live."""


@dataclass(frozen=True)
class Version:
    """One version folder.

    Attributes:
        name: 'v0001', ...
        path: its folder.
        info: its version.json ({} when broken).
        broken: why it cannot be used ('' = it can).
    """

    name: str
    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    broken: str = ''

    @property
    def number(self) -> int:
        return int(self.name[1:])

    @property
    def decision(self) -> str:
        return str(self.info.get('decision', ''))

    @property
    def base(self) -> str:
        return str(self.info.get('base', ''))


@dataclass
class Build:
    """A version being written: put the model files into `path`, the record into `info`."""

    name: str
    path: Path
    info: dict[str, Any] = field(default_factory=dict)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (created, renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under path (and path itself)."""
    for dirpath, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace path with JSON data: temp file in the same folder, fsync, os.replace, fsync."""
    tmp = path.with_name(f'{TMP_PREFIX}{path.name}-{os.getpid()}')
    with open(tmp, 'w') as fh:
        fh.write(json.dumps(data, indent=1, sort_keys=True) + '\n')
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


@dataclass(frozen=True)
class MemoryEmbeddings:
    """The stored memories a version re-embedded (MEMORY_EMBEDDINGS_FILE).

    Attributes:
        uuids: (N,) the experiences' uuids.
        embeddings: (N, D) float32, row i of uuids[i].
    """

    uuids: np.ndarray
    embeddings: np.ndarray


def write_memory_embeddings(directory: Path, uuids: list[str], embeddings: np.ndarray
                            ) -> Path:
    """Write a version folder's MEMORY_EMBEDDINGS_FILE (made durable by the version's commit).

    Raises:
        ValueError: embeddings is not (len(uuids), D).
    """
    emb = np.asarray(embeddings, np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(uuids):
        raise ValueError(f'embeddings {emb.shape} do not fit {len(uuids)} uuids')
    path = Path(directory) / MEMORY_EMBEDDINGS_FILE
    with open(path, 'wb') as fh:
        np.savez(fh, uuid=np.asarray(uuids, dtype=str), embedding=emb)
    return path


def read_memory_embeddings(directory: Path) -> MemoryEmbeddings | None:
    """A version folder's MEMORY_EMBEDDINGS_FILE; None when it has none (older versions).

    Raises:
        VersionError: the file cannot be read or is not what write_memory_embeddings writes.
    """
    path = Path(directory) / MEMORY_EMBEDDINGS_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            uuids, emb = npz['uuid'], npz['embedding']
    except FileNotFoundError:
        return None
    # A torn or foreign file fails in numpy, zipfile or zlib, each with its own error.
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise VersionError(f'{path}: unreadable ({type(err).__name__}: {err})') from err
    if emb.ndim != 2 or emb.dtype.kind != 'f' or uuids.ndim != 1 \
            or uuids.shape[0] != emb.shape[0]:
        raise VersionError(f'{path}: embedding {emb.dtype} {emb.shape} and uuid '
                           f'{uuids.shape} are not (N, D) floats with N uuids')
    return MemoryEmbeddings(uuids, emb.astype(np.float32, copy=False))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ModelVersions:
    """The versions of one modality's model under root.

    Args:
        root: the versions root (holds one folder per modality).
        modality: 'vision' or 'audio'.
        packaged_dir: the folder used when no version is live.
    """

    def __init__(self, root: str | Path, modality: str, packaged_dir: Path = PACKAGED_DIR
                 ) -> None:
        if modality not in ('vision', 'audio'):
            raise VersionError(f"no versioned models for modality '{modality}'")
        self.root = Path(root).expanduser().resolve()
        self.modality = modality
        self.packaged_dir = Path(packaged_dir)
        self.dir = self.root / modality

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[Version]:
        """Every version folder, oldest first; broken ones flagged (never raises)."""
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.iterdir():
            if not (p.is_dir() and _NAME.fullmatch(p.name)):
                continue
            out.append(self._read(p))
        return sorted(out, key=lambda v: v.number)

    def _read(self, path: Path) -> Version:
        try:
            info = json.loads((path / VERSION_FILE).read_text())
        except FileNotFoundError:
            return Version(path.name, path, {}, f'no {VERSION_FILE}')
        except (OSError, ValueError) as err:
            return Version(path.name, path, {}, f'unreadable {VERSION_FILE}: {err}')
        if not isinstance(info, dict):
            return Version(path.name, path, {}, f'{VERSION_FILE} is not an object')
        if info.get('version') != path.name or info.get('modality') != self.modality:
            return Version(path.name, path, info,
                           f"{VERSION_FILE} names {info.get('modality')}/{info.get('version')}")
        return Version(path.name, path, info)

    def get(self, name: str) -> Version:
        """One usable version.

        Raises:
            VersionError: no such version, or it is broken.
        """
        if not _NAME.fullmatch(name):
            raise VersionError(f"'{name}' is not a version name (v0001, ...) or '{PACKAGED}'")
        path = self.dir / name
        if not path.is_dir():
            raise VersionError(f'no {self.modality} model version {name} in {self.dir}')
        v = self._read(path)
        if v.broken:
            raise VersionError(f'{self.modality} model version {name} is broken: {v.broken}')
        return v

    def live(self) -> dict[str, Any]:
        """live.json (the packaged model when there is none or it cannot be read)."""
        try:
            doc = json.loads((self.dir / LIVE_FILE).read_text())
            if isinstance(doc, dict) and doc.get('version'):
                return doc
        except (OSError, ValueError):
            pass
        return {'version': PACKAGED, 'path': '', 'previous': '', 'promoted_at': 0.0}

    def live_version(self) -> str:
        """Name of the live version, or 'packaged'."""
        return str(self.live()['version'])

    def live_path(self) -> Path:
        """Folder of the live model (the packaged one when none, or when the live one broke)."""
        name = self.live_version()
        if name == PACKAGED:
            return self.packaged_dir
        try:
            return self.get(name).path
        except VersionError:
            return self.packaged_dir

    def next_name(self) -> str:
        """Name the next version gets (after every folder, broken ones included)."""
        numbers = [int(m.group(1)) for p in (self.dir.iterdir() if self.dir.is_dir() else [])
                   if (m := _NAME.fullmatch(p.name))]
        return f'v{max(numbers, default=0) + 1:04d}'

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (a worker committing, a CLI rolling back) on one modality."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK_FILE, 'a') as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def clean_tmp(self) -> list[str]:
        """Remove `.tmp-*` leftovers of processes that are gone; returns their names."""
        removed = []
        if not self.dir.is_dir():
            return removed
        for p in self.dir.iterdir():
            if not p.name.startswith(TMP_PREFIX):
                continue
            pid = p.name.rsplit('-', 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                continue  # another live writer's
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p.name)
        if removed:
            fsync_dir(self.dir)
        return removed

    @contextmanager
    def build(self) -> Iterator[Build]:
        """Build a version in a temp folder; commit it when the block ends without error.

        The block writes the model files into `build.path` and the record into `build.info`
        (decision and reason at least). Any exception (a crash, a preemption) removes the temp
        folder and leaves no version. On success version.json is written, everything fsynced,
        and the folder renamed to its version name.
        """
        with self._locked():
            self.clean_tmp()
            name = self.next_name()
        tmp = self.dir / f'{TMP_PREFIX}{name}-{os.getpid()}'
        tmp.mkdir()
        b = Build(name, tmp)
        try:
            yield b
            self._commit(b)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _commit(self, b: Build) -> Version:
        if b.info.get('decision') not in DECISIONS:
            raise VersionError(f"version record needs a decision in {DECISIONS}, "
                               f"got {b.info.get('decision')!r}")
        with self._locked():
            # A concurrent build may have taken the name meanwhile: take the next free one.
            name = b.name if not (self.dir / b.name).exists() else self.next_name()
            info = {'created_at': time.time(), **b.info, 'version': name,
                    'modality': self.modality}
            with open(b.path / VERSION_FILE, 'w') as fh:
                fh.write(json.dumps(info, indent=1, sort_keys=True) + '\n')
            fsync_tree(b.path)
            os.rename(b.path, self.dir / name)
            fsync_dir(self.dir)
        b.name, b.path, b.info = name, self.dir / name, info
        return Version(name, self.dir / name, info)

    def promote(self, name: str, reason: str = 'promoted') -> dict[str, Any]:
        """Make a version (or 'packaged') the live one; returns the new live.json.

        Raises:
            VersionError: the version does not exist, is broken, or was rejected.
        """
        with self._locked():
            self.clean_tmp()
            if name == PACKAGED:
                path = ''
            else:
                v = self.get(name)
                if v.decision != 'promoted':
                    raise VersionError(f'{self.modality} {name} was {v.decision or "not"} '
                                       f'promoted ({v.info.get("reason", "")}): not made live')
                path = str(v.path)
            current = self.live()
            doc = {'version': name, 'path': path, 'previous': current['version'],
                   'promoted_at': time.time(), 'reason': reason}
            write_json_atomic(self.dir / LIVE_FILE, doc)
        return doc

    def rollback(self, name: str) -> dict[str, Any]:
        """Make an older version (or 'packaged') live again; live.json's previous keeps the
        version it replaces."""
        current = self.live_version()
        if name == current:
            raise VersionError(f'{self.modality} {name} is already live')
        if name != PACKAGED and current != PACKAGED and _NAME.fullmatch(name) \
                and int(name[1:]) > int(current[1:]):
            raise VersionError(f'{name} is newer than the live {current}: not a rollback')
        return self.promote(name, reason=f'rollback from {current}')

    # ------------------------------------------------------------------ listing
    def rows(self) -> list[dict[str, Any]]:
        """One row per version for listings (newest last), with 'live' marking the live one."""
        live = self.live_version()
        out = [{'version': PACKAGED, 'decision': '', 'base': '', 'inputs': None,
                'day_recon_before': None, 'day_recon_after': None,
                'heldout_recon_before': None, 'heldout_recon_after': None,
                'created_at': None, 'reason': 'shipped with the package',
                'live': live == PACKAGED, 'broken': ''}]
        for v in self.versions():
            val = v.info.get('validation', {}) if isinstance(v.info, dict) else {}
            out.append({'version': v.name, 'decision': v.decision, 'base': v.base,
                        'inputs': (v.info.get('data') or {}).get('count'),
                        'day_recon_before': val.get('day_recon_before'),
                        'day_recon_after': val.get('day_recon_after'),
                        'heldout_recon_before': val.get('heldout_recon_before'),
                        'heldout_recon_after': val.get('heldout_recon_after'),
                        'created_at': v.info.get('created_at'),
                        'reason': v.info.get('reason', ''), 'live': v.name == live,
                        'broken': v.broken})
        return out


def live_dir(root: str | Path, modality: str) -> Path:
    """Folder of the live model of a modality under a versions root (packaged when none)."""
    return ModelVersions(root, modality).live_path()


def _fmt(x: Any) -> str:
    return '-' if x is None else f'{x:.5f}' if isinstance(x, float) else str(x)


def format_rows(modality: str, rows: list[dict[str, Any]]) -> str:
    """A plain-text table of ModelVersions.rows() ('*' marks the live version)."""
    head = ('', 'version', 'decision', 'base', 'inputs', 'day before', 'day after',
            'held-out before', 'held-out after', 'reason')
    table = [head] + [(
        '*' if r['live'] else '', r['version'],
        f"broken: {r['broken']}" if r['broken'] else r['decision'] or '-', r['base'] or '-',
        _fmt(r['inputs']), _fmt(r['day_recon_before']), _fmt(r['day_recon_after']),
        _fmt(r['heldout_recon_before']), _fmt(r['heldout_recon_after']),
        r['reason'] or '') for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head) - 1)]
    lines = [f'{modality}:']
    for row in table:
        lines.append('  ' + '  '.join(str(c).ljust(w) for c, w in zip(row, widths))
                     + '  ' + str(row[-1]))
    return '\n'.join(line.rstrip() for line in lines)
