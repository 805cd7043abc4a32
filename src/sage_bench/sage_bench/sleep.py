"""`sage bench sleep`: does one sleep make tomorrow better? (issue 18)

Offline (no ROS graph), in a temporary folder:

1. Day 1, environment E: realistic scenes (`sage_eval.realistic`: a room of evaluation photos,
   recorded speech and sounds, room noise) of the day-1 seeds are replayed through the profile's
   encoder cores (refinement on, the recorded ATP budgets applied) and SNARC, as
   `sage bench salience` does. Per input: reconstruction error and IRP iterations to halt; per
   scene: false alarms per calm minute (`sage_eval.salience_score`).
2. The inputs the memory node would keep (its policy core on the profile's settings decides
   which rows it stores, attended inputs and the context around them, and
   `training_inputs.context` which of those keep their input; `inputs='all'` keeps every one)
   go into a SQLite memory store as TrainingInputs under the node's disk budget, exactly as
   the encoders hand them over (`sage_encoders.input_ring`: JPEG 240x240 frames, s16le-zlib
   windows). The sleep worker (`python -m sage_memory.sleep.worker`) runs on it with the
   profile's memory sleep.retrain.* settings; its wall time and peak RSS (psutil polling of the
   child) are recorded with its JSON line.
3. Day 2: E again, a new day in the same room (each day-2 seed set in the room of its day-1
   seed, `make_realistic_scene(room=...)`: the same panorama, room noise levels, mains, fan
   and camera sensor; other events, utterances, sounds, objects, pan and noise samples),
   replayed with the packaged models and with the live models after sleep. SNARC starts each
   day-2 scene remembering what day 1 stored: before sleep as stored (the packaged models'
   embeddings), after it as the promoted version re-embedded those inputs
   (`sage_encoders.model_versions.MEMORY_EMBEDDINGS_FILE`, what the SNARC node loads when the
   version goes live), so novelty the morning after is measured as the robot has it. F, the
   environment learned earlier: the encoders' shipped held-out sets (`data.vision_heldout`,
   `data.audio_heldout_windows`), encoded by both.

Ratios are after / before (below 1 = better). Seeds come from the realistic REPORT_SEEDS
(never tuned on) or, with seed_set='tuning', from TUNING_SEEDS (to choose settings on): day 1
the first `seeds` of them, day 2 the next `seeds`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
import heapq
import math
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any
import zlib

import numpy as np
from rosbags.highlevel import AnyReader

from sage_bench.salience import cache_dir, scene, seeds_for
from sage_bench.sleep_hour import run_hour
from sage_bench.sleep_preempt import run_preempt
from sage_bench.sleep_setup import Kept, fill_store, run_worker
from sage_bringup.profile import load_profile
from sage_common.errors import SageError
from sage_common.records import LatentRecord
from sage_encoders.model_versions import ModelVersions, read_memory_embeddings
from sage_eval.bagio import (AUDIO_TOPIC, BUDGET_TOPIC, CAMERA_TOPIC, IMU_TOPIC, REWARD_TOPIC,
                             STATE_TOPIC, typestore)
from sage_eval.inputs import ENCODER_PARAMS, Encoders, resolved_params, TOPIC_RANK
from sage_eval.replay import ReplaySummary, score_inputs

MODALITIES = ('vision', 'audio')
# SNARC novelty memories: (modality, embedding, encoder model version).
Memories = Sequence[tuple[str, np.ndarray, str]]
INPUT_MODES = ('stored', 'all')
# seconds at or under this replay the short program (about 80 s), cut to `seconds`.
SHORT_PROGRAM_S = 90.0


def _stats(recs: list[tuple[float, int, str]]) -> dict[str, Any]:
    """Mean/median recon error and IRP iterations of (recon, iterations, halt) tuples."""
    if not recs:
        return {'n': 0, 'recon_mean': None, 'recon_median': None, 'iterations_mean': None,
                'iterations_median': None, 'halt': {}}
    recon = np.array([r[0] for r in recs], np.float64)
    its = np.array([r[1] for r in recs], np.float64)
    return {'n': len(recs), 'recon_mean': float(recon.mean()),
            'recon_median': float(np.median(recon)), 'iterations_mean': float(its.mean()),
            'iterations_median': float(np.median(its)),
            'halt': dict(sorted(Counter(r[2] for r in recs).items()))}


def _ratio(after: float | None, before: float | None) -> float | None:
    if after is None or before is None or not before > 0:
        return None
    return float(after) / float(before)


def _ratios(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """after / before of each modality's recon and iteration mean and median."""
    keys = ('recon_mean', 'recon_median', 'iterations_mean', 'iterations_median')
    return {m: {k: _ratio(after[m][k], before[m][k]) for k in keys}
            for m in MODALITIES if m in before and m in after}


def _clip_labels(labels: Any, cut_s: float | None) -> Any:
    """Labels of the first cut_s seconds of a scene (events that end in it, calm in it)."""
    if cut_s is None or cut_s >= labels.duration_s:
        return labels
    end = labels.start + cut_s
    return replace(labels, duration_s=float(cut_s),
                   events=[e for e in labels.events if e.end <= end],
                   calm=[(a, min(b, end)) for a, b in labels.calm if a < end])


def _items(bag: Path, params: Mapping[str, Mapping[str, Any]], end: float | None,
           current: dict[str, Any], problems: Counter[str], reorder_s: float = 0.5
           ) -> Iterator[Any]:
    """`sage_eval.replay.iter_inputs` (same reading, order and encoding), up to stamp `end`,
    noting in current['encoders'] / current['latent'] the cores and the latent being scored
    (so the store policy can ask the encoder for that input, as the memory node does)."""
    encoders = Encoders(params)
    current['encoders'] = encoders
    reader = AnyReader([Path(bag)], default_typestore=typestore())
    reader.open()
    wanted = {CAMERA_TOPIC, AUDIO_TOPIC, IMU_TOPIC, REWARD_TOPIC, STATE_TOPIC, BUDGET_TOPIC}
    heap: list[tuple[float, int, int, str, Any]] = []
    counter = 0
    done = False

    def release(limit: float) -> Iterator[Any]:
        nonlocal done
        while heap and heap[0][0] <= limit:
            stamp, _, _, topic, msg = heapq.heappop(heap)
            if end is not None and stamp > end:
                done = True
                return
            try:
                if topic == CAMERA_TOPIC:
                    current['msg'] = msg
                recs = encoders.records(topic, msg, stamp)
            except SageError as err:
                problems[f'{topic}:{type(err).__name__}'] += 1
                continue
            for rec in recs:
                current['latent'] = rec
                yield rec

    try:
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, logtime, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            st = msg.header.stamp
            stamp = float(st.sec) + float(st.nanosec) * 1e-9
            heapq.heappush(heap, (stamp, TOPIC_RANK.get(conn.topic, 9), counter, conn.topic, msg))
            counter += 1
            yield from release(logtime * 1e-9 - reorder_s)
            if done:
                return
        yield from release(math.inf)
    finally:
        reader.close()


def replay_day(bag: Path, params: Mapping[str, Mapping[str, Any]], out: Path,
               cut_s: float | None = None, keep: str | None = None,
               probe_every: int = 0, memories: Memories = ()) -> dict[str, Any]:
    """Replay one scene through the encoders and SNARC; stats, false alarms, kept inputs.

    Args:
        bag: realistic scene bag (labels beside it).
        params: node parameters ('vision_encoder', 'audio_encoder', 'snarc', 'memory').
        out: decisions JSONL to write.
        cut_s: replay only the first cut_s seconds of the scene (None = all of it).
        keep: None (keep nothing), 'stored' or 'all': which vision/audio inputs to keep.
            'stored': those the memory node keeps an input of: its policy core
            (`sage_memory.policy.MemoryCore`, the profile's memory settings) decides which
            rows it stores, `training_inputs.wants_input` which rows keep their input.
        probe_every: also encode every probe_every-th vision/audio input with the same model
            and ATP for every refinement step (irp.max_iterations): iterations to halt free of
            the budget (0 = off).
        memories: (modality, embedding, model version) SNARC's novelty memory holds when
            the scene starts (what an earlier day stored).

    Returns:
        {'seed', 'panorama', 'stats' per modality, 'false_alarms', 'calm_minutes',
         'false_alarms_per_min', 'attended', 'problems', 'kept'}, '_memories': what SNARC's
        novelty memory held at the end (the given memories and what this scene stored) and,
        with keep, '_kept': [Kept].
    """
    # lazy: keeps cv2 out of this module's import
    from sage_eval.salience_score import score_scene
    from sage_eval.scenario import load_labels

    labels = _clip_labels(load_labels(bag), cut_s)
    end = labels.start + cut_s if cut_s is not None else None
    current: dict[str, Any] = {}
    kept: list[Kept] = []
    per: dict[str, list[tuple[float, int, str]]] = {m: [] for m in MODALITIES}
    free: dict[str, list[tuple[float, int, str]]] = {m: [] for m in MODALITIES}
    problems: Counter[str] = Counter()
    probes = _cores(params, unbounded=True) if probe_every > 0 else {}
    memory, wants = _memory_policy(params) if keep == 'stored' else (None, None)

    def keep_input(rec: Any, salience: float) -> None:
        kept.append(Kept(rec.modality, float(rec.stamp), int(rec.input_seq), float(salience),
                         _answer(current, rec)))

    def source() -> Iterator[Any]:
        for item in _items(bag, params, end, current, problems):
            if isinstance(item, LatentRecord) and item.modality in per:
                per[item.modality].append((float(item.recon_error), int(item.iterations),
                                           str(item.halt_reason)))
                if probes and item.input_seq % probe_every == 0:
                    free[item.modality].append(_probe(probes, current, item))
                if keep == 'all':
                    keep_input(item, 0.5)
                if memory is not None:
                    memory.on_latent(item)
            yield item

    def observe(rec: Any) -> None:
        if memory is None:
            return
        for row in memory.on_salience(rec):
            if row.modality in per and wants(row.kind):
                keep_input(row, row.salience)

    summary = ReplaySummary(bag=str(bag), out=str(out))
    snarc = dict(params.get('snarc', {}))
    with out.open('w') as f:
        core = score_inputs(source(), snarc, f, summary, observe=observe, memories=memories)
    report = score_scene(out, labels)
    fa = report['false_alarms']
    kept = [k for k in kept if k.answer.found]
    return {'seed': labels.seed, 'program': labels.program, 'seconds': labels.duration_s,
            'panorama': labels.settings.get('panorama', []),
            'stats': {m: _stats(per[m]) for m in MODALITIES},
            'stats_unbounded': {m: _stats(free[m]) for m in MODALITIES} if probes else None,
            'false_alarms': fa, 'calm_minutes': report['calm_minutes'],
            'false_alarms_per_min': report['false_alarms_per_min'],
            'false_alarms_per_min_all': (sum(fa.values()) / report['calm_minutes']
                                         if report['calm_minutes'] > 0 else None),
            'attended': report['attended'], 'problems': dict(problems),
            'kept': dict(Counter(k.modality for k in kept)), '_kept': kept,
            '_memories': [(m, x, version) for m, by_version in core.memory.items()
                          for version, index in by_version.items() for x in index.vectors()],
            '_per': per, '_free': free}


def memories_after(memories: Memories, versions_dir: Path, live: Mapping[str, str]
                    ) -> list[tuple[str, np.ndarray, str]]:
    """SNARC's novelty memory the morning after: a promoted modality's stored inputs as its
    new version re-embedded them (what the SNARC node loads when /sage/models/live names the
    version), the other modalities' memories as they were."""
    out = [(m, x, v) for m, x, v in memories if live.get(m, 'packaged') == 'packaged']
    for m, version in live.items():
        if version == 'packaged':
            continue
        found = read_memory_embeddings(ModelVersions(versions_dir, m).live_path())
        if found is not None:
            out += [(m, x, version) for x in found.embeddings]
    return out


def _memory_policy(params: Mapping[str, Mapping[str, Any]]) -> tuple[Any, Any]:
    """The memory node's policy core on the profile's settings, and which row kinds keep
    their encoder input (`wants(kind)`)."""
    # lazy: keeps SQLAlchemy and faiss out of this module's import
    from sage_memory.config import policy_config
    from sage_memory.policy import MemoryCore
    from sage_memory.store.training_inputs import wants_input

    values = resolved_params(params, 'memory', 'sage_memory.memory_params')
    context = bool(values['training_inputs.context'])
    return (MemoryCore(policy_config(values), clock=time.monotonic),
            lambda kind: wants_input(kind, context))


def _cores(params: Mapping[str, Mapping[str, Any]], unbounded: bool = False
           ) -> dict[str, Any]:
    """Vision and audio cores from node parameters; unbounded: default_atp covers every
    refinement step (irp.max_iterations x irp.atp_per_step)."""
    # lazy: keeps onnxruntime and cv2 out of this module's import
    from sage_encoders.audio_core import AudioEncoderCore
    from sage_encoders.vision_core import VisionEncoderCore

    out = {}
    for m, cls in (('vision', VisionEncoderCore), ('audio', AudioEncoderCore)):
        values = resolved_params(params, f'{m}_encoder', ENCODER_PARAMS[f'{m}_encoder'])
        if unbounded:
            values['irp.default_atp'] = (float(values['irp.max_iterations'])
                                         * float(values['irp.atp_per_step']))
        out[m] = cls.from_params(values)
    return out


def _probe(probes: Mapping[str, Any], current: Mapping[str, Any], lat: Any
           ) -> tuple[float, int, str]:
    """Encode the input of a latent again with a probe core (ATP for every step)."""
    if lat.modality == 'vision':
        # lazy: keeps cv2 out of this module's import
        from sage_encoders.preprocess import rgb_from_buffer
        msg = current['msg']
        rgb = rgb_from_buffer(bytes(msg.data), int(msg.width), int(msg.height),
                              int(msg.step), str(msg.encoding))
        r = probes['vision'].encode(rgb, lat.stamp, lat.input_seq)
    else:
        ans = _answer(current, lat)  # s16le-zlib: lossless
        pcm = np.frombuffer(zlib.decompress(ans.data), '<i2').astype(np.int16)
        r = probes['audio'].encode_window(pcm, lat.stamp)
    return float(r.recon_error), int(r.iterations), str(r.halt_reason)


def _answer(current: Mapping[str, Any], lat: Any) -> Any:
    """The encoder's kept input of a latent (what the memory node asks the encoder for)."""
    enc = current['encoders']
    core = enc.vision() if lat.modality == 'vision' else enc.audio()
    return core.inputs.lookup(lat.stamp, lat.input_seq)


def _encode_heldout(params: Mapping[str, Mapping[str, Any]], n_max: int | None,
                    unbounded: bool) -> dict[str, Any]:
    """F: the shipped held-out sets encoded by the cores (refinement on; ATP irp.default_atp,
    or unbounded: enough for every step)."""
    # lazy: keeps cv2 out of this module's import
    from sage_encoders import data
    from sage_encoders.preprocess import MelConfig

    cores = _cores(params, unbounded)
    frames = data.vision_heldout(240)[:n_max]
    windows = data.audio_heldout_windows(MelConfig())[:n_max]
    per: dict[str, list[tuple[float, int, str]]] = {m: [] for m in MODALITIES}
    for i, x in enumerate(frames):
        rgb = np.clip(np.round((x.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)
        r = cores['vision'].encode(np.ascontiguousarray(rgb), float(i), i)
        per['vision'].append((float(r.recon_error), int(r.iterations), str(r.halt_reason)))
    for i, w in enumerate(windows):
        r = cores['audio'].encode_window(np.asarray(w, np.int16), float(i))
        per['audio'].append((float(r.recon_error), int(r.iterations), str(r.halt_reason)))
    return {m: _stats(per[m]) for m in MODALITIES}


def _pooled(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Stats over every input of several scenes, and pooled false alarms per calm minute."""
    per = {m: [r for d in days for r in d['_per'][m]] for m in MODALITIES}
    free = {m: [r for d in days for r in d['_free'][m]] for m in MODALITIES}
    calm = sum(d['calm_minutes'] for d in days)
    fa: Counter[str] = Counter()
    for d in days:
        fa.update(d['false_alarms'])
    return {'stats': {m: _stats(per[m]) for m in MODALITIES},
            'stats_unbounded': {m: _stats(free[m]) for m in MODALITIES},
            'calm_minutes': calm,
            'false_alarms': dict(fa),
            'false_alarms_per_min': {m: (n / calm if calm > 0 else None) for m, n in fa.items()},
            'false_alarms_per_min_all': sum(fa.values()) / calm if calm > 0 else None}


def _public(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not k.startswith('_')}


def run_bench(seconds: float | None = None, seeds: int = 1, profile: str = 'nano',
              overrides: list[str] | None = None, inputs: str = 'stored',
              sleep_budget_s: float | None = None, max_steps: int | None = None,
              heldout_max: int | None = None, probe_every: int = 5,
              cache: Path | None = None,
              keep_dir: Path | None = None, hour: bool = False,
              seed_set: str = 'report', preempt: int = 0, skip: int = 0) -> dict[str, Any]:
    """Day 1 of environment E, one sleep, day 2 of E and the old environment F; before/after.
    With hour: one sleep over an hour of stored inputs instead (`sage_bench.sleep_hour`);
    with preempt: that many sleeps in DREAM stopped by a salience spike
    (`sage_bench.sleep_preempt`).

    Args:
        seconds: scene seconds replayed per seed (None = the full realistic program, several
            minutes each; at most SHORT_PROGRAM_S uses the short program cut to `seconds`).
        seeds: scenes per day (day 1: the seed set's first `seeds`, each in its own room;
            day 2: the next `seeds`, the i-th in the room of day 1's i-th).
        seed_set: 'report' (default: realistic REPORT_SEEDS, for figures) or 'tuning'
            (TUNING_SEEDS, to choose settings on without touching the report seeds).
        skip: pass over the set's first `skip` seeds (other rooms: `--skip 2` takes report
            seeds 102 -> 103).
        profile: profile whose encoder, SNARC and memory settings run.
        overrides: profile overrides, node.param=value.
        inputs: which day-1 inputs go to the store: 'stored' (what the memory node keeps)
            or 'all'.
        sleep_budget_s: the worker's time budget (None = memory sleep.retrain.time_budget_s).
        max_steps: the worker's step limit for every modality (None = memory
            sleep.retrain.max_steps and audio_max_steps).
        heldout_max: encode at most this many held-out inputs per modality for F (None = all).
        probe_every: on day 2, also encode every probe_every-th input with ATP for every
            refinement step ('unbounded' figures: iterations to halt that the recorded budget
            does not cut; 0 = off). F is encoded both ways.
        cache: scene cache folder (default: `sage bench salience`'s).
        keep_dir: work in this folder and keep it (default: a temporary folder, removed).
        hour: measure a sleep over an hour of inputs (seeds: scenes they come from; seconds
            not taken).
        preempt: time this many preempted sleeps of the orchestrator and memory node instead
            (seconds and seeds not taken).

    Returns:
        JSON-able dict: 'summary' (ratios, sleep seconds, peak RSS, decisions), 'day1',
        'sleep', 'day2', 'F', and the seeds and settings used.

    Raises:
        SageError: bad arguments, profile or scene, or a worker without a result.
    """
    # lazy: keeps SQLAlchemy out of this module's import
    from sage_memory.sleep.retrain import worker_command

    if preempt:
        if seconds is not None or hour:
            raise SageError('--preempt takes no --seconds or --hour')
        return run_preempt(profile, overrides, trials=preempt, keep_dir=keep_dir)
    if hour:
        if seconds is not None:
            raise SageError('--hour takes no --seconds: it stores an hour of inputs')
        return run_hour(profile, overrides, seeds=max(seeds, 2), keep_dir=keep_dir)
    if inputs not in INPUT_MODES:
        raise SageError(f"inputs must be one of {', '.join(INPUT_MODES)}")
    both_days = seeds_for('realistic', seed_set, seeds, days=2, skip=skip)
    day1_seeds, day2_seeds = both_days[:seeds], both_days[seeds:]
    if seconds is not None and seconds <= 0:
        raise SageError('--seconds must be > 0')
    program = 'full' if seconds is None or seconds > SHORT_PROGRAM_S else 'short'
    params = {n.name: dict(n.parameters) for n in load_profile(profile, overrides or []).nodes}
    values = resolved_params(params, 'memory', 'sage_memory.memory_params')
    if max_steps is not None:
        values['sleep.retrain.max_steps'] = int(max_steps)
        values['sleep.retrain.audio_max_steps'] = int(max_steps)
    budget = float(sleep_budget_s if sleep_budget_s is not None
                   else values['sleep.retrain.time_budget_s'])
    root = cache or cache_dir()
    work = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix='sage-bench-sleep-'))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # ---- day 1: E with the packaged models; keep what the memory node would keep
        t = time.monotonic()
        day1 = []
        kept: list[Kept] = []
        memories: Memories = []
        for s in day1_seeds:
            bag = scene('realistic', s, program, root, room=s)
            d = replay_day(bag, params, work / f'day1-{s}.jsonl', seconds, inputs,
                           memories=memories)
            kept += d.pop('_kept')
            memories = d.pop('_memories')
            day1.append(d)
        day1_s = time.monotonic() - t
        seen = sorted({p for d in day1 for p in d['panorama']})
        # ---- sleep
        data_dir, versions_dir = work / 'memory', work / 'versions'
        stored = fill_store(data_dir, kept, float(values['training_inputs.budget_mb']))
        del kept
        cmd = worker_command(values, '', str(data_dir), str(versions_dir), budget, {},
                             seed=0)
        worker = run_worker(cmd, work / 'sleep_worker.log')
        live = {}
        after_params = {k: dict(v) for k, v in params.items()}
        for m in MODALITIES:
            v = ModelVersions(versions_dir, m)
            live[m] = v.live_version() if v.live_path() != v.packaged_dir else 'packaged'
            if live[m] != 'packaged':
                after_params.setdefault(f'{m}_encoder', {})['model_dir'] = str(v.live_path())
        after_memories = memories_after(memories, versions_dir, live)
        # ---- day 2: E again (new seeds), before and after; F before and after
        t = time.monotonic()
        before2, after2 = [], []
        for s, room in zip(day2_seeds, day1_seeds):
            bag = scene('realistic', s, program, root, room=room)
            before2.append(replay_day(bag, params, work / f'day2-{s}-before.jsonl', seconds,
                                      probe_every=probe_every, memories=memories))
            after2.append(replay_day(bag, after_params, work / f'day2-{s}-after.jsonl',
                                     seconds, probe_every=probe_every,
                                     memories=after_memories))
        day2_s = time.monotonic() - t
        t = time.monotonic()
        f_before = _encode_heldout(params, heldout_max, False)
        f_after = _encode_heldout(after_params, heldout_max, False)
        fu_before = _encode_heldout(params, heldout_max, True)
        fu_after = _encode_heldout(after_params, heldout_max, True)
        f_s = time.monotonic() - t
    finally:
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)
    d1, b2, a2 = _pooled(day1), _pooled(before2), _pooled(after2)
    e_ratios = _ratios(b2['stats'], a2['stats'])
    eu_ratios = _ratios(b2['stats_unbounded'], a2['stats_unbounded'])
    f_ratios = _ratios(f_before, f_after)
    fu_ratios = _ratios(fu_before, fu_after)
    mods = worker['result'].get('modalities', {})
    return {
        'profile': profile, 'overrides': overrides or [], 'program': program,
        'seconds_per_scene': seconds, 'seed_set': seed_set, 'skip': skip,
        'day1_seeds': day1_seeds, 'day2_seeds': day2_seeds, 'inputs_kept': inputs,
        'environment': {
            'E': f'realistic {program} scenes (sage_eval.realistic): a room (panorama of '
                 'evaluation photos, room noise, camera sensor) with recorded speech and '
                 'sounds; day 2 is another day in the same room',
            'rooms': dict(zip(day2_seeds, day1_seeds)),
            'F': 'the shipped held-out sets (data.vision_heldout, data.audio_heldout_windows)',
            'day1_photos': seen,
            'day2_photos_seen_on_day1': [
                {'seed': d['seed'], 'panorama': d['panorama'],
                 'seen': sum(p in seen for p in d['panorama']) / max(1, len(d['panorama']))}
                for d in before2]},
        'summary': {
            'E': {m: {'recon_ratio': e_ratios[m]['recon_mean'],
                      'iterations_ratio': e_ratios[m]['iterations_mean'],
                      'recon_ratio_unbounded': eu_ratios[m]['recon_mean'],
                      'iterations_ratio_unbounded': eu_ratios[m]['iterations_mean']}
                  for m in e_ratios},
            'F': {m: {'recon_ratio': f_ratios[m]['recon_mean'],
                      'iterations_ratio': f_ratios[m]['iterations_mean'],
                      'recon_ratio_unbounded': fu_ratios[m]['recon_mean'],
                      'iterations_ratio_unbounded': fu_ratios[m]['iterations_mean']}
                  for m in f_ratios},
            'false_alarms_per_calm_min': {'before': b2['false_alarms_per_min_all'],
                                          'after': a2['false_alarms_per_min_all']},
            'day2_memories': {'before': dict(Counter(m for m, _, _ in memories)),
                              'after': dict(Counter(m for m, _, _ in after_memories))},
            'decisions': {m: r.get('decision') for m, r in mods.items()},
            'versions': {m: r.get('version') for m, r in mods.items()}, 'live': live,
            'sleep_s': worker['seconds'], 'peak_rss_mb': worker['peak_rss_mb'],
            'peak_pss_mb': worker['peak_pss_mb']},
        'day1': {'seconds': day1_s, 'stored_inputs': stored, **_public(d1),
                 'per_seed': [_public(d) for d in day1]},
        'sleep': {'command': cmd, 'time_budget_s': budget,
                  'max_steps': int(values['sleep.retrain.max_steps']), **worker},
        'day2': {'seconds': day2_s,
                 'before': {**_public(b2), 'per_seed': [_public(d) for d in before2]},
                 'after': {**_public(a2), 'per_seed': [_public(d) for d in after2]},
                 'ratios': e_ratios, 'ratios_unbounded': eu_ratios,
                 'probe_every': probe_every},
        'F': {'seconds': f_s, 'before': f_before, 'after': f_after, 'ratios': f_ratios,
              'before_unbounded': fu_before, 'after_unbounded': fu_after,
              'ratios_unbounded': fu_ratios},
    }
