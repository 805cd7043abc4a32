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
