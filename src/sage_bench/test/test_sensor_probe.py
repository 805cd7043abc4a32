"""Benchmark arithmetic: rates, jitter, gaps and latency from stamps."""
import pytest

from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, Imu

from sage_interfaces.msg import AudioFrame
from sage_bench.sensor_probe import cdr_header_stamp, lost_samples, queue_depth, stream_stats


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


def test_ticks_the_node_dropped_are_counted_once():
    # The pacer skipped ticks 10, 11 and 50 (the node counts 3 drops); the receiver sees the
    # same 3 ticks as stamp gaps. They are 3 lost samples, not 6.
    stamps = [k * 0.01 for k in range(100) if k not in (10, 11, 50)]
    st = stream_stats(stamps, stamps, 0.01, 1.0)
    lost = lost_samples(st['stamp_gaps'], node_dropped=3)
    assert lost == {'lost': 3, 'lost_at_node': 3, 'lost_in_transport': 0}
    # One more gap than the node dropped was lost between the node and the reader.
    assert lost_samples(4, node_dropped=3)['lost_in_transport'] == 1


@pytest.mark.parametrize('msg_type', [Image, Imu, AudioFrame])
def test_the_probe_reads_the_stamp_from_the_serialised_message(msg_type):
    msg = msg_type()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_763_780_000, 250_000_000
    msg.header.frame_id = 'camera_optical_frame'
    assert cdr_header_stamp(serialize_message(msg)) == 1_763_780_000.25


def test_a_big_endian_stamp_and_a_truncated_message():
    data = bytes([0, 0, 0, 0]) + (7).to_bytes(4, 'big') + (500_000_000).to_bytes(4, 'big')
    assert cdr_header_stamp(data) == 7.5
    with pytest.raises(ValueError, match='too short'):
        cdr_header_stamp(b'\x00\x01\x00\x00\x01')


def test_reader_queues_hold_the_requested_seconds():
    assert queue_depth(1 / 200, 1.0) == 200          # IMU
    assert queue_depth(0.032, 1.0) == 32             # audio frames
    assert queue_depth(1 / 30, 0.1) == 5             # never below the sensor default
