"""SAGE's audio_common_msgs (src/compat) are the real releases' messages on the wire.

Both audio_common families name their nested types AudioData and AudioInfo, with different
fields, so SAGE's one package gives the 4.x nested types names of their own (src/compat/README).
What a subscriber matches and decodes is the outer type's name and the CDR bytes: here each
message SAGE builds serialises to the bytes the real definitions give (written out as the
releases define them, serialised by rosbags, a CDR implementation that is not rclpy's; the
alignment padding aside, whose content CDR leaves undefined), and each side reads the other's.
"""
import array

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore, get_types_from_msg

acm = pytest.importorskip('audio_common_msgs.msg')

# The releases' definitions, as their msg files spell them (facts, for comparison).
HUMBLE = {
    'AudioData': 'uint8[] data',
    'AudioInfo': 'uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n'
                 'string coding_format',
    'AudioDataStamped': 'std_msgs/Header header\naudio_common_msgs/AudioData audio',
}
FOUR_X = {
    'AudioData': 'float32[] float32_data\nint32[] int32_data\nint16[] int16_data\n'
                 'int8[] int8_data\nuint8[] uint8_data',
    'AudioInfo': 'int32 format\nint32 channels\nint32 rate\nint32 chunk',
    'Audio': 'audio_common_msgs/AudioData audio_data\naudio_common_msgs/AudioInfo info',
    'AudioStamped': 'std_msgs/Header header\naudio_common_msgs/Audio audio',
}


def _store(defs):
    store = get_typestore(Stores.LATEST)
    types = {}
    for name, text in defs.items():
        types.update(get_types_from_msg(text, f'audio_common_msgs/msg/{name}'))
    store.register(types)
    return store


def _header(store, sec, nanosec, frame_id):
    t = store.types
    return t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=sec,
                                                                          nanosec=nanosec),
                                    frame_id=frame_id)


def _same_on_the_wire(store, ours: bytes, wire: bytes, name: str) -> None:
    """The same bytes, except alignment padding (its content is not defined: rclpy's CDR
    leaves whatever was in the buffer there); the real definitions read ours back."""
    assert len(ours) == len(wire)
    again = bytes(store.serialize_cdr(store.deserialize_cdr(ours, f'audio_common_msgs/msg/{name}'),
                                      f'audio_common_msgs/msg/{name}'))
    assert again == wire


def test_4x_audio_stamped_is_byte_identical_to_the_release():
    store = _store(FOUR_X)
    t = store.types
    samples = np.array([1, -2, 300, -32768, 32767, 0], np.int16)
    real = t['audio_common_msgs/msg/AudioStamped'](
        header=_header(store, 12, 345, 'mic'),
        audio=t['audio_common_msgs/msg/Audio'](
            audio_data=t['audio_common_msgs/msg/AudioData'](
                float32_data=np.array([0.5], np.float32), int32_data=np.array([], np.int32),
                int16_data=samples, int8_data=np.array([-3], np.int8),
                uint8_data=np.array([7, 8], np.uint8)),
            info=t['audio_common_msgs/msg/AudioInfo'](format=8, channels=2, rate=48000,
                                                      chunk=3)))
    wire = bytes(store.serialize_cdr(real, 'audio_common_msgs/msg/AudioStamped'))

    ours = acm.AudioStamped()
    ours.header.stamp.sec, ours.header.stamp.nanosec, ours.header.frame_id = 12, 345, 'mic'
    ours.audio.audio_data.float32_data = array.array('f', [0.5])
    ours.audio.audio_data.int16_data = array.array('h', samples.tobytes())
    ours.audio.audio_data.int8_data = array.array('b', [-3])
    ours.audio.audio_data.uint8_data = array.array('B', [7, 8])
    ours.audio.info.format, ours.audio.info.channels = 8, 2
    ours.audio.info.rate, ours.audio.info.chunk = 48000, 3
    _same_on_the_wire(store, serialize_message(ours), wire, 'AudioStamped')
    back = deserialize_message(wire, acm.AudioStamped)
    assert list(back.audio.audio_data.int16_data) == samples.tolist()
    assert back.audio.audio_data.int8_data.tolist() == [-3]
    assert (back.audio.info.rate, back.audio.info.channels, back.audio.info.chunk) == (48000, 2, 3)
    theirs = store.deserialize_cdr(serialize_message(ours), 'audio_common_msgs/msg/AudioStamped')
    assert theirs.audio.audio_data.int16_data.tolist() == samples.tolist()
    assert theirs.audio.info.format == 8 and theirs.header.frame_id == 'mic'


def test_humble_audio_data_stamped_and_info_are_byte_identical_to_the_release():
    store = _store(HUMBLE)
    t = store.types
    pcm = np.arange(8, dtype=np.uint8)
    real = t['audio_common_msgs/msg/AudioDataStamped'](
        header=_header(store, 3, 4, 'mic'), audio=t['audio_common_msgs/msg/AudioData'](data=pcm))
    ours = acm.AudioDataStamped()
    ours.header.stamp.sec, ours.header.stamp.nanosec, ours.header.frame_id = 3, 4, 'mic'
    ours.audio.data = pcm.tobytes()
    _same_on_the_wire(store, serialize_message(ours),
                      bytes(store.serialize_cdr(real, 'audio_common_msgs/msg/AudioDataStamped')),
                      'AudioDataStamped')
    info = t['audio_common_msgs/msg/AudioInfo'](channels=2, sample_rate=48000,
                                                sample_format='S16LE', bitrate=1536000,
                                                coding_format='wave')
    ours_info = acm.AudioInfo(channels=2, sample_rate=48000, sample_format='S16LE',
                              bitrate=1536000, coding_format='wave')
    _same_on_the_wire(store, serialize_message(ours_info),
                      bytes(store.serialize_cdr(info, 'audio_common_msgs/msg/AudioInfo')),
                      'AudioInfo')
