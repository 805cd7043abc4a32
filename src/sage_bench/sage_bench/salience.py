"""`sage bench salience`: SNARC's decisions on labelled scenes, per event kind and modality.

For each seed: make (or reuse from the cache) a labelled scene bag, replay it offline through
the profile's encoders (refinement on, recorded budgets applied) and SNARC, and score it with
`sage_eval.salience_score` (an event counts only when an input of its own modality is attended in
its detection window). Reports mean and worst seed. Realistic scenes (`sage_eval.realistic`) and
busy rooms (`sage_eval.busy`: wandering air handling and machinery, a clock, beeps, talk,
traffic, a TV, a noisy camera, a vibrating body) use their family's `REPORT_SEEDS` unless
`seed_set='tuning'`; the result says which set ran. What the encoders made of each scene is kept
beside the scenes (`sage_eval.encoded_cache`, in `encoded/`): a second run with other SNARC
parameters scores them again without encoding (the same decisions as encoding anew).
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
import os
from pathlib import Path
import shutil
import sys
import tempfile
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from sage_bringup.profile import load_profile
from sage_common.errors import SageError
from sage_common.processes import die_with_parent
from sage_common.user_cache import cache_dir as user_cache
from sage_bench.salience_ablation import ABLATIONS, headline

SCENES = ('realistic', 'busy', 'synthetic')
FAMILIES = ('realistic', 'busy')  # scene families with tuning and report seeds and programs
CACHE_ENV = 'SAGE_SCENE_CACHE'
# Synthetic scenes (sage_eval.scenario 'standard') have no seed sets of their own: these seeds
# were not used to tune (see sage_snarc's test_scenarios history).
SYNTHETIC_SEEDS = tuple(range(200, 220))
SYNTHETIC_S = 150.0
TABLE_WIDTH = 100


def cache_dir() -> Path:
    """Where generated scenes are kept ($SAGE_SCENE_CACHE, else the user cache's scenes)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else user_cache('scenes')


def seeds_for(scenes: str, seed_set: str, n: int, days: int = 1, skip: int = 0) -> list[int]:
    """n * days seeds of a set after its first `skip` (n a day: `sage bench sleep` takes two
    days).

    Raises:
        SageError: unknown scenes or set, or n larger than what the set has left.
    """
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_eval import busy, realistic
    if scenes not in SCENES:
        raise SageError(f"unknown scenes '{scenes}' ({', '.join(SCENES)})")
    sets = busy.SEED_SETS if scenes == 'busy' else realistic.SEED_SETS
    pool = SYNTHETIC_SEEDS if scenes == 'synthetic' else sets.get(seed_set)
    if pool is None:
        raise SageError(f"unknown seed set '{seed_set}' ({', '.join(sets)})")
    if not 0 <= skip <= len(pool) - days:
        raise SageError(f'--skip must be 0..{len(pool) - days} for the {seed_set} set '
                        f'({len(pool)} seeds, {days} a run at least)')
    pool = pool[skip:]
    if not 1 <= n <= len(pool) // days:
        raise SageError(f'--seeds must be 1..{len(pool) // days} for the {seed_set} set'
                        + (f' after skipping {skip}' if skip else ''))
    return list(pool[:n * days])


def scene(scenes: str, seed: int, program: str = 'full', root: Path | None = None,
          room: int | None = None) -> Path:
    """Bag of one scene, generated once into the cache (key: family, generator version,
    program, seed, and the room of a realistic scene set in another seed's room)."""
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_eval.busy import BUSY, make_busy_scene
    from sage_eval.realistic import GENERATOR_VERSION, make_realistic_scene
    from sage_eval.scenario import labels_path, make_scenario
    root = root or cache_dir()
    tag = {'realistic': f'realistic-v{GENERATOR_VERSION}-{program}',
           'busy': f'busy-v{BUSY.version}-{program}'}.get(scenes, 'synthetic-standard')
    bag = root / f'{tag}-{seed}' if room is None else root / f'{tag}-{seed}-room{room}'
    if room is not None and scenes != 'realistic':
        raise SageError('only realistic scenes are set in a room')
    if bag.is_dir() and labels_path(bag).is_file():
        return bag
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the cache and move in when complete: a killed run leaves no half scene.
    tmp = Path(tempfile.mkdtemp(prefix=f'.{bag.name}-', dir=root))
    part = tmp / bag.name
    if scenes == 'realistic':
        make_realistic_scene(part, seed, program, room=room)
    elif scenes == 'busy':
        make_busy_scene(part, seed, program)
    else:
        make_scenario(part, seed=seed, duration_s=SYNTHETIC_S)
    shutil.rmtree(bag, ignore_errors=True)
    labels_path(part).replace(labels_path(bag))
    part.replace(bag)
    shutil.rmtree(tmp, ignore_errors=True)
    return bag


def run_seed(scenes: str, seed: int, node_params: dict[str, dict[str, Any]], program: str,
             root: Path | None, out_dir: Path) -> dict[str, Any]:
    """Make/reuse, replay and score one seed (runs in a worker process)."""
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_eval.salience_score import score_scene
    from sage_eval.replay import replay_bag
    from sage_eval.scenario import load_labels
    bag = scene(scenes, seed, program, root)
    out = out_dir / f'{bag.name}.jsonl'
    summary = replay_bag(bag, node_params, out, cache=(root or cache_dir()) / 'encoded')
    report = score_scene(out, load_labels(bag))
    report['bag'] = str(bag)
    report['decisions'] = str(out)
    report['problems'] = summary.problems
    return report


def map_seeds(fn: Callable[..., Any], args: list[tuple[Any, ...]], workers: int,
              progress: Callable[[float, float | None], None] | None = None) -> list[Any]:
    """fn(*a) for each a, in this process or in up to `workers` processes (one seed each);
    progress(seeds done, seeds) as each ends (a progress bar)."""
    report = progress or (lambda done, total: None)
    report(0, len(args))
    if workers <= 1 or len(args) <= 1:
        out = []
        for a in args:
            out.append(fn(*a))
            report(len(out), len(args))
        return out
    with ProcessPoolExecutor(max_workers=min(workers, len(args)),
                             initializer=die_with_parent) as pool:
        futures = [pool.submit(fn, *a) for a in args]
        for n, _ in enumerate(as_completed(futures), 1):
            report(n, len(args))
        return [f.result() for f in futures]


def _node_params(profile: str, overrides: list[str]) -> dict[str, dict[str, Any]]:
    """Each node's parameters in the profile after the overrides."""
    return {n.name: dict(n.parameters) for n in load_profile(profile, overrides).nodes}


def run_bench(seeds: int = 3, scenes: str = 'realistic', seed_set: str = 'report',
              profile: str = 'nano', workers: int = 2, program: str = 'full',
              overrides: list[str] | None = None, cache: Path | None = None,
              out_dir: Path | None = None, seconds: float | None = None,
              ablate: bool = False,
              progress: Callable[[float, float | None], None] | None = None
              ) -> dict[str, Any]:
    """Replay `seeds` scenes offline with a profile and score them.

    Args:
        seeds: how many seeds of the set.
        scenes: 'realistic' (sage_eval.realistic), 'busy' (sage_eval.busy) or 'synthetic'
            (sage_eval.scenario).
        seed_set: 'report' (default; never tune on it) or 'tuning' (realistic and busy).
        profile: profile whose parameters the encoders and SNARC run with.
        workers: seeds replayed at once (processes).
        program: realistic or busy program ('full' or 'short').
        overrides: profile overrides, node.param=value.
        cache: scene cache folder (default `cache_dir()`).
        out_dir: where decisions go (default a folder under the cache).
        seconds: refused (the scenes fix the length; choose --seeds).
        ablate: also score the scenes with each of `salience_ablation.ABLATIONS` (one
            mechanism switched off each) and report them beside the profile as it ships.
        progress: called with (scenes done, scenes) as each is scored.

    Returns:
        {'scenes', 'seed_set', 'profile', 'seeds', 'summary', 'per_seed'}, and with ablate
        'ablation': the profile's headline figures and each variant's.

    Raises:
        SageError: bad arguments or profile, or a scene that cannot be made or replayed.
    """
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_eval.salience_score import summarise
    if seconds is not None:
        raise SageError('the salience benchmark takes --seeds, not --seconds')
    chosen = seeds_for(scenes, seed_set, seeds)
    params = _node_params(profile, overrides or [])
    root = cache or cache_dir()
    out_dir = out_dir or root / 'decisions' / f'{profile}-{os.getpid()}'
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = ABLATIONS if ablate else ()
    total = len(chosen) * (1 + len(variants))

    def done_of(offset: int) -> Callable[[float, float | None], None]:
        return lambda n, _: progress(offset + n, total) if progress else None

    reports = map_seeds(run_seed, [(scenes, s, params, program, root, out_dir)
                                   for s in chosen], workers, done_of(0))
    family = scenes in FAMILIES
    result = {'scenes': scenes, 'program': program if family else 'standard',
              'seed_set': seed_set if family else 'synthetic',
              'profile': profile, 'overrides': overrides or [], 'seeds': chosen,
              'summary': summarise(reports), 'per_seed': reports}
    if variants:
        rows = [{'name': 'as shipped', 'off': '-', 'overrides': [],
                 **headline(result['summary'])}]
        for i, ab in enumerate(variants, 1):
            vparams = _node_params(profile, [*(overrides or []), *ab.overrides])
            vdir = out_dir / ab.name.replace(' ', '_')
            vdir.mkdir(parents=True, exist_ok=True)
            vreports = map_seeds(run_seed, [(scenes, s, vparams, program, root, vdir)
                                            for s in chosen], workers,
                                 done_of(i * len(chosen)))
            rows.append({'name': ab.name, 'off': ab.off, 'overrides': list(ab.overrides),
                         **headline(summarise(vreports))})
        result['ablation'] = rows
    return result


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return '-'
    return f'{100 * v:.0f}%' if pct else f'{v:.2f}'


def print_table(result: dict[str, Any]) -> None:
    """One screen: recall and axis recall per kind/modality, alarms, habituation, self effects."""
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_eval.salience_score import KIND_AXIS
    s = result['summary']
    title = (f"salience: {result['scenes']} scenes, {result['seed_set']} seeds "
             f"{result['seeds']}, profile {result['profile']}")
    t = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for col in ('kind/modality', 'n', 'recall', 'worst', 'axis', 'axis ok', 'worst', 'lat s'):
        t.add_column(col, justify='left' if col in ('kind/modality', 'axis') else 'right')
    for k, v in s['by_kind'].items():
        t.add_row(k, str(v['events']), _fmt(v['recall']['mean'], True),
                  _fmt(v['recall']['worst'], True), KIND_AXIS.get(k.split('/')[0], ''),
                  _fmt(v['axis_recall']['mean'], True), _fmt(v['axis_recall']['worst'], True),
                  _fmt(v['latency_s']['mean']))
    # Redirected output is not a terminal: give it room for the table instead of 80 columns.
    c = Console(width=None if sys.stdout.isatty() else TABLE_WIDTH)
    c.print(t)
    fa = ', '.join(f"{m} {_fmt(v['mean'])} (worst {_fmt(v['worst'])})"
                   for m, v in s['false_alarms_per_min'].items())
    all_fa = s['false_alarms_per_min_all']
    c.print(f"false alarms per calm minute: all {_fmt(all_fa['mean'])} "
            f"(worst {_fmt(all_fa['worst'])}); {fa}")
    c.print(f"calm minutes per scene: {_fmt(s['calm_minutes']['mean'])} "
            f"(fewest {_fmt(s['calm_minutes']['worst'])})")
    hab = s['habituation_drop']
    rises = s['repeat_rises']
    c.print(f"habituation drop: {_fmt(hab['mean'])} (worst {_fmt(hab['worst'])}); repeats "
            f"attended again after the sound was habituated: {rises['total']} "
            f"(worst seed {rises['worst']}; never habituated in {rises['never_habituated']} "
            f"of {rises['n']} scenes)")
    se = s['self_effect_attends']
    c.print(f"attends caused by the robot's own steps (camera rate, budget): "
            f"{_fmt(se['mean'])} per scene (worst {_fmt(se['worst'])})")
    if result.get('ablation'):
        t = Table(title='each mechanism switched off', box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False)
        for col in ('variant', 'recall', 'worst', 'false alarms/min', 'habituation drop'):
            t.add_column(col, justify='left' if col == 'variant' else 'right')
        for row in result['ablation']:
            t.add_row(row['name'], _fmt(row['recall_mean'], True),
                      _fmt(row['recall_worst'], True), _fmt(row['false_alarms_per_min']),
                      _fmt(row['habituation_drop']))
        c.print(t)
