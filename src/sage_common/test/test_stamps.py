"""Stamps read from a serialized message's CDR bytes agree with the deserialized header."""
import pytest
from rclpy.serialization import serialize_message
from sage_interfaces.msg import FrameRef
from sensor_msgs.msg import Image

from sage_common.stamps import cdr_header_stamp, to_sec


@pytest.mark.parametrize('msg', [Image(data=b'\x01' * 921600, width=640, height=480),
                                 FrameRef(segment='s', slot=3)])
def test_the_stamp_is_read_without_deserializing(msg):
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_795_853_853, 634_245_000
    msg.header.frame_id = 'camera_optical'
    assert cdr_header_stamp(serialize_message(msg)) == to_sec(msg.header.stamp)


def test_too_few_bytes_are_refused():
    with pytest.raises(ValueError, match='no CDR header stamp'):
        cdr_header_stamp(b'\x00\x01\x00\x00\x01')
