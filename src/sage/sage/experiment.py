"""`sage experiment BAG --set a.b=x ... [--vs '...']`: one bag, several parameter sets.

Each variant is the profile with its `--set` overrides, replayed offline through the same
cores as the live graph (sage_eval.replay.replay_bag). The decisions of every variant are
summarised side by side: attention rate, stored count, per-axis score summaries and, when the
bag is a labelled scenario (labels JSON beside it), the scenario metrics of
sage_eval.scenario.score_decisions.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
import json
from pathlib import Path
import shlex
import sys
import tempfile
from typing import Any, TextIO, cast

import numpy as np
from rich.console import Console
from rich.table import Table

from sage_bringup.profile import load_profile
from sage_common.errors import SageError
from sage_common.processes import die_with_parent
from sage_common.records import AXES
from sage_eval.encoded_cache import entry_key

Replay = Callable[[Path, dict[str, dict[str, Any]], Path], Any]
Scorer = Callable[[Path, Any], dict[str, Any]]


class ExperimentError(SageError):
    """An experiment cannot run (too few variants, no bag, replay failure)."""


def parse_variants(sets: Sequence[str], vs: Sequence[str] = ()) -> list[list[str]]:
    """Variants from the command line.

    `--set` options form the first variant; each `--vs 'a.b=1 c.d=2'` adds one more (split
    like a shell line, so quote values with spaces). Without --vs, the first variant is
    compared with the unchanged profile.
    """
    first = list(sets)
    more = [shlex.split(v) for v in vs]
    return [first, *more] if more else [[], first]


def variant_name(index: int, sets: Sequence[str]) -> str:
    label = chr(ord('A') + index) if index < 26 else str(index)
    return f"{label}: {' '.join(sets) if sets else 'profile'}"


def decision_metrics(path: Path) -> dict[str, float]:
    """Summaries of a decisions JSONL: counts, rates, and mean/p95 of every axis."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    out: dict[str, float] = {'inputs': float(len(rows))}
    attended = sum(bool(r['attend']) for r in rows)
    out['attended'] = float(attended)
    out['attention_rate'] = attended / len(rows) if rows else 0.0
    out['stored'] = float(sum(bool(r.get('stored', False)) for r in rows))
    if rows:
        span = max(r['stamp'] for r in rows) - min(r['stamp'] for r in rows)
        out['attended_per_min'] = attended / (span / 60.0) if span > 0 else 0.0
    for modality in sorted({r['modality'] for r in rows}):
        mine = [r for r in rows if r['modality'] == modality]
        out[f'attention_rate.{modality}'] = sum(bool(r['attend']) for r in mine) / len(mine)
        out[f'stored.{modality}'] = float(sum(bool(r.get('stored', False)) for r in mine))
    for axis in (*AXES, 'salience'):
        values = np.array([float(r[axis]) for r in rows]) if rows else np.zeros(0)
        out[f'{axis}.mean'] = float(values.mean()) if values.size else 0.0
        out[f'{axis}.p95'] = float(np.percentile(values, 95)) if values.size else 0.0
    return out


def scenario_metrics(scored: Mapping[str, Any]) -> dict[str, float]:
    """The numeric headline figures of score_decisions() (None values are skipped)."""
    out: dict[str, float] = {}
    for key in ('recall', 'false_alarms_per_min', 'habituation_drop'):
        if isinstance(scored.get(key), (int, float)):
            out[f'scenario.{key}'] = float(scored[key])
    for kind, value in (scored.get('recall_by_kind') or {}).items():
        out[f'scenario.recall.{kind}'] = float(value)
    for phase, row in (scored.get('reward') or {}).items():
        if isinstance(row, Mapping) and 'a_minus_b' in row:
            out[f'scenario.reward_a_minus_b.{phase}'] = float(row['a_minus_b'])
    return out


def _labels(bag: Path) -> Any | None:
    """The scenario labels beside a bag, or None when the bag is not labelled."""
    try:
        # lazy: optional (a ROS build may install sage without sage_eval); loads cv2, rosbags
        from sage_eval.scenario import labels_path, load_labels
    except ImportError:
        return None
    path = labels_path(bag)
    return load_labels(path) if path.is_file() else None


def _default_replay() -> Replay:
    try:
        # lazy: optional (a ROS build may install sage without sage_eval); loads rosbags
        from sage_eval.replay import replay_bag
    except ImportError as err:
        raise ExperimentError(f'offline replay is not available: {err}') from err
    return cast(Replay, replay_bag)


def _default_scorer() -> Scorer:
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_eval.scenario import score_decisions
    return cast(Scorer, score_decisions)


def run_experiment(bag: Path, profile: str, variants: list[list[str]], out: TextIO = sys.stdout,
                   *, work_dir: Path | None = None, replay: Replay | None = None,
                   scorer: Scorer | None = None, jobs: int = 1,
                   cache: Path | None = None,
                   progress: Callable[[float, float | None], None] | None = None
                   ) -> dict[str, Any]:
    """Replay a bag under each variant and print a side-by-side table.

    Args:
        bag: rosbag2 folder with the graph's inputs (a scenario bag may have labels beside it).
        profile: profile name or YAML path (see sage_bringup.profile.load_profile).
        variants: one list of 'node.param=value' overrides per variant (at least two).
        out: where the table goes.
        work_dir: where the decisions files are kept (default: a temporary folder, removed).
        replay: replay function (default sage_eval.replay.replay_bag).
        scorer: scenario scorer (default sage_eval.scenario.score_decisions).
        jobs: variants replayed at once, each in its own process (a replay uses one core:
            the profiles give onnxruntime one thread). The replay function must then be
            picklable (a module-level function, as the default is).
        cache: folder of encoded inputs for the default replay (`sage_eval.encoded_cache`):
            variants with the same encoder parameters encode the bag once (the first of
            them), the others score what it encoded. None encodes for every variant.
        progress: called with (variants replayed, variants) as each replay ends.

    Returns:
        {'bag', 'profile', 'labelled', 'variants': [{'name', 'sets', 'metrics', 'summary'}]}.

    Raises:
        ExperimentError: fewer than two variants, no bag, or the replay failed.
        ProfileError, ParamError: a profile or an override is invalid (checked up front).
    """
    bag = Path(bag)
    if len(variants) < 2:
        raise ExperimentError('an experiment needs at least two parameter sets '
                              '(--set ... and optionally --vs ...)')
    if not (bag / 'metadata.yaml').is_file():
        raise ExperimentError(f'{bag} is not a rosbag2 folder (no metadata.yaml)')
    # Load every variant first, so a typo in the last --vs fails before any replay runs.
    profiles = [load_profile(profile, sets) for sets in variants]
    params = [{n.name: dict(n.parameters) for n in prof.nodes} for prof in profiles]
    keys: list[Any] = list(range(len(variants)))
    if replay is None and cache is not None:
        # lazy: keeps rosbags out of this module's import
        from sage_eval.inputs import REORDER_S
        replay = cast(Replay, partial(_default_replay(), cache=Path(cache)))
        keys = [entry_key(bag, p, REORDER_S) for p in params]
    replay = replay or _default_replay()
    labels = _labels(bag)
    scorer = scorer or (_default_scorer() if labels is not None else None)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix='sage-experiment-') as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        tasks = [(bag, p, folder / f'decisions_{chr(ord("a") + k) if k < 26 else k}.jsonl')
                 for k, p in enumerate(params)]
        # The first variant of each encoder setting encodes; the rest then find it cached.
        first = [k for k, key in enumerate(keys) if keys.index(key) == k]
        outcomes: dict[int, tuple[Any, SageError | None]] = {}
        finished = [0]

        def done(_k: int) -> None:
            finished[0] += 1
            if progress is not None:
                progress(finished[0], len(tasks))
        if progress is not None:
            progress(0, len(tasks))
        for batch in (first, [k for k in range(len(tasks)) if k not in first]):
            outcomes.update(_run_all(replay, {k: tasks[k] for k in batch}, jobs, done))
        for k, (sets, (_, _, decisions)) in enumerate(zip(variants, tasks)):
            summary, err = outcomes[k]
            if err is not None:
                raise ExperimentError(f'{variant_name(k, sets)}: replay failed: {err}') from err
            metrics = decision_metrics(decisions)
            if labels is not None and scorer is not None:
                metrics.update(scenario_metrics(scorer(decisions, labels)))
            to_json = getattr(summary, 'to_json', None)
            results.append({'name': variant_name(k, sets), 'sets': list(sets),
                            'metrics': metrics,
                            'decisions': str(decisions) if work_dir is not None else None,
                            'summary': to_json() if callable(to_json) else None})
    result = {'bag': str(bag), 'profile': profiles[0].name, 'labelled': labels is not None,
              'variants': results}
    print_table(result, out)
    return result


def _run_all(replay: Replay, tasks: dict[int, tuple[Path, dict[str, dict[str, Any]], Path]],
             jobs: int, done: Callable[[int], None] = lambda k: None
             ) -> dict[int, tuple[Any, SageError | None]]:
    """Each task's outcome, `jobs` replays at a time (each in a process of its own); done(k)
    as each one ends (for a progress bar)."""
    out: dict[int, tuple[Any, SageError | None]] = {}
    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)),
                                 initializer=die_with_parent) as pool:
            pending = {pool.submit(replay, *t): k for k, t in tasks.items()}
            for future in as_completed(pending):
                out[pending[future]] = _outcome(future.result)
                done(pending[future])
        return out
    for k, t in tasks.items():
        out[k] = _outcome(lambda t=t: replay(*t))
        done(k)
    return out


def _outcome(call: Callable[[], Any]) -> tuple[Any, SageError | None]:
    """(summary, None), or (None, the replay's error): every variant runs to its end before the
    first failure is reported, in variant order."""
    try:
        return call(), None
    except SageError as err:
        return None, err


def print_table(result: Mapping[str, Any], out: TextIO = sys.stdout) -> None:
    """Metrics as rows, variants as columns; the best value of headline rows is marked."""
    variants = result['variants']
    table = Table(title=f"{result['bag']} ({result['profile']}"
                        f"{', labelled' if result['labelled'] else ''})", title_justify='left')
    table.add_column('metric')
    for v in variants:
        table.add_column(v['name'], justify='right', overflow='fold')
    keys: list[str] = []
    for v in variants:
        keys += [k for k in v['metrics'] if k not in keys]
    for key in keys:
        cells = [v['metrics'].get(key) for v in variants]
        table.add_row(key, *(_fmt(key, c) for c in cells))
    width = None if _is_tty(out) else 160
    Console(file=out, width=width, force_terminal=_is_tty(out) or None).print(table)


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return '-'
    if key in ('inputs', 'attended', 'stored') or key.startswith('stored.'):
        return f'{value:.0f}'
    if 'rate' in key or key.startswith('scenario.recall'):
        return f'{value:.1%}'
    return f'{value:.3f}'


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
