"""Encoder benchmark: torch eager vs ORT FP32 vs ORT INT8 (and FP16) on the same inputs.

`run_bench(seconds)` measures, for the vision and audio puzzle VQ-VAEs and MiniLM, per
variant: load time, RSS growth at load, latency p50/p95/p99 of the encode path, and code
agreement (cosine for MiniLM) against ORT FP32. Encode path = what turns one input into its
codes: vision 224x224 RGB -> resize/normalise -> encoder -> nearest codes; audio one 1.024 s
int16 window -> log-mel -> encoder -> codes; language one sentence -> tokenizer -> MiniLM.
It also times the full vision/audio core (`encode` with no refinement: + decoder pass for
recon_error, features, preview) and one IRP step. One intra-op thread everywhere.
"""
from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from sage_common.params import resolve
from sage_encoders import audio_encoder_params, vision_encoder_params
from sage_encoders.model_files import model_dir, PACKAGED_DIR, read_meta
from sage_encoders.quantize import lookup, nearest_codes

TARGETS_MS = {'vision_encode_p50': 5.0, 'audio_encode_p50': 3.0, 'language_encode_p50': 12.0,
              'puzzle_load': 50.0}


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _lat(fn: Callable[[int], Any], n_inputs: int, seconds: float, warmup: int = 3
         ) -> dict[str, float]:
    """Wall-time percentiles, plus this thread's CPU time per call (cpu_p50_ms).

    With one intra-op thread onnxruntime and torch compute in the calling thread, so the
    CPU time is what a call costs even when other processes share the cores (wall time
    then includes waiting for a core).
    """
    for i in range(warmup):
        fn(i % n_inputs)
    wall, cpu = [], []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end or len(wall) < 5:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        fn(i % n_inputs)
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
        i += 1
    a = np.array(wall)
    return {'p50_ms': float(np.percentile(a, 50)), 'p95_ms': float(np.percentile(a, 95)),
            'p99_ms': float(np.percentile(a, 99)), 'cpu_p50_ms': float(np.median(cpu)),
            'runs': len(wall)}


def _puzzle(modality: str, seconds: float, variants: tuple[str, ...], threads: int
            ) -> dict[str, Any]:
    # lazy: keeps onnxruntime and cv2 out of this module's import
    from sage_encoders import data
    from sage_encoders.preprocess import model_mel, pcm_to_float, preprocess_audio
    from sage_encoders.preprocess import preprocess_rgb
    from sage_encoders.puzzle import PuzzleModel, RuntimeConfig

    if modality == 'vision':
        raw = [data.demo_frame(i) for i in range(8)]  # 224x224 RGB

        def prep(i: int) -> np.ndarray:
            return preprocess_rgb(raw[i], 240)
    else:
        mel = model_mel(read_meta(model_dir(''), 'audio'))  # the packaged model's front end
        rng = np.random.default_rng(data.HELDOUT_SEED + 7)
        raw = [data.to_pcm(data.synth_clip(rng, 1.024)[:mel.window_samples]) for _ in range(8)]

        def prep(i: int) -> np.ndarray:
            return preprocess_audio(pcm_to_float(raw[i]), mel)

    out: dict[str, Any] = {'inputs': len(raw)}
    ref_codes: list[np.ndarray] = []
    for variant in variants:
        runtime, precision = ('torch', 'fp32') if variant == 'torch' else ('onnx', variant)
        gc.collect()
        rss0 = _rss_mb()
        model = PuzzleModel(RuntimeConfig(modality, runtime=runtime, precision=precision,
                                          threads=threads))
        t0 = time.perf_counter()
        model.load()
        load_ms = (time.perf_counter() - t0) * 1e3
        cb = model.codebook
        codes = [nearest_codes(model.encode(prep(i)), cb) for i in range(len(raw))]
        if variant == 'fp32':
            ref_codes = codes
        res: dict[str, Any] = {
            'load_ms': load_ms, 'rss_growth_mb': _rss_mb() - rss0, 'rss_mb': _rss_mb(),
            'providers': model.providers,
            'encode': _lat(lambda i: nearest_codes(model.encode(prep(i)), cb), len(raw),
                           seconds),
            'decode': _lat(lambda i: model.decode(lookup(codes[i], cb)), len(raw),
                           seconds / 2)}
        if ref_codes:
            res['code_agreement_vs_ort_fp32'] = float(np.mean(
                [(c == r).mean() for c, r in zip(codes, ref_codes)]))
        out[variant] = res
        model.unload()
    out['core'] = _core(modality, raw, seconds, threads)
    return out


def _core(modality: str, raw: list[np.ndarray], seconds: float, threads: int
          ) -> dict[str, Any]:
    """Full core path (ORT FP32) without refinement, and the cost of IRP steps."""
    if modality == 'vision':
        # lazy: keeps onnxruntime and cv2 out of this module's import
        from sage_encoders.vision_core import VisionEncoderCore
        core: Any = VisionEncoderCore.from_params(resolve(
            vision_encoder_params.PARAMS, {'threads': threads}, vision_encoder_params.validate))

        def run(i: int, atp: float) -> Any:
            return core.encode(raw[i], 0.0, i, atp=atp)
    else:
        # lazy: keeps onnxruntime and cv2 out of this module's import
        from sage_encoders.audio_core import AudioEncoderCore
        core = AudioEncoderCore.from_params(resolve(
            audio_encoder_params.PARAMS, {'threads': threads}, audio_encoder_params.validate))

        def run(i: int, atp: float) -> Any:
            return core.encode_window(raw[i], 0.0, atp=atp)
    no_irp = _lat(lambda i: run(i, 0.0), len(raw), seconds / 2)
    with_irp = _lat(lambda i: run(i, 4.0), len(raw), seconds / 2)
    gains = [1.0 - run(i, 4.0).energy_final / max(run(i, 4.0).energy_initial, 1e-12)
             for i in range(len(raw))]
    return {'encode_no_irp': no_irp, 'encode_4_irp_steps': with_irp,
            'irp_step_ms': (with_irp['p50_ms'] - no_irp['p50_ms']) / 4.0,
            'irp_4_steps_recon_reduction': float(np.mean(gains)),
            'load_ms': core.model.load_ms}


def _language(seconds: float, variants: tuple[str, ...], threads: int) -> dict[str, Any]:
    # lazy: keeps onnxruntime and cv2 out of this module's import
    from sage_encoders.export import LANGUAGE_SENTENCES
    from sage_encoders.minilm import MiniLm
    from sage_encoders.minilm_locate import locate_minilm

    sentences = list(LANGUAGE_SENTENCES)
    out: dict[str, Any] = {'inputs': len(sentences)}
    ref: np.ndarray | None = None
    for variant in variants:
        if variant == 'fp16':
            continue
        runtime, precision = ('torch', 'fp32') if variant == 'torch' else ('onnx', variant)
        gc.collect()
        rss0 = _rss_mb()
        # The export the language node would use (a colcon build keeps it in the user folder).
        directory = (locate_minilm('', precision, False, lambda _: None)
                     if runtime == 'onnx' else PACKAGED_DIR)
        model = MiniLm(directory, runtime=runtime, precision=precision, threads=threads)
        t0 = time.perf_counter()
        model.load()
        load_ms = (time.perf_counter() - t0) * 1e3
        emb = model.embed(sentences)
        if variant == 'fp32':
            ref = emb
        res: dict[str, Any] = {'load_ms': load_ms, 'rss_growth_mb': _rss_mb() - rss0,
                               'rss_mb': _rss_mb(), 'providers': model.providers,
                               'encode': _lat(lambda i: model.embed([sentences[i]]),
                                              len(sentences), seconds)}
        if ref is not None:
            res['cosine_min_vs_ort_fp32'] = float((emb * ref).sum(1).min())
        out[variant] = res
        model.unload()
    return out


def run_bench(seconds: float = 2.0, models: str = 'vision,audio,language',
              variants: str = 'fp32,int8,fp16,torch', threads: int = 1, **_: Any
              ) -> dict[str, Any]:
    """Benchmark the encoders; JSON-able result.

    Args:
        seconds: measuring time per variant and model (latency loops).
        models: comma list of vision, audio, language.
        variants: comma list of fp32, int8, fp16 (ORT) and torch (eager); ORT FP32 is
            always measured first as the reference, torch last (its import is counted in its
            load time and RSS growth).
        threads: intra-op threads.

    Returns:
        Per model and variant: load_ms, rss_growth_mb, encode/decode latency percentiles,
        agreement with ORT FP32; a `targets` section with the issue's limits and pass flags.
    """
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    wanted = [v.strip() for v in variants.split(',') if v.strip()]
    order = tuple(['fp32'] + [v for v in ('int8', 'fp16') if v in wanted]
                  + (['torch'] if 'torch' in wanted else []))
    names = [m.strip() for m in models.split(',') if m.strip()]
    result: dict[str, Any] = {'seconds': seconds, 'threads': threads, 'variants': list(order),
                              'cpu_count': os.cpu_count(),
                              'loadavg_1m': os.getloadavg()[0]}
    for name in names:
        if name in ('vision', 'audio'):
            result[name] = _puzzle(name, seconds, order, threads)
        elif name == 'language':
            result[name] = _language(seconds, order, threads)
    targets: dict[str, Any] = {}
    for m in ('vision', 'audio', 'language'):
        if m in result:
            enc = result[m]['fp32']['encode']
            limit = TARGETS_MS[f'{m}_encode_p50']
            targets[f'{m}_encode_p50_ms'] = {'value': enc['p50_ms'], 'cpu': enc['cpu_p50_ms'],
                                             'limit': limit, 'ok': enc['p50_ms'] <= limit}
        if m in ('vision', 'audio') and m in result:
            load = result[m]['fp32']['load_ms']
            targets[f'{m}_load_ms'] = {'value': load, 'limit': TARGETS_MS['puzzle_load'],
                                       'ok': load < TARGETS_MS['puzzle_load']}
    result['targets'] = targets
    return result


if __name__ == '__main__':
    import json
    import sys

    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    print(json.dumps(run_bench(secs), indent=1))
