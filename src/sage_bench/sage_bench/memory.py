"""`sage bench memory`: the memory store's benchmark.

By default it measures issue 50's figures through the store's own API at 100 k rows of 384-d
embeddings (workload 'store', sage_bench.memory_figures). `workload='robot'` runs the phases
of `sage_bench.memory_phases` (sustained durable inserts, a flood, recall and kNN at scale,
restart, bytes on disk) on rows built here from real content, as the nano graph would store
them (below); `workload='random'` runs them on the store's own synthetic rows (a random
`preview_bytes` preview and codes of a 512-code book, as every earlier note measured).

The robot rows:

- vision: crops of the evaluation photographs (never trained on) with sensor noise, encoded by
  the vision encoder core with the profile's parameters (real codes, features, diagnostics and
  image preview);
- audio: windows of the recorded speech and sounds, encoded by the audio encoder core (real
  codes and its WAV preview in the profile's codec);
- each latent is paired with an attended salience and turned into an experience by the memory
  node's own policy (`MemoryCore`, the profile's share at full fidelity with code grid and
  encoder report, the rest summary rows; the default device id and session), so the row's
  columns and its `extra` JSON are the node's.

Only the embeddings stay synthetic: the benchmark needs `rows` distinct vectors with the cluster
structure of recurring scenes, at `dim`, to measure recall at scale
(sage_bench.memory_phases.RowPool).
`vision_share` sets the mix (the share of vision rows; the rest audio).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sage_bringup.profile import load_profile
from sage_common.records import SalienceRecord
from sage_eval import media

# Crops per photograph and audio windows per recording in the pool (rows repeat beyond it).
_CROPS_PER_PHOTO = 24
_WINDOWS_PER_CLIP = 12
_SENSOR_NOISE_DN = 3.0  # read noise of the crops, in 8-bit steps
_ROOM_NOISE = 10 ** (-60 / 20)  # a quiet room under the recordings (RMS, -60 dBFS)


def _photo_crops(rng: np.random.Generator) -> list[np.ndarray]:
    """4:3 crops of the evaluation photographs with read noise (H, W, 3) uint8 RGB."""
    out = []
    for name in media.EVAL_PHOTOS:
        img = media.photo(name)
        h, w = img.shape[:2]
        for _ in range(_CROPS_PER_PHOTO):
            ch = int(h * rng.uniform(0.4, 0.9))
            cw = min(w, int(ch * 4 / 3))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = img[y:y + ch, x:x + cw].astype(np.float32)
            crop += rng.normal(0.0, _SENSOR_NOISE_DN, crop.shape)
            out.append(np.clip(crop, 0, 255).astype(np.uint8))
    return out


def _audio_windows(rng: np.random.Generator, window: int, rate: int) -> list[np.ndarray]:
    """Windows of the recorded speech and sounds over a quiet room, int16 at `rate`."""
    out = []
    for source in media.SOURCES:
        if not source.name.endswith('.wav'):
            continue
        x = media.load_audio(source.name, rate)
        for _ in range(_WINDOWS_PER_CLIP):
            room = rng.normal(0.0, _ROOM_NOISE, window)
            if len(x) >= window:
                start = int(rng.integers(0, len(x) - window + 1))
                room += x[start:start + window]
            else:  # a short sound lands somewhere in the window
                start = int(rng.integers(0, window - len(x) + 1))
                room[start:start + len(x)] += x
            out.append(np.round(np.clip(room, -1.0, 1.0) * 32767).astype(np.int16))
    return out


def robot_rows(profile: str = 'nano', seed: int = 0, vision_share: float = 0.5,
               full_fraction: float | None = None) -> list[Any]:
    """Experiences from real content, built by the encoders and the memory policy.

    Args:
        profile: profile whose encoder and memory parameters are used.
        seed: random source of the crops, windows and saliences.
        vision_share: share of vision rows (the rest audio).
        full_fraction: share of rows kept at full fidelity (with their code grid and encoder
            report); None = the profile's `full_fidelity_top_fraction`, 1.0 = the heaviest rows.

    Returns:
        ExperienceRecords (kind 'experience'), vision and audio interleaved.
    """
    # lazy: keeps onnxruntime, cv2, SQLAlchemy, faiss and rosbags out of this module's import
    from sage_encoders.audio_core import AudioEncoderCore
    from sage_encoders.vision_core import VisionEncoderCore
    from sage_eval.inputs import ENCODER_PARAMS, resolved_params
    from sage_memory.config import policy_config
    from sage_memory.policy import MemoryCore

    params = {n.name: dict(n.parameters) for n in load_profile(profile).nodes}
    values = {node: resolved_params(params, node, ENCODER_PARAMS[node])
              for node in ('vision_encoder', 'audio_encoder')}
    mem = resolved_params(params, 'memory', 'sage_memory.memory_params')
    # Every input an attended experience without context rows (those are summary rows too).
    # Device id and session as the node writes them by default (host name; host + start time).
    mem.update({'context_before': 0, 'context_after': 0, 'policy.mode': 'attend'})
    if full_fraction is not None:
        mem['full_fidelity_top_fraction'] = float(full_fraction)
    core = MemoryCore(policy_config(mem), clock=lambda: 0.0)
    rng = np.random.default_rng(seed)
    vision = VisionEncoderCore.from_params(values['vision_encoder'])
    audio = AudioEncoderCore.from_params(values['audio_encoder'])
    latents = [vision.encode(rgb, float(i), i) for i, rgb in enumerate(_photo_crops(rng))]
    acfg = audio.cfg
    latents += [audio.encode_window(pcm, float(i))
                for i, pcm in enumerate(_audio_windows(rng, acfg.window_samples,
                                                       acfg.sample_rate))]
    by_modality: dict[str, list[Any]] = {'vision': [], 'audio': []}
    for lat in latents:
        sal = SalienceRecord(stamp=lat.stamp, modality=lat.modality, input_seq=lat.input_seq,
                             surprise=float(rng.random()), novelty=float(rng.random()),
                             arousal=float(rng.random()), reward=0.0, conflict=0.0,
                             salience=float(rng.uniform(0.5, 1.0)), threshold=0.45,
                             attend=True)
        got = core.on_latent(lat) + core.on_salience(sal)
        by_modality[lat.modality] += [r for r in got if r.kind == 'experience']
    return _interleave(by_modality['vision'], by_modality['audio'], vision_share, rng)


def _interleave(vision: Sequence[Any], audio: Sequence[Any], share: float,
                rng: np.random.Generator) -> list[Any]:
    n = len(vision) + len(audio)
    picks = rng.random(n) < share
    out, iv, ia = [], 0, 0
    for pick in picks:
        if (pick and vision) or not audio:
            out.append(vision[iv % len(vision)])
            iv += 1
        else:
            out.append(audio[ia % len(audio)])
            ia += 1
    return out


def describe(rows: Sequence[Any]) -> dict[str, Any]:
    """Share and mean column bytes per modality and fidelity, as the store writes them."""
    # lazy: keeps SQLAlchemy out of this module's import
    from sage_memory.store.models import record_to_row
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(f'{r.modality}/{r.fidelity}', []).append(record_to_row(r))
    return {key: {'share': round(len(cols) / len(rows), 3),
                  'preview_format': sorted({c['preview_format'] for c in cols}),
                  **{f'{name}_bytes': round(float(np.mean([len(c[name] or b'') for c in cols])), 1)
                     for name in ('preview', 'codes', 'extra')}}
            for key, cols in sorted(groups.items())}


def run_bench(seconds: float = 10.0, workload: str = 'store', profile: str = 'nano',
              vision_share: float = 0.5, full_fraction: float = -1.0, **kw: Any
              ) -> dict[str, Any]:
    """The memory benchmark on `workload` rows.

    Args:
        seconds: duration of the sustained-insert phase ('robot' and 'random').
        workload: 'store' (issue 50's figures through the store's API: durable inserts,
            reopen to first result, bytes per row, recall@10, kNN latency, RSS; options of
            sage_bench.memory_figures.run_figures: rows, dim, queries, reopens, seed),
            'robot' (rows from real content through the encoders and the memory policy) or
            'random' (the store's synthetic rows: random preview of preview_bytes), both
            through the phases of sage_bench.memory_phases.run_bench (sustained, flood,
            recall, restart; its options).
        profile: profile whose encoder and memory parameters build the robot rows.
        vision_share: share of vision rows in the robot workload (the rest audio).
        full_fraction: share of full-fidelity robot rows (< 0 = the profile's policy).
        **kw: the options of the workload's benchmark; dim defaults to the robot rows' own
            embedding size.
    """
    # lazy: keeps SQLAlchemy and faiss out of this module's import
    from sage_bench import memory_phases as bench
    from sage_bench.memory_figures import run_figures
    if workload not in ('store', 'robot', 'random'):
        raise ValueError(f"workload {workload!r}: 'store', 'robot' or 'random'")
    if workload == 'store':
        out = run_figures(**kw)
        out['workload'] = {'name': workload}
        return out
    base = None
    if workload == 'robot':
        base = robot_rows(profile, int(kw.get('seed', 0)), vision_share,
                          None if full_fraction < 0 else full_fraction)
        kw.setdefault('dim', int(np.size(base[0].embedding)))
    out = bench.run_bench(seconds=seconds, base_rows=base, **kw)
    out['workload'] = {'name': workload, **({'profile': profile, 'vision_share': vision_share,
                                             'rows': describe(base)} if base else {})}
    return out


if __name__ == '__main__':
    import json
    import sys
    from sage_bench.memory_phases import typed_options
    given = dict(a.split('=', 1) for a in sys.argv[1:])
    ours: dict[str, Any] = {k: given.pop(k) for k in ('workload', 'profile') if k in given}
    ours.update({k: float(given.pop(k)) for k in ('vision_share', 'full_fraction')
                 if k in given})
    print(json.dumps(run_bench(**ours, **typed_options(given)), indent=1, default=float))
