"""Sleep consolidation: cluster similar unconsolidated experiences into pattern rows.

A first real version of the seam behind /sage/memory/sleep. Unconsolidated experiences (kind
'experience', no pattern yet, with an embedding) are grouped by (modality, dim) and clustered
greedily by cosine similarity: each one joins the first existing pattern or new cluster whose
leader is at least `similarity` close, else it leads a new cluster. A new cluster with at least
`min_cluster` members becomes a consolidated 'pattern' row (normalised mean embedding, mean
scores, peak salience, the most salient member's preview and text); members get its uuid in
`pattern_uuid`. Patterns are never evicted; their members stay evictable. Deterministic: rows
are taken in id order.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import time
from typing import Any

import numpy as np
from sqlalchemy import Connection, select, update

from sage_memory.store.codec import decode_embeddings
from sage_memory.index.vectors import normalise
from sage_memory.store.models import EXPERIENCES, ExperienceRecord, row_to_record
from sage_memory.store.memory_store import MemoryStore, insert_records, new_uuid
from sage_common.vocabulary import MetabolicState

# Member uuids listed in a pattern's extra (the full list is in members' pattern_uuid).
_MAX_LISTED = 64


@dataclass(frozen=True)
class SleepConfig:
    """Consolidation settings.

    Attributes:
        similarity: cosine similarity to a cluster's leader needed to join it.
        min_cluster: members needed to write a new pattern.
        max_examined: most experiences examined per sleep.
    """

    similarity: float = 0.9
    min_cluster: int = 3
    max_examined: int = 5000


@dataclass(frozen=True)
class SleepReport:
    """What one sleep did."""

    examined: int
    consolidated: int
    absorbed: int
    duration_s: float
    complete: bool
    patterns: tuple[ExperienceRecord, ...] = ()


def leader_clusters(vectors: np.ndarray, threshold: float,
                    leaders: np.ndarray | None = None,
                    deadline: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, int]:
    """Greedy leader clustering by cosine similarity.

    Args:
        vectors: (N, D) embeddings (normalised here).
        threshold: similarity to a leader needed to join its cluster.
        leaders: (P, D) existing leaders (clusters 0..P-1), or None.
        deadline: returns True when time is up; the rest get label -1.

    Returns:
        (labels (N,), number of clusters including the P existing ones).
    """
    x = normalise(vectors)
    n, d = x.shape
    p = 0 if leaders is None else int(leaders.shape[0])
    centres = np.zeros((p + n, d), np.float32)
    if leaders is not None and p:
        centres[:p] = normalise(leaders)
    count = p
    labels = np.full(n, -1, np.int64)
    for i in range(n):
        if i % 256 == 0 and deadline():
            break
        if count:
            sims = centres[:count] @ x[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                labels[i] = j
                continue
        centres[count] = x[i]
        labels[i] = count
        count += 1
    return labels, count


def _pattern(members: list[ExperienceRecord], vectors: np.ndarray, device_id: str,
             session: str, now: float) -> ExperienceRecord:
    best = max(members, key=lambda r: (r.salience, r.stamp))
    mean = normalise(vectors.mean(axis=0))[0]
    def axis(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in members]))

    extra: dict[str, Any] = {
        'members': len(members), 'stamp_first': min(r.stamp for r in members),
        'stamp_last': max(r.stamp for r in members),
        'salience_mean': float(np.mean([r.salience for r in members])),
        'member_uuids': [r.uuid for r in members[:_MAX_LISTED]]}
    return ExperienceRecord(
        uuid=new_uuid(), device_id=device_id, session=session, kind='pattern',
        stamp=max(r.stamp for r in members), modality=best.modality, salience=best.salience,
        threshold=best.threshold, metabolic_state=MetabolicState.DREAM.value, fidelity='pattern',
        embedding=mean, preview_format=best.preview_format, preview=best.preview,
        text=best.text, tags=('pattern',), extra=extra, consolidated=True, created_at=now,
        surprise=axis('surprise'), novelty=axis('novelty'), arousal=axis('arousal'),
        reward=axis('reward'), conflict=axis('conflict'))


def consolidate(store: MemoryStore, cfg: SleepConfig, max_duration_s: float,
                session: str = '', clock: Callable[[], float] = time.monotonic,
                wall: Callable[[], float] = time.time,
                should_stop: Callable[[], bool] = lambda: False) -> SleepReport:
    """Run one sleep: cluster unconsolidated experiences and write patterns.

    Args:
        store: the memory store (writes go through its writer thread).
        cfg: consolidation settings.
        max_duration_s: time budget; what is left is examined by the next sleep.
        session: session written on pattern rows.
        clock: monotonic clock for the budget.
        wall: wall clock for created_at.
        should_stop: true once the sleep is cancelled: it ends as at the budget (what was
            clustered is written, the rest waits for the next sleep).

    Raises:
        MemoryStoreError: the database cannot be read or written.
    """
    t0 = clock()

    def over() -> bool:
        return clock() - t0 >= max_duration_s or should_stop()
    e = EXPERIENCES.c
    q = (select(EXPERIENCES).where(e.kind == 'experience', e.pattern_uuid.is_(None),
                                   e.embedding_dim > 0)
         .order_by(e.id).limit(cfg.max_examined))
    with store.engine.connect() as conn:
        rows = [row_to_record(r) for r in conn.execute(q)]
    groups: dict[tuple[str, int], list[tuple[ExperienceRecord, np.ndarray]]] = {}
    for r in rows:
        if r.embedding is not None:
            groups.setdefault((r.modality, int(r.embedding.size)), []).append((r, r.embedding))
    patterns: list[ExperienceRecord] = []
    assign: dict[str, list[str]] = {}
    examined = 0
    complete = True
    for (modality, dim), pairs in sorted(groups.items()):
        members = [m for m, _ in pairs]
        if over():
            complete = False
            break
        pq = select(e.uuid, e.embedding).where(e.kind == 'pattern', e.modality == modality,
                                                e.embedding_dim == dim).order_by(e.id)
        with store.engine.connect() as conn:
            existing = list(conn.execute(pq))
        leaders = (decode_embeddings([p.embedding for p in existing], dim)
                   if existing else None)
        vecs = np.stack([v for _, v in pairs])  # (N, dim)
        labels, _ = leader_clusters(vecs, cfg.similarity, leaders, over)
        done = labels >= 0
        examined += int(done.sum())
        if not done.all():
            complete = False
        n_old = len(existing)
        for lab in np.unique(labels[done]):
            idx = np.flatnonzero(labels == lab)
            uuids = [members[i].uuid for i in idx]
            if lab < n_old:
                assign.setdefault(existing[lab].uuid, []).extend(uuids)
            elif idx.size >= cfg.min_cluster:
                pat = _pattern([members[i] for i in idx], vecs[idx], store.device_id,
                               session, wall())
                patterns.append(pat)
                assign[pat.uuid] = uuids

    def apply(conn: Connection) -> dict[str, int]:
        ids = insert_records(conn, store.engine, patterns) if patterns else {}
        for puuid, uuids in assign.items():
            for i in range(0, len(uuids), 500):
                conn.execute(update(EXPERIENCES).where(
                    e.uuid.in_(uuids[i:i + 500]), e.pattern_uuid.is_(None)
                ).values(pattern_uuid=puuid))
        return ids

    ids = store.call(apply) if (patterns or assign) else {}
    written = tuple(p.with_ids(ids[p.uuid]) for p in patterns if p.uuid in ids)
    return SleepReport(examined=examined, consolidated=len(written),
                       absorbed=sum(len(v) for v in assign.values()),
                       duration_s=clock() - t0, complete=complete, patterns=written)
