"""Shared fixtures: resolved default parameters and small test inputs."""
from __future__ import annotations

import pytest
from sage_common.params import resolve


@pytest.fixture
def vision_params():
    from sage_encoders.vision_encoder_params import PARAMS, validate
    return resolve(PARAMS, {}, validate)


@pytest.fixture
def audio_params():
    from sage_encoders.audio_encoder_params import PARAMS, validate
    return resolve(PARAMS, {}, validate)


@pytest.fixture(scope='session')
def minilm_dir():
    """Packaged model dir with MiniLM exported (the install step; done once if missing)."""
    from sage_encoders.minilm import ONNX_NAME, TOKENIZER_NAME
    from sage_encoders.model_files import PACKAGED_DIR
    needed = [PACKAGED_DIR / ONNX_NAME.format(precision=p) for p in ('fp32', 'int8')]
    needed += [PACKAGED_DIR / TOKENIZER_NAME, PACKAGED_DIR / 'language_quality.json']
    if not all(p.is_file() for p in needed):
        from sage_encoders.export import export_language
        export_language(PACKAGED_DIR)
    return PACKAGED_DIR

