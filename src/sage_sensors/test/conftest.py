"""Shared fixtures: one generated sample set per test session (a few seconds)."""
from __future__ import annotations

from pathlib import Path
import shutil

import pytest

from sage_sensors.samples import ESPEAK, ensure_samples


@pytest.fixture(scope='session')
def samples_dir(tmp_path_factory) -> Path:
    """A freshly generated sample folder (skips when espeak-ng is not installed)."""
    if not shutil.which(ESPEAK):
        pytest.skip(f'espeak-ng not installed at {ESPEAK}')
    return ensure_samples(tmp_path_factory.mktemp('samples') / 'samples', seed=7)
