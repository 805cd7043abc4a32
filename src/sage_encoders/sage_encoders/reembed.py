"""Stored training inputs embedded by a model folder as its encoder embeds them (no torch).

When sleep promotes a new puzzle model, the stored memories' embeddings were made by the old
one, and SNARC compares an input only with memories its own model embedded: under the new
model its novelty memory would start empty. So the sleep worker embeds the stored inputs with
the new version before it commits (`embed_stored`, the encoder cores' own preprocessing and
embedding) into the version's MEMORY_EMBEDDINGS_FILE, which SNARC loads when the version
goes live.
"""
from __future__ import annotations

from pathlib import Path

from sage_encoders.audio_core import AudioConfig, AudioEncoderCore
from sage_encoders.model_files import read_meta
from sage_encoders.preprocess import model_mel
from sage_encoders.puzzle import IrpConfig, RuntimeConfig
from sage_encoders.vision_core import VisionConfig, VisionEncoderCore

# The profiles run the puzzle encoders at fp32 on onnxruntime; the CPU is where the worker
# runs beside the graph (no GPU session of its own to set up for a few thousand inputs).
EMBED_PRECISION = 'fp32'
EMBED_PROVIDERS = 'CPUExecutionProvider'


def stored_input_core(modality: str, directory: Path, threads: int = 1
                      ) -> VisionEncoderCore | AudioEncoderCore:
    """An encoder core on a model folder, for `embed_stored` only.

    The model's own input size (vision) and front end (audio), as sleep decodes the inputs
    it trains on; nothing kept, no voice model. The model loads on the first input.

    Raises:
        ModelError: the folder's metadata is missing or not this modality's.
    """
    runtime = RuntimeConfig(modality, model_dir=str(directory), runtime='onnx',
                            precision=EMBED_PRECISION, providers=EMBED_PROVIDERS,
                            threads=threads)
    meta = read_meta(Path(directory), modality)
    if modality == 'vision':
        return VisionEncoderCore(VisionConfig(
            runtime, IrpConfig(), input_size=int(meta['config']['input_size'][0]),
            training_keep=0))
    mel = model_mel(meta)
    return AudioEncoderCore(AudioConfig(
        runtime, IrpConfig(), sample_rate=mel.sample_rate, window_samples=mel.window_samples,
        hop_samples=min(AudioConfig.hop_samples, mel.window_samples), training_keep=0,
        voice=False))
