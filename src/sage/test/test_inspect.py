"""The pure parts of `sage topic` and `sage param`: real messages shown as data (big arrays
summarised), command-line values typed as the parameter is, node names, listening QoS and the
rate window. The live graph is test_inspect_graph's."""
from __future__ import annotations

import json

import pytest
from sensor_msgs.msg import Image, Imu
import yaml

from sage.inspect_messages import (MessageTypeError, message_class, message_data, render_json,
                                   render_yaml)
from sage.inspect_rate import RateWindow
from sage.inspect_values import (BOOL, BOOL_ARRAY, DOUBLE, DOUBLE_ARRAY, INTEGER,
                                 INTEGER_ARRAY, NOT_SET, STRING, STRING_ARRAY, NodeNameError,
                                 PublisherQos, ValueParseError, dump_yaml, format_value,
                                 parse_value, resolve_node, subscriber_qos)
from sage_interfaces.msg import Latent, Salience


def test_a_message_is_shown_field_by_field_with_float32_digits():
    msg = Salience(modality='vision', surprise=0.3, salience=0.7, attend=True, input_seq=12)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 17, 500
    data = message_data(msg)
    assert list(data)[:3] == ['header', 'modality', 'surprise']
    assert data['header'] == {'stamp': {'sec': 17, 'nanosec': 500}, 'frame_id': ''}
    assert data['surprise'] == 0.3 and data['salience'] == 0.7  # not 0.30000001192092896
    assert data['attend'] is True and data['input_seq'] == 12
    doc = render_yaml(data)
    assert doc.endswith('---\n') and yaml.safe_load(doc.removesuffix('---\n')) == data
    line = render_json(data)
    assert line.count('\n') == 1 and json.loads(line) == data


def test_big_arrays_are_summarised_and_small_ones_kept():
    image = Image(height=480, width=640, encoding='rgb8', step=1920)
    image.data = bytes(range(256)) * 3600
    data = message_data(image)
    assert data['data'] == '<921600 x uint8: 0, 1, 2, 3, ...>'
    assert data['width'] == 640
    imu = Imu()
    imu.orientation_covariance[0] = -1.0
    assert message_data(imu)['orientation_covariance'] == [-1.0] + [0.0] * 8  # 9: shown
    latent = Latent(modality='language', text='hi', feature_names=['a', 'b'])
    latent.embedding = [0.25] * 384
    shown = message_data(latent)
    assert shown['embedding'].startswith('<384 x float: 0.25, 0.25')
    assert shown['feature_names'] == ['a', 'b']
    assert len(message_data(latent, max_items=0)['embedding']) == 384  # 0: everything


def test_types_are_found_from_the_graph_name():
    assert message_class('sage_interfaces/msg/Salience') is Salience
    with pytest.raises(MessageTypeError, match='not a type name'):
        message_class('Salience')
    with pytest.raises(MessageTypeError, match='not installed here'):
        message_class('no_such_pkg/msg/Thing')


@pytest.mark.parametrize('type_code, text, value', [
    (DOUBLE, '10', 10.0), (DOUBLE, '2.5e-1', 0.25), (INTEGER, '7', 7), (INTEGER, '0x10', 16),
    (BOOL, 'true', True), (BOOL, 'False', False), (BOOL, '0', False), (STRING, '10', '10'),
    (DOUBLE_ARRAY, '[1, 2.5]', [1.0, 2.5]), (INTEGER_ARRAY, '1,2,3', [1, 2, 3]),
    (BOOL_ARRAY, '[true, no]', [True, False]), (STRING_ARRAY, "['a b', c]", ['a b', 'c']),
])
def test_values_are_read_as_the_declared_type(type_code, text, value):
    parsed = parse_value(type_code, text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize('type_code, text, message', [
    (DOUBLE, 'fast', "'fast' is not a number"), (INTEGER, '2.5', "'2.5' is not an integer"),
    (BOOL, 'maybe', "'maybe' is not a bool"), (INTEGER_ARRAY, '[1, x]', "'x' is not an"),
    (NOT_SET, '1', 'no value of a known type'),
])
def test_a_value_of_another_type_is_refused_with_its_reason(type_code, text, message):
    with pytest.raises(ValueParseError, match=message):
        parse_value(type_code, text)


def test_values_print_as_yaml_and_a_dump_loads_as_a_params_file():
    assert [format_value(v) for v in (10.0, 3, True, 'auto', [1, 2], ['a', 'b'])] == \
        ['10.0', '3', 'true', 'auto', '[1, 2]', '[a, b]']
    text = dump_yaml('/camera', {'fps': 10.0, 'scene.seed': 3, 'scene.kind': 'room',
                                 'backend': 'synthetic'})
    assert yaml.safe_load(text) == {'/camera': {'ros__parameters': {
        'backend': 'synthetic', 'fps': 10.0, 'scene': {'kind': 'room', 'seed': 3}}}}
    assert yaml.safe_load(dump_yaml('/r1/camera', {'fps': 5.0})) == {
        '/r1/camera': {'ros__parameters': {'fps': 5.0}}}


def test_node_names_resolve_bare_or_full():
    graph = [('camera', '/'), ('snarc', '/'), ('camera', '/r2'), ('imu', '/r2')]
    assert resolve_node('snarc', graph).full == '/snarc'
    assert resolve_node('/r2/camera', graph).full == '/r2/camera'
    assert resolve_node('r2/imu', graph).full == '/r2/imu'
    assert resolve_node('imu', graph).full == '/r2/imu'
    with pytest.raises(NodeNameError, match='names 2 nodes: /camera, /r2/camera') as err:
        resolve_node('camera', graph)
    assert err.value.ambiguous
    with pytest.raises(NodeNameError, match=r"no node 'cam'.*nodes seen: /camera") as err:
        resolve_node('cam', graph)
    assert not err.value.ambiguous


def test_the_listening_qos_hears_every_publisher():
    reliable, volatile = PublisherQos(False, False), PublisherQos(False, False)
    sensor = PublisherQos(best_effort=True, transient_local=False)
    latched = PublisherQos(best_effort=False, transient_local=True)
    assert subscriber_qos([reliable]) == (True, False)
    assert subscriber_qos([reliable, sensor]) == (False, False)  # best effort hears both
    assert subscriber_qos([latched]) == (True, True)              # the last state too
    assert subscriber_qos([latched, volatile]) == (True, False)   # else the volatile one is lost
    assert subscriber_qos([]) == (True, False)


def test_the_rate_is_taken_over_the_window():
    window = RateWindow(window=4)
    assert window.rate() is None
    for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.2):  # 10 Hz, then 5 Hz
        window.add(t)
    rate = window.rate()
    assert rate is not None and rate.window == 4 and rate.total == 9
    assert rate.hz == pytest.approx(5.0) and rate.min_s == pytest.approx(0.2)
    assert rate.std_s == pytest.approx(0.0, abs=1e-9)
    assert 'average rate: 5.000 Hz' in rate.line()
    with pytest.raises(ValueError):
        RateWindow(window=0)
