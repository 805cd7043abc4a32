"""Shared fixtures: resolved default parameters and small test inputs."""
from __future__ import annotations

import pytest
from sage_common.params import resolve
from sage_encoders import audio_encoder_params, vision_encoder_params


@pytest.fixture
def vision_params():
    return resolve(vision_encoder_params.PARAMS, {}, vision_encoder_params.validate)


@pytest.fixture
def audio_params():
    return resolve(audio_encoder_params.PARAMS, {}, audio_encoder_params.validate)
