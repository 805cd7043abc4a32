"""Encoder versions across hosts: the host that trains shares, the others adopt.

When the graph spans two hosts, sleep's retraining can run on the bigger one (the assist host,
whose memory node works on the shared PostgreSQL store). A version it promotes is written into
the shared store's `shared_models` table: a tar of the version's folder, its version.json and
a SHA-256. The edge's outbox worker, which already talks to that store, adopts what other
hosts shared: each archive is checked, unpacked into a new local version (the same atomic
build as a local retraining: a temp folder, fsync, rename) whose record names its origin, and
made live, so the encoders hot-swap it as they do a local promotion.

Adoption keeps a cursor (the shared table's id) in the local state table, advanced after each
version is built. A crash between the build and the cursor finds the version by its origin
next time and does not build it twice. An archive that fails its checksum or holds anything
but plain files is skipped with an error (never unpacked) and the cursor moves past it.
Adopted versions are not shared back.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import hashlib
import io
import json
import logging
from pathlib import Path
import tarfile
import time
from typing import Any

from sqlalchemy import Engine, select

from sage_encoders.model_versions import (PACKAGED, VERSION_FILE, ModelVersions,
                                          VersionError)
from sage_memory.store.models import SHARED_MODELS
from sage_memory.store.statements import INTERNAL_PREFIX, insert_ignore, read_state, write_state

log = logging.getLogger(__name__)

ADOPT_KEY_PREFIX = f'{INTERNAL_PREFIX}adopted:'
# Rows read per pull: a version is about 1 MB, so a backlog is taken a few at a time.
PULL_LIMIT = 4


def pack(folder: Path) -> bytes:
    """A gzip tar of the folder's plain files (version.json left out: the receiver writes its
    own record)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz', compresslevel=6) as tar:
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.is_symlink() and p.name != VERSION_FILE:
                tar.add(p, arcname=p.name, recursive=False)
    return buf.getvalue()


def unpack(archive: bytes, into: Path) -> list[str]:
    """Write the archive's files into a folder; returns their names.

    Raises:
        ValueError: a member that is not a plain file with a plain name (no folders, links or
            paths: an archive from another host is not trusted to write elsewhere), or a
            broken archive.
    """
    names = []
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode='r:gz') as tar:
            for member in tar.getmembers():
                name = member.name
                if not member.isfile() or '/' in name or name in ('', '.', '..') \
                        or name == VERSION_FILE:
                    raise ValueError(f'archive member {name!r} is not a plain file')
                src = tar.extractfile(member)
                if src is None:
                    raise ValueError(f'archive member {name!r} has no data')
                (into / name).write_bytes(src.read())
                names.append(name)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f'broken archive: {err}') from err
    if not names:
        raise ValueError('empty archive')
    return names


def share_live(engine: Engine, versions_root: str | Path, modalities: Sequence[str],
               device_id: str, clock: Callable[[], float] = time.time) -> list[str]:
    """Write each modality's live version into the store's shared_models (once per origin).

    The packaged model and versions adopted from another host are not shared. Returns what
    was written ('vision v0003', ...).
    """
    shared = []
    for m in modalities:
        versions = ModelVersions(versions_root, m)
        name = versions.live_version()
        if name == PACKAGED:
            continue
        try:
            v = versions.get(name)
        except VersionError as err:
            log.warning('not shared: %s', err)
            continue
        if v.info.get('origin'):
            continue
        with engine.connect() as conn:
            known = conn.execute(select(SHARED_MODELS.c.id).where(
                SHARED_MODELS.c.device_id == device_id, SHARED_MODELS.c.modality == m,
                SHARED_MODELS.c.version == name)).first()
        if known is not None:
            continue
        archive = pack(v.path)
        with engine.begin() as conn:
            conn.execute(insert_ignore(engine, SHARED_MODELS), [{
                'device_id': device_id, 'modality': m, 'version': name,
                'info': json.dumps(v.info, sort_keys=True),
                'sha256': hashlib.sha256(archive).hexdigest(), 'nbytes': len(archive),
                'created_at': clock(), 'archive': archive}])
        shared.append(f'{m} {name}')
    return shared


@dataclass
class Adopted:
    """What one pull did: versions made here, origins skipped (with why)."""

    versions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Adopter:
    """Adopts the versions other hosts shared into this host's model versions.

    Args:
        local: this host's store (its state table keeps the cursor).
        versions_root: this host's model versions folder (<data_dir>/models).
        modalities: the modalities adopted.
        device_id: this host's device id (its own shared rows are not adopted).
        key_suffix: names the shared store (the outbox's cursor key suffix).
        make_live: promote what is adopted (else it is kept, not live).
    """

    def __init__(self, local: Engine, versions_root: str | Path, modalities: Sequence[str],
                 device_id: str, key_suffix: str, make_live: bool = True) -> None:
        self.local = local
        self.versions_root = Path(versions_root)
        self.modalities = tuple(modalities)
        self.device_id = device_id
        self.key = ADOPT_KEY_PREFIX + key_suffix
        self.make_live = make_live

    def cursor(self) -> int:
        """The last shared row id this host has dealt with."""
        with self.local.connect() as conn:
            return int((read_state(conn, self.key) or {'id': 0})['id'])

    def _advance(self, row_id: int) -> None:
        now = time.time()
        with self.local.begin() as conn:
            write_state(conn, self.local, self.key, {'id': row_id, 'at': now}, self.device_id,
                        now)

    def pull(self, remote: Engine) -> Adopted:
        """Adopt the next shared versions from the remote store (at most PULL_LIMIT).

        Database faults propagate (SQLAlchemyError): the cursor stays and the next pull
        tries again.
        """
        out = Adopted()
        t = SHARED_MODELS.c
        with remote.connect() as conn:
            rows = conn.execute(select(SHARED_MODELS).where(
                t.id > self.cursor(), t.device_id != self.device_id,
                t.modality.in_(self.modalities)).order_by(t.id).limit(PULL_LIMIT)).all()
        for row in rows:
            origin = {'device_id': row.device_id, 'modality': row.modality,
                      'version': row.version}
            label = f'{row.modality} {row.version} of {row.device_id}'
            try:
                name = self._adopt(row, origin)
            except ValueError as err:
                out.skipped.append(f'{label}: {err}')
                log.error('shared version %s not adopted: %s', label, err)
            else:
                out.versions.append(f'{row.modality} {name} (from {label})')
            self._advance(int(row.id))
        return out

    def _adopt(self, row: Any, origin: dict[str, str]) -> str:
        archive = bytes(row.archive)
        if hashlib.sha256(archive).hexdigest() != row.sha256:
            raise ValueError('the archive does not match its SHA-256')
        versions = ModelVersions(self.versions_root, row.modality)
        name = next((v.name for v in versions.versions()
                     if not v.broken and v.info.get('origin') == origin), None)
        if name is None:
            try:
                info = json.loads(row.info)
            except ValueError as err:
                raise ValueError(f'unreadable version record: {err}') from err
            with versions.build() as b:
                unpack(archive, b.path)
                # The origin's validation and data summary, so listings show its figures.
                b.info = {'decision': 'promoted', 'origin': origin, 'origin_info': info,
                          'base': str(info.get('base', '')),
                          'validation': info.get('validation', {}),
                          'data': info.get('data', {}),
                          'reason': f"adopted from {origin['device_id']}: "
                                    f"{info.get('reason', 'promoted there')}"}
            name = b.name
        if self.make_live and versions.live_version() != name:
            versions.promote(name, reason=f"adopted from {origin['device_id']} "
                                          f"{origin['version']}")
        return name
