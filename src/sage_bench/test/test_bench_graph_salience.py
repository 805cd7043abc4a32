"""`sage bench graph` on a real audio graph (microphone -> audio encoder -> SNARC): time to first
salience per modality from the graph's start, and audio latency from the window's last sample
(issue 16 items 2-3)."""
from __future__ import annotations

import os

import pytest
import yaml

from sage_bench.graph import run_bench

pytestmark = pytest.mark.graph

BASE = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90'))
NODES = ('microphone', 'audio_encoder', 'snarc')


@pytest.fixture
def audio_profile(tmp_path, nano_with_only):
    data = nano_with_only(NODES)
    data['launch']['domain_id'] = BASE + 4
    path = tmp_path / 'audio_only.yaml'
    path.write_text(yaml.safe_dump(data))
    return path, data['audio_encoder']['ros__parameters']


def test_bench_reports_first_audio_salience_and_latency_from_the_windows_last_sample(
        audio_profile, monkeypatch):
    monkeypatch.delenv('ROS_DOMAIN_ID', raising=False)
    path, enc = audio_profile
    result = run_bench(seconds=6.0, profile=str(path), warmup_s=4.0)
    window_s = enc['window_samples'] / enc['sample_rate']
    offset = result['salience_latency_ms']['last_sample_offset_s']['audio']
    assert offset == pytest.approx((enc['window_samples'] - 1) / enc['sample_rate'])
    # a window must be captured after the start before it can be scored
    first = result['first_salience_s']['audio']
    assert window_s < first < 4.0 + result['seconds']
    audio = result['salience_latency_ms']['modalities']['audio']
    assert audio['n'] >= 1
    # from the last sample: after it was captured, and not a window's length (the window's
    # first sample, which the Salience stamp carries, is a whole window earlier)
    assert 0.0 < audio['p50'] < window_s * 1e3
    assert result['first_arrival_s']['/sage/salience'] <= first
    # the first salience split: its window was captured after the start, a window long, and
    # scored after its newest sample
    parts = result['first_salience_input']['audio']
    assert parts['first_sample_s'] > 0.0
    assert parts['newest_sample_s'] - parts['first_sample_s'] == pytest.approx(offset)
    assert parts['scored_after_s'] > 0.0
    assert parts['newest_sample_s'] + parts['scored_after_s'] == pytest.approx(first)
    assert result['encode_ms']['audio']['n'] >= 1
    assert result['first_salience_input_seq']['audio'] >= 0
