"""SQLAlchemy 2.0 models of the memory store and the plain record they map to.

The tables, created and changed only by the Alembic migrations in `sage_memory/store/migrations`:

- `experiences`: one row per stored input (kind 'experience'), per context input kept around a
  salient one (kind 'context'), or per consolidated pattern written by sleep (kind 'pattern').
  `id` is local to one database; `uuid` is the globally unique key used across devices.
- `state`: a key-value table of JSON documents (SNARC statistics, trust, thresholds...).
- `tombstones`: uuids evicted by retention here, so a later import or sync does not bring
  them back into this database.
- `training_inputs`: the encoder input of a stored experience (frame or audio window) and its
  pre-refinement codes, kept for sleep to retrain the encoders on
  (sage_memory.store.training_inputs).
- `shared_models`: encoder versions a host promoted, for the other hosts of one robot to adopt
  (sage_memory.sync.shared_models).

Arrays are stored as little-endian bytes (float16 embeddings, bit-packed codes: see
sage_memory.store.codec; older rows hold float32 and uint16 and read back the same)
so SQLite and PostgreSQL hold the same bytes and an export file is portable.
"""
from __future__ import annotations

from collections.abc import Sequence
import copy
from dataclasses import dataclass, field
import json
import math
import operator
from typing import Any

import numpy as np
from sqlalchemy import (BigInteger, Boolean, Double, Float, Index, Integer, LargeBinary,
                        String, Table, Text, UniqueConstraint)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sage_memory.store.codec import (decode_codes, decode_embedding, encode_codes,
                                     encode_embedding, encode_embeddings)

KINDS = ('experience', 'context', 'pattern')
# Kinds that recall returns and the vector index holds (context rows are kept for replay).
RECALL_KINDS = ('experience', 'pattern')
FIDELITIES = ('full', 'summary', 'pattern')


class Base(DeclarativeBase):
    """Declarative base of the memory tables."""


class ExperienceRow(Base):
    """One stored experience, context input or consolidated pattern."""

    __tablename__ = 'experiences'
    # AUTOINCREMENT: ids are never reused after eviction, so a saved index stays consistent.
    __table_args__ = (
        Index('ix_experiences_modality_stamp', 'modality', 'stamp'),
        Index('ix_experiences_salience', 'salience'),
        Index('ix_experiences_modality_salience', 'modality', 'salience'),
        # Partial: only pattern rows (few) pay for it; the outbox reads them back by id.
        Index('ix_experiences_patterns', 'id', sqlite_where=sql_text("kind = 'pattern'"),
              postgresql_where=sql_text("kind = 'pattern'")),
        UniqueConstraint('uuid', name='uq_experiences_uuid'),
        {'sqlite_autoincrement': True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(32), nullable=False)
    device_id: Mapped[str] = mapped_column(String(64), nullable=False)
    session: Mapped[str] = mapped_column(String(64), nullable=False, default='')
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default='experience')
    stamp: Mapped[float] = mapped_column(Double, nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    input_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    surprise: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    novelty: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    arousal: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    reward: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    conflict: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    salience: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    threshold: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    metabolic_state: Mapped[str] = mapped_column(String(16), nullable=False, default='')
    fidelity: Mapped[str] = mapped_column(String(8), nullable=False, default='full')
    grid_h: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    grid_w: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    codebook_size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    codes: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_dim: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    preview_format: Mapped[str] = mapped_column(String(16), nullable=False, default='')
    preview: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    text: Mapped[str] = mapped_column(Text, nullable=False, default='')
    pose: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[str] = mapped_column(Text, nullable=False, default='')
    extra: Mapped[str] = mapped_column(Text, nullable=False, default='{}')
    context_of: Mapped[str | None] = mapped_column(String(32), nullable=True)
    consolidated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    pattern_uuid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)


class StateRow(Base):
    """One checkpointed state document (JSON) under a key."""

    __tablename__ = 'state'

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[float] = mapped_column(Double, nullable=False)
    device_id: Mapped[str] = mapped_column(String(64), nullable=False, default='')


class TombstoneRow(Base):
    """A uuid evicted by retention in this database."""

    __tablename__ = 'tombstones'

    uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    evicted_at: Mapped[float] = mapped_column(Double, nullable=False)


class TrainingInputRow(Base):
    """The encoder input and pre-refinement codes of one stored experience (same uuid).

    The blobs are the last columns: a SQLite scan of the small columns (the budget's ranking)
    then stays off their overflow pages.
    """

    __tablename__ = 'training_inputs'
    __table_args__ = (Index('ix_training_inputs_modality_stamp', 'modality', 'stamp'),)

    uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    stamp: Mapped[float] = mapped_column(Double, nullable=False)
    salience: Mapped[float] = mapped_column(Float, nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    sample_rate: Mapped[int] = mapped_column(Integer, nullable=False)
    samples: Mapped[int] = mapped_column(Integer, nullable=False)
    grid_h: Mapped[int] = mapped_column(Integer, nullable=False)
    grid_w: Mapped[int] = mapped_column(Integer, nullable=False)
    codebook_size: Mapped[int] = mapped_column(Integer, nullable=False)
    nbytes: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[float] = mapped_column(Double, nullable=False)
    codes_initial: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class SharedModelRow(Base):
    """An encoder version one host promoted, packed for the other hosts to adopt.

    `archive` is a tar of the version's folder (ONNX files, weights, quality report,
    version.json); `info` its version.json; the origin is (device_id, modality, version).
    """

    __tablename__ = 'shared_models'
    __table_args__ = (
        UniqueConstraint('device_id', 'modality', 'version', name='uq_shared_models_origin'),
        {'sqlite_autoincrement': True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[str] = mapped_column(String(16), nullable=False)
    info: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    nbytes: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[float] = mapped_column(Double, nullable=False)
    archive: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


# Core Table objects for statements that bypass the ORM.
EXPERIENCES: Table = ExperienceRow.__table__  # type: ignore[assignment]
STATE: Table = StateRow.__table__  # type: ignore[assignment]
TOMBSTONES: Table = TombstoneRow.__table__  # type: ignore[assignment]
TRAINING_INPUTS: Table = TrainingInputRow.__table__  # type: ignore[assignment]
SHARED_MODELS: Table = SharedModelRow.__table__  # type: ignore[assignment]
# Columns copied between databases (all but the local id).
PORTABLE_COLUMNS = tuple(c.name for c in EXPERIENCES.columns if c.name != 'id')
# A row's values in PORTABLE_COLUMNS order, from record_to_row's mapping (at C speed).
_IN_COLUMN_ORDER = operator.itemgetter(*PORTABLE_COLUMNS)
# Columns needed to rebuild the vector index (no previews or codes).
INDEX_COLUMNS = ('id', 'modality', 'embedding_dim', 'embedding', 'stamp', 'salience')


@dataclass(frozen=True)
class ExperienceRecord:
    """A stored experience as plain data (what the core produces and recall returns).

    Attributes:
        uuid: globally unique key (UUID4 hex).
        device_id: device that stored it.
        session: run that stored it.
        kind: 'experience', 'context' (kept around a salient input) or 'pattern' (sleep).
        stamp: capture stamp of the input, float seconds.
        modality: 'vision', 'audio', 'imu' or 'language'.
        input_seq: per-modality input counter of the source.
        surprise, novelty, arousal, reward, conflict: SNARC axes in [0, 1].
        salience: combined salience in [0, 1].
        threshold: attend threshold in force.
        metabolic_state: metabolic state when stored.
        fidelity: 'full' (verbatim latent), 'summary' (no codes) or 'pattern'.
        codes: (grid_h, grid_w) uint16 codebook indices, or None.
        codebook_size: size of the codebook indexed by codes.
        embedding: (D,) float32 embedding, or None.
        preview_format: 'webp', 'jpeg', 'wav' (older rows 's16le'), 'text' or ''.
        preview: preview bytes.
        text: text of a language input.
        pose: robot pose (x, y, z, qx, qy, qz, qw) or None.
        tags: free tags.
        extra: JSON-able extras (encoder features, refinement report, pattern members).
        context_of: uuid of the salient experience this context row belongs to.
        consolidated: True for consolidated patterns (never evicted).
        pattern_uuid: pattern this experience was consolidated into, if any.
        created_at: wall time of storage.
        row_id: local database id (0 before commit).
        score: similarity when returned by a query, else 0.
        codes_initial: (grid_h, grid_w) code grid before refinement, set by the policy on a
            stored experience and kept with its training input (not in the experiences table).
    """

    uuid: str
    device_id: str
    stamp: float
    modality: str
    session: str = ''
    kind: str = 'experience'
    input_seq: int = 0
    surprise: float = 0.0
    novelty: float = 0.0
    arousal: float = 0.0
    reward: float = 0.0
    conflict: float = 0.0
    salience: float = 0.0
    threshold: float = 0.0
    metabolic_state: str = ''
    fidelity: str = 'full'
    codes: np.ndarray | None = None
    codebook_size: int = 0
    embedding: np.ndarray | None = None
    preview_format: str = ''
    preview: bytes = b''
    text: str = ''
    pose: tuple[float, ...] | None = None
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    context_of: str | None = None
    consolidated: bool = False
    pattern_uuid: str | None = None
    created_at: float = 0.0
    row_id: int = 0
    score: float = 0.0
    codes_initial: np.ndarray | None = None

    def with_ids(self, row_id: int, score: float = 0.0) -> ExperienceRecord:
        """Copy with the local row id (and a query score) filled in."""
        # copy + set on the private copy: 50x cheaper than dataclasses.replace (hot path).
        new = copy.copy(self)
        object.__setattr__(new, 'row_id', int(row_id))
        object.__setattr__(new, 'score', float(score))
        return new


# json.dumps(rec.extra, sort_keys=True, separators=(',', ':')) with one encoder for every row
# (json.dumps builds a new encoder per call when given options).
_EXTRA_JSON = json.JSONEncoder(sort_keys=True, separators=(',', ':'))


def rows_to_insert(records: Sequence[ExperienceRecord]) -> list[tuple[Any, ...]]:
    """record_to_row of each record as a tuple in PORTABLE_COLUMNS order (the writer's
    executemany), the embeddings encoded a batch at a time."""
    with_emb = [i for i, r in enumerate(records)
                if r.embedding is not None and np.size(r.embedding)]
    encoded: list[bytes | None] = [None] * len(records)
    for i, b in zip(with_emb, encode_embeddings([records[i].embedding for i in with_emb]),
                    strict=True):
        encoded[i] = b
    return [_IN_COLUMN_ORDER(record_to_row(r, e)) for r, e in zip(records, encoded,
                                                                      strict=True)]


def _float(value: float) -> float:
    # NaN/inf would break ORDER BY and JSON export; a score is in [0, 1] anyway.
    v = float(value)
    return v if math.isfinite(v) else 0.0  # math, not numpy: 20x cheaper per scalar


def record_to_row(rec: ExperienceRecord, embedding: bytes | None = None) -> dict[str, Any]:
    """Column values of a record (without the local id).

    Args:
        rec: the record.
        embedding: its embedding already encoded (encode_embeddings), or None.
    """
    codes = rec.codes
    grid_h = grid_w = 0
    code_bytes = None
    if codes is not None and codes.size:
        arr = np.asarray(codes)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        grid_h, grid_w = int(arr.shape[0]), int(arr.shape[1])
        code_bytes = encode_codes(arr, int(rec.codebook_size))
    emb_bytes = None
    dim = 0
    if rec.embedding is not None and np.size(rec.embedding):
        dim = int(np.size(rec.embedding))
        emb_bytes = embedding if embedding is not None else encode_embedding(rec.embedding)
    return {
        'uuid': rec.uuid[:32], 'device_id': rec.device_id[:64], 'session': rec.session[:64],
        'kind': rec.kind[:16], 'stamp': float(rec.stamp), 'modality': rec.modality[:16],
        'input_seq': int(rec.input_seq),
        'surprise': _float(rec.surprise), 'novelty': _float(rec.novelty),
        'arousal': _float(rec.arousal), 'reward': _float(rec.reward),
        'conflict': _float(rec.conflict), 'salience': _float(rec.salience),
        'threshold': _float(rec.threshold), 'metabolic_state': rec.metabolic_state[:16],
        'fidelity': rec.fidelity[:8], 'grid_h': grid_h, 'grid_w': grid_w,
        'codebook_size': int(rec.codebook_size), 'codes': code_bytes,
        'embedding_dim': dim, 'embedding': emb_bytes,
        'preview_format': rec.preview_format[:16], 'preview': bytes(rec.preview) or None,
        'text': rec.text,
        'pose': json.dumps([float(v) for v in rec.pose]) if rec.pose is not None else None,
        'tags': ','.join(rec.tags),
        'extra': _EXTRA_JSON.encode(rec.extra),
        'context_of': rec.context_of, 'consolidated': bool(rec.consolidated),
        'pattern_uuid': rec.pattern_uuid, 'created_at': float(rec.created_at),
    }


def row_to_record(row: Any, score: float = 0.0) -> ExperienceRecord:
    """Record from a result row (a SQLAlchemy Row or mapping with the table's columns)."""
    m = row._mapping if hasattr(row, '_mapping') else row
    codes = None
    if m['codes'] is not None and m['grid_h'] and m['grid_w']:
        codes = decode_codes(m['codes'], m['grid_h'], m['grid_w'], int(m['codebook_size']))
    embedding = None
    if m['embedding'] is not None and m['embedding_dim']:
        embedding = decode_embedding(m['embedding'], int(m['embedding_dim']))
    pose = tuple(json.loads(m['pose'])) if m['pose'] else None
    return ExperienceRecord(
        uuid=m['uuid'], device_id=m['device_id'], session=m['session'], kind=m['kind'],
        stamp=float(m['stamp']), modality=m['modality'], input_seq=int(m['input_seq']),
        surprise=float(m['surprise']), novelty=float(m['novelty']),
        arousal=float(m['arousal']), reward=float(m['reward']),
        conflict=float(m['conflict']), salience=float(m['salience']),
        threshold=float(m['threshold']), metabolic_state=m['metabolic_state'],
        fidelity=m['fidelity'], codes=codes, codebook_size=int(m['codebook_size']),
        embedding=embedding, preview_format=m['preview_format'],
        preview=bytes(m['preview'] or b''), text=m['text'], pose=pose,
        tags=tuple(t for t in (m['tags'] or '').split(',') if t),
        extra=json.loads(m['extra'] or '{}'), context_of=m['context_of'],
        consolidated=bool(m['consolidated']), pattern_uuid=m['pattern_uuid'],
        created_at=float(m['created_at']), row_id=int(m['id']), score=float(score))
