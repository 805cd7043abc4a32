"""Conversions between memory records and sage_interfaces messages (node shell only)."""
from __future__ import annotations

from collections.abc import Mapping
import json
from typing import Any

import numpy as np
from sage_interfaces.msg import Experience

from sage_common.convert import set_stamp
from sage_common.stamps import to_sec
from sage_memory.errors import QueryError
from sage_memory.store.models import ExperienceRecord
from sage_memory.index.recall import Query


def experience_to_msg(rec: ExperienceRecord, frame_id: str = '') -> Experience:
    """Experience message of a stored record (codes and preview included)."""
    msg = Experience()
    set_stamp(msg.header, rec.stamp)
    msg.header.frame_id = frame_id
    msg.uuid = rec.uuid
    msg.device_id = rec.device_id
    msg.session = rec.session
    msg.modality = rec.modality
    for name in ('surprise', 'novelty', 'arousal', 'reward', 'conflict', 'salience'):
        setattr(msg, name, float(getattr(rec, name)))
    msg.metabolic_state = rec.metabolic_state
    if rec.codes is not None:
        msg.codes = np.ascontiguousarray(rec.codes, dtype=np.uint16).ravel().tolist()
    if rec.embedding is not None:
        msg.embedding = np.asarray(rec.embedding, dtype=np.float32).tolist()
    msg.model_version = str(rec.extra.get('model_version', ''))
    msg.preview_format = rec.preview_format
    msg.preview = bytes(rec.preview)
    msg.text = rec.text
    msg.tags = list(rec.tags) + ([f'kind:{rec.kind}'] if rec.kind != 'experience' else [])
    msg.score = float(rec.score)
    return msg


def query_from_request(req: Any) -> Query:
    """Query from a QueryMemory request.

    Raises:
        QueryError: a field cannot be converted.
    """
    try:
        emb = np.asarray(req.embedding, dtype=np.float32) if len(req.embedding) else None
        return Query(k=int(req.k), text=str(req.text), embedding=emb,
                     modality=str(req.modality), min_salience=float(req.min_salience),
                     start=to_sec(req.start), end=to_sec(req.end))
    except (TypeError, ValueError) as err:
        raise QueryError(f'malformed query: {err}') from err


def parse_checkpoint(data: str) -> tuple[str, dict[str, Any]]:
    """Key and state of a /sage/memory/checkpoint message: {"key": str, "state": {...}}.

    Raises:
        ValueError: the text is not such a JSON object.
    """
    doc = json.loads(data)
    if not isinstance(doc, Mapping):
        raise ValueError('checkpoint must be a JSON object')
    key, state = doc.get('key'), doc.get('state')
    if not isinstance(key, str) or not key or key.startswith('_') or len(key) > 128:
        raise ValueError(f'checkpoint key must be a name of 1..128 characters, got {key!r}')
    if not isinstance(state, Mapping):
        raise ValueError(f'checkpoint {key!r}: state must be a JSON object')
    return key, dict(state)
