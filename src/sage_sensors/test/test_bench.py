"""Benchmark arithmetic: rates, jitter, gaps and latency from stamps."""
import pytest

from sage_sensors.bench import _node_args, stream_stats


def test_a_perfect_stream_has_no_jitter_or_gaps():
    stamps = [100.0 + k / 30 for k in range(300)]
    recv = [s + 0.004 for s in stamps]
    st = stream_stats(recv, stamps, 1 / 30, 10.0)
    assert st['achieved_hz'] == 30.0 and st['stamp_rate_hz'] == pytest.approx(30.0)
    assert st['jitter_ms']['p95'] == pytest.approx(0.0, abs=1e-6)
    assert st['stamp_gaps'] == 0 and st['latency_ms']['p50'] == pytest.approx(4.0)


def test_missing_frames_and_late_stamps_are_counted():
    stamps = [k * 0.01 for k in range(100) if k not in (10, 11, 50)]
    stamps[20] += 0.003
    st = stream_stats(stamps, stamps, 0.01, 1.0)
    assert st['stamp_gaps'] == 3 and st['messages'] == 97
    assert st['jitter_ms']['p50'] == pytest.approx(0.0, abs=1e-6)
    assert st['jitter_ms']['p99'] > 3.0


def test_node_arguments_are_ros_parameters():
    args = _node_args('imu', {'backend': 'synthetic', 'rate': 200.0, 'pace': True})
    assert args[-6:] == ['-p', 'backend:=synthetic', '-p', 'rate:=200.0', '-p', 'pace:=true']
    assert '__node:=imu' in args
