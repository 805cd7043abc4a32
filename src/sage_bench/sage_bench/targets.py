"""`sage bench targets`: where the encoders' refinement targets come from.

The vision and audio encoders stop refining an input once its reconstruction error is at or
below `irp.target`, set to the packaged model's median error before refinement on realistic
rooms of tuning seeds 2-7 (`target_seeds`): refinement then goes to the worse half of what a room
looks and sounds like, and a model that sleep fitted to its room refines less. This benchmark
replays those scenes through the profile's encoders, as `sage bench salience` does (the same
scene and encoded caches), and reports per modality the median and quartiles of the error
before refinement, the profile's target and their ratio. Run it after retraining a packaged
model and set the median it prints as the target in every profile.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sage_bench.salience import cache_dir, map_seeds, scene
from sage_bench.sleep import MODALITIES
from sage_bringup.profile import load_profile
from sage_common.errors import SageError
from sage_eval.encoded_cache import cached_inputs
from sage_eval.inputs import REORDER_S

ENCODER_NODE = {'vision': 'vision_encoder', 'audio': 'audio_encoder'}
# Tuning seeds 2-7: rooms 0 and 1 are the tuning rooms of `sage bench sleep --seed-set tuning`,
# whose before/after the target shapes, so they are not the ones it is read from.
FIRST_SEED = 2
DEFAULT_SEEDS = 6
# A target this far (relative) from the median it is meant to be is stale: a model was
# retrained and its profiles were not updated.
TOLERANCE = 0.15


def target_seeds(n: int) -> list[int]:
    """The n tuning seeds targets are read on (from FIRST_SEED).

    Raises:
        SageError: n out of range.
    """
    # lazy: keeps cv2 out of this module's import
    from sage_eval.realistic import TUNING_SEEDS
    pool = TUNING_SEEDS[FIRST_SEED:]
    if not 1 <= n <= len(pool):
        raise SageError(f'--seeds must be 1..{len(pool)} for the targets benchmark')
    return list(pool[:n])


def initial_errors(bag: Path, node_params: dict[str, dict[str, Any]], cache: Path
                   ) -> dict[str, list[float]]:
    """Reconstruction error before refinement of every vision and audio input of a bag, as the
    profile's encoders see it (`LatentRecord.energy_initial`)."""
    out: dict[str, list[float]] = {m: [] for m in MODALITIES}
    for item in cached_inputs(bag, node_params, cache, reorder_s=REORDER_S):
        m = getattr(item, 'modality', None)
        if m in out and np.isfinite(item.energy_initial):
            out[m].append(float(item.energy_initial))
    return out


def _run_seed(seed: int, node_params: dict[str, dict[str, Any]], program: str,
              root: Path) -> dict[str, list[float]]:
    return initial_errors(scene('realistic', seed, program, root), node_params,
                          root / 'encoded')


def summarise(errors: dict[str, list[float]], params: dict[str, dict[str, Any]],
              tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Per modality: inputs, median and quartiles of the errors, the profile's irp.target,
    target / median and whether it is within tolerance of it."""
    out: dict[str, Any] = {}
    for m in MODALITIES:
        x = np.asarray(errors.get(m, []), np.float64)
        target = float(params.get(ENCODER_NODE[m], {}).get('irp.target', 0.0))
        if not len(x):
            out[m] = {'n': 0, 'median': None, 'p25': None, 'p75': None, 'target': target,
                      'ratio': None, 'ok': False}
            continue
        p25, med, p75 = (float(v) for v in np.percentile(x, (25, 50, 75)))
        ratio = target / med if med > 0 else None
        out[m] = {'n': int(len(x)), 'median': med, 'p25': p25, 'p75': p75, 'target': target,
                  'ratio': ratio,
                  'ok': ratio is not None and abs(ratio - 1.0) <= tolerance}
    return out


def run_bench(seeds: int = DEFAULT_SEEDS, profile: str = 'nano', program: str = 'full',
              overrides: list[str] | None = None, cache: Path | None = None,
              workers: int = 2, seconds: float | None = None,
              progress: Callable[[float, float | None], None] | None = None
              ) -> dict[str, Any]:
    """Median reconstruction error before refinement on tuning rooms, against irp.target.

    Args:
        seeds: how many tuning seeds, from seed FIRST_SEED (default 2-7).
        profile: profile whose encoders (and targets) are read.
        program: realistic program ('full' or 'short').
        overrides: profile overrides, node.param=value.
        cache: scene cache folder (default `sage_bench.salience.cache_dir()`).
        workers: seeds replayed at once (processes).
        seconds: refused (the scenes fix the length).
        progress: called with (rooms done, rooms) as each is measured.

    Returns:
        {'profile', 'program', 'seed_set', 'seeds', 'tolerance', 'modalities': {m: {...}}}.
    """
    if seconds is not None:
        raise SageError('the targets benchmark takes --seeds, not --seconds')
    chosen = target_seeds(seeds)
    params = {n.name: dict(n.parameters) for n in load_profile(profile, overrides or []).nodes}
    root = cache or cache_dir()
    per_seed = map_seeds(_run_seed, [(s, params, program, root) for s in chosen], workers,
                         progress)
    errors = {m: [v for e in per_seed for v in e[m]] for m in MODALITIES}
    return {'profile': profile, 'program': program, 'seed_set': 'tuning', 'seeds': chosen,
            'overrides': overrides or [], 'tolerance': TOLERANCE,
            'modalities': summarise(errors, params)}


def print_table(result: dict[str, Any], echo: Any = print) -> None:
    echo(f"{'modality':<8} {'inputs':>7} {'p25':>8} {'median':>8} {'p75':>8} "
         f"{'target':>8} {'target/median':>14}")
    for m, r in result['modalities'].items():
        if not r['n']:
            echo(f'{m:<8} {0:>7}   (no inputs)')
            continue
        flag = '' if r['ok'] else f"  outside +-{result['tolerance']:.0%}: set the median"
        echo(f"{m:<8} {r['n']:>7} {r['p25']:>8.4f} {r['median']:>8.4f} {r['p75']:>8.4f} "
             f"{r['target']:>8.4f} {r['ratio']:>14.2f}{flag}")
