"""What a latent brings, made safe to score: a unit embedding and finite features.

A bad value is reported through `report(level, key, message)` (counted and sent on
/diagnostics by the core) and left out or zeroed; scoring goes on.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import math
from typing import Any

import numpy as np

from sage_common.health import Level
from sage_snarc.novelty import unit

Report = Callable[[Level, str, str], None]


def clean_embedding(m: str, emb: Any, report: Report) -> np.ndarray | None:
    """The unit embedding (non-finite values zeroed), or None when unusable."""
    try:
        x = np.asarray(emb, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        report(Level.WARN, 'malformed', f'{m}: embedding is not numeric')
        return None
    if x.size and not np.isfinite(x).all():
        report(Level.WARN, 'non_finite', f'{m}: non-finite embedding values zeroed')
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    out = unit(x)
    if out is None:
        report(Level.WARN, 'empty_embedding', f'{m}: empty or zero embedding')
    return out


def clean_features(m: str, feats: Mapping[str, Any], report: Report) -> dict[str, float]:
    """The finite features as floats (the others are reported and left out)."""
    out = {}
    for k, val in feats.items():
        try:
            f = float(val)
        except (TypeError, ValueError):
            f = math.nan
        if math.isfinite(f):
            out[str(k)] = f
        else:
            report(Level.WARN, 'non_finite', f'{m}: feature {k} is not finite')
    return out
