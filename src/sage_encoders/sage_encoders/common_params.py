"""Parameter groups shared by the three encoder nodes (pure: no rclpy)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sage_common.params import ParamSpec

from sage_encoders.model_files import PRECISIONS


def runtime_params(default_precision: str = 'fp32',
                   model_dir_help: str = "directory with the model files ('' = the packaged "
                                         'models)') -> tuple[ParamSpec, ...]:
    """Model files, runtime, precision, providers, threads, lazy loading."""
    return (
        ParamSpec('model_dir', '', model_dir_help, read_only=True),
        ParamSpec('runtime', 'onnx', 'inference runtime (torch is for benchmarks only)',
                  choices=('onnx', 'torch'), read_only=True),
        ParamSpec('precision', default_precision, 'ONNX variant to run', choices=PRECISIONS,
                  read_only=True),
        ParamSpec('providers', 'CPUExecutionProvider',
                  'onnxruntime execution providers in order, comma separated (missing ones '
                  'are skipped with a log line; CPU is always the last fallback)',
                  read_only=True),
        ParamSpec('trt_fp16', True, 'TensorRT builds FP16 engines (Jetson); no effect without '
                  'TensorrtExecutionProvider', read_only=True),
        ParamSpec('threads', 1, 'onnxruntime intra-op threads', 1, 16, read_only=True),
        ParamSpec('lazy_load', True, 'load the model on first use (false: at start)',
                  read_only=True),
        ParamSpec('unload_states', 'DREAM,CRISIS',
                  'metabolic states in which the model is unloaded and inputs are skipped'),
        ParamSpec('unload_on_memory_red', True,
                  'unload and skip inputs while memory_pressure is red'),
        ParamSpec('diagnostics_period', 1.0, 'seconds between /diagnostics messages', 0.1, 60.0,
                  read_only=True),
    )


def irp_params(max_iterations: int, default_atp: float) -> tuple[ParamSpec, ...]:
    """IRP refinement settings (see sage_common.irp)."""
    return (
        ParamSpec('irp.eps', 0.002, 'converged when the reconstruction error fell by less '
                  'than this fraction over the last irp.k steps', 0.0, 1.0),
        ParamSpec('irp.k', 3, 'convergence window in steps', 1, 50),
        ParamSpec('irp.max_iterations', max_iterations, 'refinement steps per input at most '
                  '(0 = no refinement)', 0, 1000),
        ParamSpec('irp.atp_per_step', 1.0, 'ATP charged per refinement step (two decoder '
                  'passes)', 0.001, 1000.0),
        ParamSpec('irp.default_atp', default_atp, 'ATP per input before any /sage/budget '
                  'allocation has arrived', 0.0, 1e6),
        ParamSpec('irp.candidates', 4, 'codes tried per cell, nearest first (1 = no swaps)',
                  1, 16),
        ParamSpec('irp.target', 0.0, 'reconstruction error (normalised MSE) at or below which '
                  'an input is good enough: refinement stops there, and an input the model '
                  'already reconstructs that well takes no step (0 = off)', 0.0, 1.0),
        ParamSpec('plugin', '', "plugin name in /sage/budget allocations ('' = node name)",
                  read_only=True),
        ParamSpec('irp.publish_initial', False, 'also publish each input before refinement on '
                  "/sage/<modality>/latent_initial (halt_reason 'pending'), so SNARC scores it "
                  'without waiting for the refinement steps its ATP buys (false: SNARC scores '
                  'the refined latent, later by those steps)'),
        ParamSpec('irp.queue', 2, 'with irp.publish_initial, inputs are refined on a thread of '
                  "their own, so the next input's salience does not wait for this one's "
                  'refinement steps: at most this many wait for refinement, and when another '
                  'comes the oldest waiting one is published without steps (atp_spent 0), so '
                  'the refined latents stay a bounded time behind the inputs', 1, 64),
    )


def training_input_params() -> tuple[ParamSpec, ...]:
    """The ring of newest inputs the encoder serves to memory (sage_encoders.input_ring)."""
    return (
        ParamSpec('training_input.keep', 32, 'newest inputs kept at encoder resolution for '
                  'the memory node to ask for (what sleep retrains the encoder on) on '
                  '/sage/<modality>/encoder_input; 0 = off (every request is not found)',
                  0, 1000),
    )


def models_params() -> tuple[ParamSpec, ...]:
    """Following the model version memory promotes after sleep (vision and audio)."""
    return (
        ParamSpec('models.follow_live', True, 'load the model version the memory node names '
                  "live on /sage/models/live for this modality ('packaged' = model_dir) and "
                  'swap it in between two inputs, without a restart (false: ignore it and keep '
                  'the model in use)'),
    )


def validate_runtime(values: Mapping[str, Any]) -> list[str]:
    """Cross-field rules of the runtime group."""
    errors = []
    if values.get('runtime') == 'torch' and values.get('precision') != 'fp32':
        errors.append("runtime 'torch' runs precision 'fp32' only")
    return errors
