"""Language encoder core: TextInput text -> MiniLM sentence embedding (no rclpy, no torch)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import time
from typing import Any

import numpy as np
from sage_common.records import LatentRecord

from sage_encoders.errors import InputError
from sage_encoders.minilm import MiniLm
from sage_encoders.minilm_locate import locate_minilm
from sage_encoders.model_files import model_dir
from sage_encoders.runtime import Log


@dataclass(frozen=True)
class LanguageConfig:
    """Resolved settings of the language encoder (see language_encoder_params)."""

    model_dir: str = ''
    runtime: str = 'onnx'
    precision: str = 'fp32'
    providers: str = 'CPUExecutionProvider'
    threads: int = 1
    trt_fp16: bool = False
    lazy_load: bool = True
    export_if_missing: bool = True
    max_chars: int = 2000
    max_tokens: int = 256
    preview_chars: int = 256

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> 'LanguageConfig':
        """Build from the node's resolved parameters."""
        return cls(model_dir=str(values['model_dir']), runtime=str(values['runtime']),
                   precision=str(values['precision']), providers=str(values['providers']),
                   threads=int(values['threads']), trt_fp16=bool(values['trt_fp16']),
                   lazy_load=bool(values['lazy_load']),
                   export_if_missing=bool(values['export_if_missing']),
                   max_chars=int(values['max_chars']), max_tokens=int(values['max_tokens']),
                   preview_chars=int(values['preview.chars']))


class LanguageEncoderCore:
    """Embeds text with MiniLM-L6-v2 (384-d, L2-normalised). Deterministic."""

    def __init__(self, cfg: LanguageConfig, log: Log | None = None) -> None:
        """Find (or export once) the model files and set up the model.

        Raises:
            ModelError: the ONNX export is nowhere and cannot be made (see locate_minilm).
        """
        self.cfg = cfg
        directory = (locate_minilm(cfg.model_dir, cfg.precision, cfg.export_if_missing,
                                   log or (lambda _: None))
                     if cfg.runtime == 'onnx' else model_dir(cfg.model_dir))
        self.model = MiniLm(directory, runtime=cfg.runtime,
                            precision=cfg.precision, providers=cfg.providers,
                            threads=cfg.threads, max_tokens=cfg.max_tokens, log=log,
                            trt_fp16=cfg.trt_fp16)
        if not cfg.lazy_load:
            self.model.load()

    @classmethod
    def from_params(cls, values: Mapping[str, Any], log: Log | None = None
                    ) -> 'LanguageEncoderCore':
        """Build from the node's resolved ROS parameters."""
        return cls(LanguageConfig.from_params(values), log)

    def encode(self, text: str, stamp: float, input_seq: int) -> LatentRecord:
        """Embed one text.

        Raises:
            InputError: empty (or whitespace-only) text, or longer than max_chars.
        """
        if not isinstance(text, str) or not text.strip():
            raise InputError('empty text')
        if len(text) > self.cfg.max_chars:
            raise InputError(f'text has {len(text)} characters, more than max_chars '
                             f'{self.cfg.max_chars}')
        self.model.load()  # encode_ms excludes a lazy load (reported as load_ms)
        t0 = time.perf_counter()
        emb = self.model.embed([text])[0]
        tokens = self.model.tokens(text)
        return LatentRecord(
            stamp=float(stamp), modality='language', input_seq=int(input_seq), codes=None,
            codebook_size=0, embedding=emb,
            features={'length': float(len(text)), 'tokens': float(tokens)},
            encode_ms=(time.perf_counter() - t0) * 1e3, preview_format='text',
            preview=text[: self.cfg.preview_chars].encode('utf-8'), text=text)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of several texts, (N, 384) float32, L2-normalised."""
        return self.model.embed(list(texts))

    def load(self) -> None:
        """Load the model now (it also loads on first use)."""
        self.model.load()

    def unload(self) -> None:
        """Free the model; the next encode reloads it."""
        self.model.unload()
