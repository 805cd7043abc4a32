"""Inference runtimes for the puzzle VQ-VAEs: ONNX Runtime (default) or torch eager.

Chosen by name (`runtime` parameter) from BACKENDS. The ONNX backend never imports torch;
the torch backend imports it lazily (benchmarks and parity tests only).
"""
from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort  # imported with the module so a model load times sessions only
from sage_common.user_cache import cache_dir

from sage_encoders.errors import ModelError
from sage_encoders.model_files import onnx_path

Log = Callable[[str], None]

# Short names accepted in the providers parameter.
PROVIDER_ALIASES = {'tensorrt': 'TensorrtExecutionProvider', 'trt': 'TensorrtExecutionProvider',
                    'cuda': 'CUDAExecutionProvider', 'cpu': 'CPUExecutionProvider'}
CPU_PROVIDER = 'CPUExecutionProvider'
# Providers whose absence means the encoders run on the CPU of a machine that has a GPU.
GPU_PROVIDERS = frozenset({'TensorrtExecutionProvider', 'CUDAExecutionProvider'})


def _noop(_: str) -> None:
    pass


_BLAS_LIMITED = False


def limit_blas_threads() -> None:
    """Run numpy's BLAS on one thread in this process.

    The per-input matrix products (900 x 32 x 128 code distances) are too small to gain
    from threads, and on shared cores two OpenBLAS threads spin and wait: median 1.3 ms on
    one thread vs 3-8 ms on two. One thread also keeps float rounding, and so the codes,
    independent of the machine's core count. Needs threadpoolctl (skipped without it; then
    set OPENBLAS_NUM_THREADS=1 in the environment).
    """
    global _BLAS_LIMITED
    if _BLAS_LIMITED:
        return
    _BLAS_LIMITED = True
    try:
        from threadpoolctl import threadpool_limits  # lazy: optional
    except ImportError:
        return
    threadpool_limits(limits=1, user_api='blas')


def resolve_providers(requested: str, log: Log = _noop) -> list[str]:
    """Turn a comma string of providers into those available here, CPU always last.

    Requested providers that this onnxruntime build lacks are skipped with one log line
    naming asked vs available (e.g. TensorRT on an x86 CPU machine), so one profile runs on
    a Jetson and here; `fallback_note` keeps the fallback on /diagnostics.

    Args:
        requested: e.g. 'TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider'
            or 'tensorrt,cuda,cpu'.
        log: receives one line when a requested provider is missing.

    Returns:
        Providers to pass to onnxruntime, in order.
    """
    available = ort.get_available_providers()
    asked = canonical_providers(requested)
    out = [name for name in asked if name in available and name != CPU_PROVIDER]
    missing = [name for name in asked if name not in available]
    out.append(CPU_PROVIDER)
    if missing:
        log(f'execution providers asked: {",".join(asked)}; not in this onnxruntime: '
            f'{",".join(missing)} (available: {",".join(available)}); '
            f'running on {",".join(out)}')
    return out


def canonical_providers(requested: str) -> list[str]:
    """Full onnxruntime names of a comma string of providers (aliases expanded, no repeats)."""
    out: list[str] = []
    for raw in (p.strip() for p in requested.split(',')):
        name = PROVIDER_ALIASES.get(raw.lower(), raw)
        if raw and name not in out:
            out.append(name)
    return out


def fallback_note(requested: str, live: list[str]) -> str:
    """Why a session runs without a GPU provider it was asked for; '' when it does not.

    Args:
        requested: the providers parameter (comma string, aliases allowed).
        live: providers of the loaded session (`InferenceSession.get_providers()`).
    """
    lost = [p for p in canonical_providers(requested) if p in GPU_PROVIDERS and p not in live]
    if not lost:
        return ''
    return (f'GPU execution provider fallback: asked {",".join(lost)}, '
            f'live {",".join(live) or "none"}')


def make_session(path: Path, providers: list[str], threads: int, trt_fp16: bool = False
                 ) -> Any:
    """Create an onnxruntime session (one intra-op thread by default: cores are shared).

    With TensorRT, engines are cached under the user cache's trt folder (~/.cache/sage/trt)
    and built with FP16 kernels when trt_fp16 is set (the usual Jetson setting for an FP32 graph).

    Raises:
        ModelError: the file is missing or onnxruntime rejects it.
    """
    if not path.is_file():
        raise ModelError(f'ONNX model not found: {path}')
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    plist: list[Any] = []
    for p in providers:
        if p == 'TensorrtExecutionProvider':
            cache = str(cache_dir('trt'))
            os.makedirs(cache, exist_ok=True)
            plist.append((p, {'trt_fp16_enable': trt_fp16,
                              'trt_engine_cache_enable': True,
                              'trt_engine_cache_path': cache}))
        else:
            plist.append(p)
    try:
        return ort.InferenceSession(str(path), so, providers=plist)
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise ModelError(f'onnxruntime cannot load {path}: {err}') from err


class PuzzleBackend(Protocol):
    """Encoder and decoder of a puzzle VQ-VAE behind one runtime."""

    providers: list[str]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(B, C, H, W) float32 -> (B, D, h, w) float32 continuous latent."""
        ...

    def decode(self, z_q: np.ndarray) -> np.ndarray:
        """(B, D, h, w) float32 -> (B, C, H, W) float32 reconstruction."""
        ...


class OrtBackend:
    """Two onnxruntime sessions (encoder, decoder) of one precision."""

    def __init__(self, directory: Path, modality: str, precision: str, providers: list[str],
                 threads: int, trt_fp16: bool = False) -> None:
        self._enc = make_session(onnx_path(directory, modality, 'encoder', precision),
                                 providers, threads, trt_fp16)
        self._dec = make_session(onnx_path(directory, modality, 'decoder', precision),
                                 providers, threads, trt_fp16)
        self.providers = list(self._enc.get_providers())

    def encode(self, x: np.ndarray) -> np.ndarray:
        return self._enc.run(None, {'x': x})[0]

    def decode(self, z_q: np.ndarray) -> np.ndarray:
        return self._dec.run(None, {'z_q': z_q})[0]


class TorchBackend:
    """Eager torch on CPU (imports torch; never used by the nano profile)."""

    def __init__(self, directory: Path, modality: str, precision: str, providers: list[str],
                 threads: int, trt_fp16: bool = False) -> None:
        # lazy: keeps torch out of this module's import
        import torch
        from sage_encoders.vqvae import load

        if precision != 'fp32':
            raise ModelError('the torch runtime runs fp32 only')
        torch.set_num_threads(threads)
        self._torch = torch
        self._model = load(directory / f'{modality}_vqvae.pt')
        self.providers = ['torch-cpu']

    def encode(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._model.encoder(self._torch.from_numpy(x)).numpy()

    def decode(self, z_q: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._model.decoder(self._torch.from_numpy(z_q)).numpy()


BACKENDS: dict[str, type] = {'onnx': OrtBackend, 'torch': TorchBackend}
