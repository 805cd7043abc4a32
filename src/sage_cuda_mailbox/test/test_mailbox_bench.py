"""The benchmark runs end to end and reports JSON-able numbers (values, not timings)."""
from __future__ import annotations

import json

import pytest

from sage_cuda_mailbox.bench import parse_size, percentiles, run_bench


def test_sizes_parse_and_bad_ones_are_refused() -> None:
    assert parse_size('640x480') == (640, 480)
    with pytest.raises(ValueError, match='640x480'):
        parse_size('640*480')
    with pytest.raises(ValueError, match='unknown transport'):
        run_bench(0.1, transports=('carrier_pigeon',))


def test_percentiles_of_known_values() -> None:
    stats = percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats['n'] == 5
    assert stats['p50_ms'] == 3.0
    assert stats['max_ms'] == 100.0
    assert percentiles([])['n'] == 0


def test_bench_hands_every_frame_over_on_every_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('ROS_DOMAIN_ID', '164')
    result = run_bench(0.5, sizes=('64x48',), rate_hz=40.0, pbm_records=20_000)
    json.dumps(result)  # JSON-able
    per = result['handoff']['64x48']
    for transport in ('mailbox', 'dds_shm', 'dds_default'):
        stats = per[transport]
        assert 'error' not in stats, stats
        assert stats['frames_sent'] == 20
        # DDS keep-last depth 1 may replace a sample a slow reader has not taken yet.
        assert 0 < stats['frames_received'] <= stats['frames_sent']
        assert 0 < stats['p50_ms'] <= stats['p99_ms'] <= stats['max_ms']
        assert stats['stale'] == 0
    assert per['mailbox']['frames_received'] == per['mailbox']['frames_sent']
    assert set(result['speedup']['64x48']) == {'p50_vs_dds_shm', 'p50_vs_dds_default'}
    rates = result['pbm']
    assert rates['native']['records'] == 20_000
    assert rates['native']['push_per_s'] > 0 and rates['python']['pop_per_s'] > 0
