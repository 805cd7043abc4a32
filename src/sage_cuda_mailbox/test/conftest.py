"""Fixtures of the mailbox tests: unique segment names, cleaned up after each test."""
from __future__ import annotations

from collections.abc import Iterator
import itertools
import os

import pytest

from sage_cuda_mailbox import unlink

_counter = itertools.count()


@pytest.fixture
def segment_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A segment name unique to this process and test; unlinked (with '_notes') afterwards."""
    name = f'sage_pytest_{os.getpid()}_{next(_counter)}'
    yield name
    for suffix in ('', '_notes', '_b'):
        unlink(name + suffix)
