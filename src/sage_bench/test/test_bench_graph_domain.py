"""`sage bench graph` finds its graph by the project's one domain rule (issue 16.5):
$ROS_DOMAIN_ID, else the profile's launch.domain_id, and --domain-id over both; it used to pick
150 + pid % 50, so two benches on one host could collide and a bench ignored the user's domain."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sage_bench.graph import run_bench

pytestmark = pytest.mark.graph

BASE = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90'))



def _bench(profile: Path, **kw) -> dict:
    return run_bench(seconds=0.5, profile=str(profile), warmup_s=0.5, **kw)


def test_bench_graph_runs_on_the_users_ros_domain_id(imu_only_profile, monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(BASE + 1))
    result = _bench(imu_only_profile(BASE + 2))
    assert result['domain_id'] == BASE + 1
    assert os.environ['ROS_DOMAIN_ID'] == str(BASE + 1)


def test_bench_graph_without_a_variable_runs_on_the_profiles_domain(imu_only_profile, monkeypatch):
    monkeypatch.delenv('ROS_DOMAIN_ID', raising=False)
    result = _bench(imu_only_profile(BASE + 2))
    assert result['domain_id'] == BASE + 2
    # the bench's own probe joined that domain too (it reads the graph it started)
    assert os.environ['ROS_DOMAIN_ID'] == str(BASE + 2)


def test_bench_graph_domain_flag_wins(imu_only_profile, monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(BASE + 1))
    result = _bench(imu_only_profile(BASE + 2), domain_id=BASE + 3)
    assert result['domain_id'] == BASE + 3
