"""Offline replay: the encoder cores and SnarcCore in one process over a rosbag2 bag.

`replay_bag` reads a bag (MCAP or sqlite3) with rosbags, puts messages in header-stamp order
(a bounded reorder buffer over the bag's log-time order), encodes images, audio and text with
the same encoder cores the live graph runs, feeds IMU samples, rewards and metabolic states
directly into SnarcCore, and writes one JSON line per scored input:

    {"stamp": 1700000012.3, "modality": "vision", "surprise": 0.1, "novelty": 0.0,
     "arousal": 0.02, "reward": 0.0, "conflict": 0.0, "salience": 0.05, "attend": false,
     "stored": false}

No wall clock and no randomness: the same bag and parameters give a byte-identical file.
A stored input is added to SNARC's memory index at once (the live graph does it when the
memory node echoes it on /sage/memory/stored). Modalities without raw topics in the bag but
with recorded latents (/sage/<modality>/latent) are scored from the latents. Recorded ATP
budgets (/sage/budget) give the vision and audio encoders their refinement ATP exactly as the
live encoder nodes take it (`sage_encoders.budget.AtpAccount`: each AtpBudget refills the
plugin's account, each input spends from it; before the first budget, irp.default_atp).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
import json
import math
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from sage_common.records import ImuRecord, LatentRecord, RewardRecord, SalienceRecord
from sage_eval.encoded_cache import cached_inputs
from sage_eval.errors import ReplayError, ScenarioError
from sage_eval.inputs import InputItem, bag_span, iter_inputs, REORDER_S
from sage_eval.provenance import write_source
from sage_snarc.snarc_core import SnarcCore

AXIS_KEYS = ('surprise', 'novelty', 'arousal', 'reward', 'conflict', 'salience')


def store_policy(rec: SalienceRecord) -> bool:
    """Whether an attended input is stored in memory (the memory team may refine this)."""
    return bool(rec.attend)


@dataclass
class ReplaySummary:
    """What a replay did (counts only: no timings, so it is deterministic too)."""

    bag: str
    out: str
    items: int = 0  # inputs fed to SNARC (latents, IMU samples, rewards, states)
    inputs: dict[str, int] = field(default_factory=dict)
    attended: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    rewards: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    first_stamp: float | None = None
    last_stamp: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return dict(self.__dict__)


def decision_line(rec: SalienceRecord, stored: bool) -> str:
    """One JSONL line of the offline replay contract (fixed key order, 6 decimals)."""
    obj: dict[str, Any] = {'stamp': float(rec.stamp), 'modality': rec.modality}
    for key in AXIS_KEYS:
        obj[key] = round(float(getattr(rec, key)), 6)
    obj['attend'] = bool(rec.attend)
    obj['stored'] = bool(stored)
    return json.dumps(obj)


def score_inputs(items: Iterable[InputItem], snarc_params: Mapping[str, Any], out: TextIO,
                 summary: ReplaySummary,
                 policy: Callable[[SalienceRecord], bool] = store_policy,
                 observe: Callable[[SalienceRecord], None] | None = None,
                 memories: Iterable[tuple[str, np.ndarray, str]] = ()) -> SnarcCore:
    """Run SnarcCore over inputs in order, writing one decision line per scored input.

    observe, when given, sees every scored input (attended or not), after its decision line.
    memories: (modality, embedding, model version) of what memory already holds, added to
    SNARC's novelty memory before the first input (an earlier day's experiences).

    Returns:
        The core after the run (for its issues and state).
    """
    core = SnarcCore.from_params(dict(snarc_params))
    for m, embedding, version in memories:
        core.add_memory(m, embedding, version)

    def emit(rec: SalienceRecord, embedding: np.ndarray | None, model_version: str = '') -> None:
        m = rec.modality
        stored = bool(rec.attend) and policy(rec)
        summary.inputs[m] = summary.inputs.get(m, 0) + 1
        summary.attended[m] = summary.attended.get(m, 0) + int(rec.attend)
        summary.stored[m] = summary.stored.get(m, 0) + int(stored)
        if stored and embedding is not None:
            core.add_memory(m, embedding, model_version)
        out.write(decision_line(rec, stored) + '\n')
        if observe is not None:
            observe(rec)

    for item in items:
        summary.items += 1
        if summary.first_stamp is None:
            summary.first_stamp = item.stamp
        summary.last_stamp = item.stamp
        if isinstance(item, LatentRecord):
            emit(core.score_latent(item), item.embedding, item.model_version)
        elif isinstance(item, ImuRecord):
            sal = core.score_imu(item)
            if sal is not None:
                emit(sal, None)
        elif isinstance(item, RewardRecord):
            core.add_reward(item)
            summary.rewards += 1
        else:
            core.set_metabolic_state(item.state)
    return core


def _reporting(items: Iterable[InputItem], span: tuple[float, float],
               progress: Callable[[float, float | None], None]) -> Iterator[InputItem]:
    """The items unchanged; progress(seconds into the bag, its length) about every 1 %."""
    start, end = span
    length = max(end - start, 1e-9)
    step = length / 100.0
    shown = -math.inf
    progress(0.0, length)
    for item in items:
        if item.stamp - shown >= step:
            shown = item.stamp
            progress(min(max(item.stamp - start, 0.0), length), length)
        yield item
    progress(length, length)


def replay_bag(bag_path: Path, node_params: Mapping[str, Mapping[str, Any]], out_path: Path,
               *, reorder_s: float = REORDER_S,
               policy: Callable[[SalienceRecord], bool] = store_policy,
               cache: Path | None = None,
               progress: Callable[[float, float | None], None] | None = None
               ) -> ReplaySummary:
    """Replay a bag through the encoders and SNARC, writing the decisions JSONL.

    Args:
        bag_path: rosbag2 folder (MCAP or sqlite3).
        node_params: resolved (or partial) parameters by node name: 'vision_encoder',
            'audio_encoder', 'language_encoder', 'snarc'; missing nodes use defaults.
        out_path: decisions file to write (overwritten); the bag's identity goes beside it
            (`sage_eval.provenance.sidecar_path`).
        reorder_s: see `iter_inputs`.
        policy: store policy applied to attended inputs.
        cache: folder of encoded inputs (`sage_eval.encoded_cache`): a bag encoded with the
            same encoder parameters, models and code before is scored without encoding it
            again (the same decisions, byte for byte); None encodes every time.
        progress: called with (seconds of the bag replayed, the bag's length) as inputs are
            scored (a progress bar; it sees nothing the decisions depend on).

    Returns:
        Counts of what was read, scored, attended and stored, and the problems met.

    Raises:
        ReplayError: the bag cannot be read or an encoder cannot be built.
    """
    bag_path, out_path = Path(bag_path), Path(out_path)
    summary = ReplaySummary(bag=str(bag_path), out=str(out_path))
    problems: Counter[str] = Counter()
    snarc = dict(node_params.get('snarc', {}))
    SnarcCore.from_params(snarc)  # fail on bad parameters before reading the bag
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if cache is None:
        items = iter_inputs(bag_path, node_params, reorder_s=reorder_s, problems=problems)
    else:
        items = cached_inputs(bag_path, node_params, cache, reorder_s=reorder_s,
                              problems=problems)
    if progress is not None:
        items = _reporting(items, bag_span(bag_path), progress)
    with out_path.open('w') as out:
        core = score_inputs(items, snarc, out, summary, policy)
    try:
        write_source(out_path, bag_path)  # beside the file: the JSONL format stays as is
    except (ScenarioError, OSError) as err:
        raise ReplayError(f'cannot record the source of {out_path}: {err}') from err
    for key, n in core.issues.items():
        problems[f'snarc:{key}'] += n
    summary.problems = dict(sorted(problems.items()))
    return summary
