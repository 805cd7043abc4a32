"""Shared helpers of the orchestrator tests."""
from __future__ import annotations

from pathlib import Path
import shutil

import pytest

FIXTURES = Path(__file__).parent / 'fixtures'


@pytest.fixture
def fixtures() -> Path:
    """Directory of recorded /proc and cgroup files."""
    return FIXTURES


def _make_proc(root: Path, psi: str, meminfo: str) -> Path:
    (root / 'pressure').mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / psi, root / 'pressure' / 'memory')
    shutil.copyfile(FIXTURES / meminfo, root / 'meminfo')
    return root


@pytest.fixture
def make_proc():
    """Return a function (root, psi_fixture, meminfo_fixture) -> root laying out a /proc."""
    return _make_proc
