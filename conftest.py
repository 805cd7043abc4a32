"""Shared pytest fixtures: a distinct ROS_DOMAIN_ID per test that talks DDS."""
from __future__ import annotations

import itertools
import os

import pytest

_BASE = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', str(20 + os.getpid() % 150)))
_counter = itertools.count()


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A domain id no other test of this run uses (within 0..232), set in the environment."""
    domain = 1 + (_BASE + next(_counter)) % 230
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return domain
