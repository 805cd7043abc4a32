"""SNARC scoring benchmark: cost per input with a large novelty memory.

`run_bench` fills the memory index with `memories` clustered unit vectors (like stored
experiences: many near-duplicates of a few hundred scenes), then scores a synthetic vision
stream (32-d embeddings, 30x30 code grids, raw features; occasional events) interleaved with
IMU samples at 200 Hz, and reports the wall time of each `score_latent` call and of each
`score_imu` call (most only buffer a sample; one per `imu.window_s` scores a window). Audio
latents carry the encoder's newest-hop level and 16 spectral band features, so the room
background and the sound descriptors are in the measured path.

It also times a runtime parameter change with that memory (`SnarcCore.reconfigured`, what the
node does on each of the orchestrator's threshold changes) against, in the same run, a
checkpoint restore of the same scorer (which copies every vector and retrains the quantiser).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from sage_common.params import resolve
from sage_common.records import ImuRecord, LatentRecord
from sage_snarc.snarc_core import SnarcCore
from sage_snarc.snarc_params import PARAMS


def _memories(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centers = rng.normal(size=(max(1, n // 200), dim))
    x = centers[rng.integers(0, centers.shape[0], n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def run_bench(seconds: float = 10.0, *, memories: int = 100_000, dim: int = 32,
              modality: str = 'vision', rate_hz: float = 10.0, seed: int = 0,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure SNARC scoring cost per input.

    Args:
        seconds: wall-time budget for the timed loop (after the memory is built).
        memories: vectors in the novelty memory index of the scored modality.
        dim: embedding dimension (32 = the puzzle encoders, 384 = MiniLM).
        modality: modality of the scored latents ('vision', 'audio' or 'language').
        rate_hz: stamp rate of the scored stream (IMU runs at 200 Hz beside it).
        seed: RNG seed of the synthetic data.
        params: SNARC parameter overrides.

    Returns:
        p50/p95/p99/max of score_latent in ms, inputs scored, inputs per second, the
        memory size and the time spent building the index.
    """
    rng = np.random.default_rng(seed)
    values = resolve(PARAMS, params or {})  # every value: the changes below alter one
    core = SnarcCore.from_params(values)
    t0 = time.perf_counter()
    for x in _memories(memories, dim, rng):
        core.add_memory(modality, x)
    build_s = time.perf_counter() - t0

    base = rng.normal(size=dim)
    grid = rng.integers(0, 128, size=(30, 30)).astype(np.uint16)
    times: list[float] = []
    imu_times: list[float] = []
    stamp, i = 1_700_000_000.0, 0
    deadline = time.perf_counter() + seconds
    imu_per_input = max(1, int(round(200.0 / rate_hz)))
    while time.perf_counter() < deadline:
        event = i % 50 == 49
        emb = (rng.normal(size=dim) if event else base + 0.05 * rng.normal(size=dim))
        codes = grid.copy()
        flips = rng.integers(0, 900, size=300 if event else 15)
        codes.flat[flips] = rng.integers(0, 128, size=flips.size)
        feats = {'brightness': 0.5, 'brightness_change': 0.1 if event else 0.001,
                 'motion': 0.1 if event else 0.001, 'rms_db': -50.0, 'onset': 0.05,
                 'colour_change': 0.2 if event else 0.003 + 0.001 * rng.random()}
        if modality == 'audio':
            level = -20.0 if event else -50.0 + rng.normal()
            feats.update(hop_db=level, hop_peak_db=level + 3.0, hop_onset_db=30.0 if event
                         else 3.0, **{f'band_{b:02d}': level + rng.normal()
                                      for b in range(16)})
        rec = LatentRecord(
            stamp=stamp, modality=modality, input_seq=i, codes=codes if modality != 'language'
            else None, codebook_size=128, embedding=emb.astype(np.float32),
            features=feats, recon_error=0.02)
        for k in range(imu_per_input):
            sample = ImuRecord(stamp + k / 200.0, 0, np.array([0.0, 0.0, 9.81])
                               + 0.03 * rng.normal(size=3), 0.005 * rng.normal(size=3))
            t = time.perf_counter()
            core.score_imu(sample)
            imu_times.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        core.score_latent(rec)
        times.append((time.perf_counter() - t) * 1e3)
        stamp += 1.0 / rate_hz
        i += 1
    arr = np.asarray(times)
    imu = np.asarray(imu_times)
    reconf, restore = [], []
    for k in range(5):
        t = time.perf_counter()
        core = core.reconfigured({**values, 'threshold.offset.dream': 0.1 + 0.01 * k})
        reconf.append((time.perf_counter() - t) * 1e3)
    for _ in range(3):
        t = time.perf_counter()
        SnarcCore.from_params(values).load_state_dict(core.state_dict())
        restore.append((time.perf_counter() - t) * 1e3)
    return {
        'modality': modality, 'memories': memories, 'dim': dim, 'inputs': int(arr.size),
        'build_s': round(build_s, 3),
        'p50_ms': float(np.percentile(arr, 50)), 'p95_ms': float(np.percentile(arr, 95)),
        'p99_ms': float(np.percentile(arr, 99)), 'max_ms': float(arr.max()),
        'inputs_per_s': float(arr.size / max(1e-9, arr.sum() / 1e3)),
        'imu_samples': int(imu.size), 'imu_p50_ms': float(np.percentile(imu, 50)),
        'imu_p95_ms': float(np.percentile(imu, 95)), 'imu_max_ms': float(imu.max()),
        # One latent plus the IMU samples that arrive with it: the node's cost per input.
        'with_imu_p95_ms': float(np.percentile(arr + imu[:arr.size * imu_per_input]
                                               .reshape(arr.size, imu_per_input).sum(1), 95)),
        'reconfigure_p50_ms': float(np.median(reconf)),
        'checkpoint_restore_p50_ms': float(np.median(restore)),
        'reconfigure_over_restore': float(np.median(reconf) / max(1e-9, np.median(restore))),
    }
