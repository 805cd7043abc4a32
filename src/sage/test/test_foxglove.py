"""The Foxglove live view: what each channel carries (core), the SDK server with a real
WebSocket client, the layout, the profiles, and a live nano graph seen through the server.

The client side (sage_bench.foxglove_client) speaks the Foxglove WebSocket protocol the way
Foxglove and Lichtblick do; every message is decoded with the schema its channel advertises
(JSON schema, or the protobuf FileDescriptorSet of a Foxglove schema).
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from typing import Any

import cv2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
import numpy as np
import pytest

from sage.foxglove_core import (DIAGNOSTICS_CHANNEL, DiagnosticRecord, Kind, LiveConfig,
                                LiveCore, LogRecord, MemorySummary, RateCap, camera_jpeg,
                                channel_specs, coerce_like, compressed_image, log_message,
                                param_key, puzzle_channel, salience_channel,
                                SleepFeedbackRecord, split_param_key,
                                wanted_sources, Source, channel_name, listen_host)
from sage.foxglove_server import LiveServer
from sage.viz_core import AllocationRecord, BudgetRecord, StoredRecord
from sage_bench.foxglove_client import LiveViewClient
from sage_bringup.environment import graph_env
from sage_bringup.paths import repo_root
from sage_bringup.profile import load_profile
from sage_common.records import AXES, MODALITIES, SalienceRecord, StateRecord
from sage_common.vocabulary import STATE_KEYS, LiveView, Topic

LAYOUT = repo_root() / 'config' / 'foxglove' / 'sage_layout.json'
SPECS = {s.topic: s for s in channel_specs()}

# --- decoding with the advertised schema (the client's job, as Foxglove does it) --------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    'number': (int, float), 'integer': (int,), 'string': (str,), 'boolean': (bool,),
    'object': (dict,), 'array': (list,), 'null': (type(None),)}


def json_errors(value: Any, schema: dict[str, Any], where: str = '$') -> list[str]:
    """Where a decoded JSON value breaks its JSON schema (the subset the live view uses)."""
    if 'anyOf' in schema:
        if any(not json_errors(value, s, where) for s in schema['anyOf']):
            return []
        return [f'{where}: {value!r} matches none of anyOf']
    kinds = schema.get('type')
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        ok = any(isinstance(value, _JSON_TYPES[k]) and not (
            isinstance(value, bool) and k in ('number', 'integer')) for k in kinds)
        if not ok:
            return [f'{where}: {value!r} is not {kinds}']
    errors: list[str] = []
    if isinstance(value, dict):
        props = schema.get('properties', {})
        extra = schema.get('additionalProperties')
        for key, item in value.items():
            if key in props:
                errors += json_errors(item, props[key], f'{where}.{key}')
            elif isinstance(extra, dict):
                errors += json_errors(item, extra, f'{where}.{key}')
            else:
                errors.append(f'{where}.{key}: not in the schema')
        errors += [f'{where}.{k}: missing' for k in schema.get('required', ())
                   if k not in value]
    if isinstance(value, list) and 'items' in schema:
        for i, item in enumerate(value):
            errors += json_errors(item, schema['items'], f'{where}[{i}]')
    return errors


def proto_class(name: str, descriptor_set: bytes) -> Any:
    """The message class of a protobuf schema given as a FileDescriptorSet."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def decode(channel: dict[str, Any], payload: bytes) -> Any:
    """A message as its advertised channel describes it; raises when it does not decode."""
    if channel['encoding'] == 'json':
        value = json.loads(payload)
        schema = json.loads(channel['schema'])
        errors = json_errors(value, schema)
        assert not errors, (channel['topic'], errors)
        return value
    assert channel['encoding'] == 'protobuf' and channel['schemaEncoding'] == 'protobuf'
    cls = proto_class(channel['schemaName'], base64.b64decode(channel['schema']))
    msg = cls()
    msg.ParseFromString(payload)
    return msg


# --- core ----------------------------------------------------------------------------------------

def _sal(modality: str, value: float = 0.5, stamp: float = 1.0) -> SalienceRecord:
    return SalienceRecord(stamp=stamp, modality=modality, input_seq=3, surprise=0.1, novelty=0.2,
                          arousal=0.3, reward=0.4, conflict=0.5, salience=value, threshold=0.6,
                          attend=value > 0.6)


def _budget() -> BudgetRecord:
    return BudgetRecord(1.0, 7, 10.0, 1.0, 'WAKE', (
        AllocationRecord('vision_encoder', 'vision', 0.9, 0.5, 0.75, 6.0, 3.0),
        AllocationRecord('audio_encoder', 'audio', 0.8, 0.2, 0.25, 2.0, 2.0)))


def test_rate_cap_keeps_a_steady_stream_at_its_rate_and_does_not_burst_after_a_pause():
    cap = RateCap(10.0)
    passed = [t for t in np.arange(0.0, 2.0, 1 / 30) if cap.allow('camera', float(t))]
    assert 19 <= len(passed) <= 21  # 30 Hz in, 10 Hz out
    # a late slot is made up by the next one, never by two frames in a row
    assert all(b - a > 0.05 for a, b in zip(passed, passed[1:]))
    after_pause = [t for t in (10.0, 10.01, 10.02, 10.05) if cap.allow('camera', t)]
    assert after_pause == [10.0]
    assert cap.allow('imu', 10.01)  # keys are capped apart


def test_channel_messages_match_their_json_schemas():
    core = LiveCore(LiveConfig(salience_rate_hz=1.0))
    sal = core.on_salience(_sal('vision'), now=1.0)
    assert sal is not None and sal['modality'] == 'vision' and sal['threshold'] == 0.6
    assert core.on_salience(_sal('vision'), now=1.5) is None  # over the 1 Hz cap
    assert core.on_salience(_sal('audio'), now=1.5) is not None
    budget = core.on_budget(_budget(), now=1.0)
    assert budget is not None and budget['by_modality']['vision']['atp'] == 6.0
    state = core.on_state(StateRecord(1.0, 'FOCUS', 'WAKE', 'vision salience high', 3.0, 0.4,
                                      'green'))
    assert state['state_index'] == 1
    diag = core.on_diagnostics(2.5, [DiagnosticRecord(1, 'sage: camera', 'slow', 'cam',
                                                      (('fps', '29.8'),))])
    assert diag['status'][0]['values'] == [{'key': 'fps', 'value': '29.8'}]
    assert diag['header']['stamp'] == {'sec': 2, 'nanosec': 500000000}
    for topic, msg in ((salience_channel('vision'), sal), (Topic.BUDGET, budget),
                       (Topic.METABOLIC_STATE, state), (Topic.DIAGNOSTICS, diag),
                       (LiveView.MEMORY, core.memory.json(0.0))):
        spec = SPECS[channel_name(topic)]
        assert spec.schema is not None and not json_errors(msg, spec.schema), topic
    assert json_errors({**sal, 'surprise': 'high'}, SPECS[salience_channel('vision')].schema)


def _reader_refuses(schema, path='') -> list[str]:
    """What Foxglove's JSON-schema reader refuses (it drops the whole channel then): a type
    that is not one string, anyOf/oneOf, an object without `properties`."""
    bad = [f'{path}: {k}' for k in ('anyOf', 'oneOf', 'allOf') if k in schema]
    if not isinstance(schema.get('type'), str):
        bad.append(f"{path}: type {schema.get('type')!r}")
    elif schema['type'] == 'object':
        if 'properties' not in schema:
            bad.append(f'{path}: object without properties')
        for name, sub in schema.get('properties', {}).items():
            bad += _reader_refuses(sub, f'{path}.{name}')
    elif schema['type'] == 'array':
        bad += _reader_refuses(schema['items'], f'{path}[]')
    return bad


def test_every_json_channel_has_a_schema_foxglove_can_read():
    for spec in SPECS.values():
        if spec.schema is not None:
            refused = _reader_refuses(spec.schema, spec.topic)
            assert not refused, refused
    assert _reader_refuses({'type': 'object', 'properties': {'a': {'type': ['integer', 'null']}}})


def test_memory_summary_reads_rows_from_the_memory_nodes_diagnostics():
    mem = MemorySummary()
    assert 'rows' not in mem.json(0.0) and 'last_stored' not in mem.json(0.0)  # not known yet
    mem.on_diagnostic(DiagnosticRecord(0, 'sage: memory', 'ok', '', (
        ('index_vision', '120'), ('index_language', '7'), ('index_ready', 'True'),
        ('stored', '130'), ('pending', '2'))))
    mem.on_diagnostic(DiagnosticRecord(0, 'sage: snarc', 'ok', '', (('index_vision', '9'),)))
    mem.on_stored(StoredRecord(5.0, 'ab' * 16, 'audio', 0.9, '', b'', 'a clap'))
    mem.on_state(StateRecord(6.0, 'DREAM', 'REST', 'idle', 12.5, 0.9, 'green'))
    out = mem.json(100.0)
    assert out['rows'] == 127 and out['rows_by_kind'] == {'vision': 120, 'language': 7}
    assert (out['stored_total'], out['pending'], out['stored_seen']) == (130, 2, 1)
    assert out['last_stored']['text'] == 'a clap'
    assert out['sleeping'] and out['sleep_elapsed_s'] == 12.5  # DREAM's dwell: no feedback
    assert 'sleep_progress' not in out and out['sleep_phase'] == ''
    # a sleep asked through the Sleep action reports its phase and progress
    mem.on_state(StateRecord(7.0, 'WAKE', 'DREAM', 'salience spike', 0.5, 0.9, 'green'))
    mem.on_sleep_feedback(SleepFeedbackRecord('retrain', 'vision', 420, 0.35, 80.0, 41.0,
                                              arrived=100.0))
    out = mem.json(101.0)
    assert out['sleeping'] and (out['sleep_phase'], out['sleep_modality']) == ('retrain',
                                                                              'vision')
    assert (out['sleep_progress'], out['sleep_time_left_s'], out['sleep_steps'],
            out['sleep_elapsed_s']) == (0.35, 80.0, 420, 41.0)
    assert not json_errors(out, SPECS[LiveView.MEMORY].schema)
    assert not mem.json(110.0)['sleeping']  # feedback stopped coming: no longer shown
    mem.on_sleep_feedback(SleepFeedbackRecord('done', '', 0, 1.0, 0.0, 90.0, arrived=111.0))
    assert not mem.json(111.5)['sleeping']


def test_scene_update_carries_every_viz_marker_once():
    core = LiveCore(LiveConfig())
    core.on_salience(_sal('vision', 0.8), now=10.0)
    core.on_salience(_sal('audio', 0.2), now=10.0)
    core.on_budget(_budget(), now=10.0)
    core.on_state(StateRecord(1.0, 'FOCUS', 'WAKE', 'vision salience high', 3.0, 0.4, 'green'))
    markers = core.viz.markers(10.0)
    scene = core.scene(10.0, 1234.5)
    schema = scene.get_schema()
    msg = proto_class(schema.name, schema.data).FromString(scene.encode())
    by_ns = {e.id: e for e in msg.entities}
    assert set(by_ns) == {m.ns for m in markers}
    for ns, entity in by_ns.items():
        mine = [m for m in markers if m.ns == ns]
        assert len(entity.cubes) + len(entity.spheres) + len(entity.texts) == len(mine)
        assert entity.frame_id == 'base_link' and entity.timestamp.seconds == 1234
    texts = [t.text for e in msg.entities for t in e.texts]
    assert any(t.startswith('vision') for t in texts) and any('FOCUS' in t for t in texts)


def test_camera_jpeg_decodes_to_the_frame_and_refuses_other_encodings():
    frame = np.zeros((480, 1280, 3), np.uint8)
    frame[:, :640, 0] = 220  # left half red in RGB
    jpeg = camera_jpeg(frame, 'rgb8', max_width=640, quality=80)
    back = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)  # BGR
    assert back.shape == (240, 640, 3)
    assert back[:, :300, 2].mean() > 200 and back[:, 340:, 2].mean() < 20
    msg = compressed_image(jpeg, 1.5, 'camera_optical_frame')
    schema = msg.get_schema()
    decoded = proto_class(schema.name, schema.data).FromString(msg.encode())
    assert decoded.format == 'jpeg' and decoded.data == jpeg
    with pytest.raises(ValueError, match='rgb8, bgr8 or mono8'):
        camera_jpeg(np.zeros((4, 4, 2), np.uint8), 'yuv422', 640, 80)


def test_log_levels_below_the_parameter_are_not_sent():
    rec = LogRecord(5.0, 30, 'camera', 'slow frames', 'camera_node.py', 12)
    assert log_message(rec, 'error') is None
    msg = log_message(rec, 'info')
    assert msg is not None
    decoded = proto_class('foxglove.Log', msg.get_schema().data).FromString(msg.encode())
    assert (decoded.level, decoded.message, decoded.name) == (3, 'slow frames', 'camera')


def test_parameter_names_and_values_follow_the_parameters_own_types():
    assert param_key('camera', 'scene.period_s') == '/camera.scene.period_s'
    assert split_param_key('/camera.scene.period_s') == ('camera', 'scene.period_s')
    for bad in ('camera.fps', '/camera', '/.fps'):
        with pytest.raises(ValueError, match='/node.parameter'):
            split_param_key(bad)
    assert coerce_like(30.0, 10, '/camera.fps') == 10.0
    assert isinstance(coerce_like(30.0, 10, '/camera.fps'), float)
    assert coerce_like(5, 7.0, '/x.n') == 7 and coerce_like(True, 'false', '/x.b') is False
    with pytest.raises(ValueError, match='not a float'):
        coerce_like(30.0, 'fast', '/camera.fps')
    with pytest.raises(ValueError):
        coerce_like(5, 7.5, '/x.n')


def test_a_channel_subscribes_only_the_graph_inputs_it_needs():
    assert wanted_sources([]) == set()
    assert wanted_sources([LiveView.CAMERA]) == {Source.CAMERA}
    assert wanted_sources([LiveView.MEMORY]) == {Source.STORED, Source.DIAGNOSTICS,
                                                 Source.STATE, Source.SLEEP}


# --- the layout, the profiles, the host rule ----------------------------------------------------

def _panels(layout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return layout['configById']


def _layout_ids(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node}
    return _layout_ids(node['first']) | _layout_ids(node['second'])


def test_the_layout_opens_camera_axes_state_budget_and_diagnostics_on_live_channels():
    layout = json.loads(LAYOUT.read_text())
    panels = _panels(layout)
    assert set(layout) >= {'configById', 'layout', 'globalVariables', 'userNodes'}
    placed = _layout_ids(layout['layout'])
    for tab in panels.get(layout['layout'], {}).get('tabs', []):
        placed |= _layout_ids(tab['layout'])
    assert placed - {layout['layout']} == set(panels) - {layout['layout']}, 'a panel is unplaced'
    assert panels['Image!camera']['imageMode']['imageTopic'] == LiveView.CAMERA
    assert panels['DiagnosticSummary!diagnostics']['topicToRender'] == DIAGNOSTICS_CHANNEL
    live = panels['Tab!main']['tabs'][0]['layout']
    assert {'Image!camera', 'Plot!budget', 'StateTransitions!metabolic',
            'DiagnosticSummary!diagnostics', *(f'Plot!salience_{m}' for m in MODALITIES)} \
        <= _layout_ids(live)
    for m in MODALITIES:
        values = [p['value'] for p in panels[f'Plot!salience_{m}']['paths']]
        assert values[:5] == [f'{salience_channel(m)}.{a}' for a in AXES]
    # every path names a channel the server advertises and a field its JSON schema has
    for panel_id, cfg in panels.items():
        paths = [p['value'] for p in cfg.get('paths', [])]
        paths += [cfg[k] for k in ('topicPath', 'topicToRender') if k in cfg]
        paths += [cfg['imageMode']['imageTopic']] if cfg.get('imageMode') else []
        paths += list(cfg.get('topics', {}))
        for path in paths:
            topic = next((t for t in SPECS if path == t or path.startswith(t + '.')), None)
            assert topic is not None, (panel_id, path)
            schema = SPECS[topic].schema
            for field in path[len(topic) + 1:].split('.') if path != topic else []:
                assert schema is not None, (panel_id, path)
                schema = schema.get('properties', {}).get(field) or \
                    schema.get('additionalProperties')
                assert schema is not None, (panel_id, path, field)


@pytest.mark.parametrize('profile', ['nano', 'thor'])
def test_the_profiles_run_the_live_view_and_a_set_turns_it_off(profile):
    node = load_profile(profile).node('foxglove')
    assert node.parameters['enabled'] is True and node.parameters['port'] == 8765
    off = load_profile(profile, ['foxglove.enabled=false']).node('foxglove')
    assert off.parameters['enabled'] is False
    assert 'foxglove' in {n.name for n in load_profile(profile, role='edge').nodes}


def test_the_server_listens_on_this_host_unless_the_graph_is_open_to_the_lan():
    nano = load_profile('nano')
    assert listen_host('', graph_env(nano, 7, environ={})) == '127.0.0.1'
    assert listen_host('', graph_env(nano, 7, multi_host=True, environ={})) == '0.0.0.0'
    assert listen_host('192.168.1.5', {'SAGE_MULTI_HOST': '1'}) == '192.168.1.5'


# --- the SDK server with a real client (no ROS) -------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


class _Values:
    """A parameter store holding values in memory (stands in for the graph's nodes)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {'/camera.fps': 30.0, '/snarc.weights.novelty': 0.5}

    def get(self, names: list[str]) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self.values.items() if not names or k in names]

    def set(self, values: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        self.values.update(values)
        return self.get([k for k, _ in values])


def test_the_server_advertises_every_channel_and_follows_what_clients_subscribe():
    errors: list[str] = []
    store = _Values()
    server = LiveServer('127.0.0.1', 0, 64, store, errors.append)
    try:
        with pytest.raises(RuntimeError, match='cannot serve'):
            LiveServer('127.0.0.1', server.port, 64, None, errors.append)
        client = LiveViewClient(f'ws://127.0.0.1:{server.port}').start(timeout=10)
        assert client.subprotocol == 'foxglove.sdk.v1'
        assert client.wait_for(lambda c: len(c.channels) == len(SPECS), 10)
        deadline = time.monotonic() + 10
        while server.subscribed() != set(SPECS) and time.monotonic() < deadline:
            time.sleep(0.02)  # the server's listener runs on the SDK's threads
        assert server.subscribed() == set(SPECS) and server.clients() == 1
        core = LiveCore(LiveConfig())
        server.log(salience_channel('audio'), core.on_salience(_sal('audio'), 1.0))
        server.log(LiveView.SCENE, core.scene(1.0, 2.0))
        assert client.wait_for(lambda c: len(c.stats) >= 2, 10)
        got = client.by_topic()
        sal = decode(got[salience_channel('audio')][0],
                     got[salience_channel('audio')][1].samples[0])
        assert sal['modality'] == 'audio' and sal['salience'] == 0.5
        scene = decode(got[LiveView.SCENE][0], got[LiveView.SCENE][1].samples[0])
        assert [e.id for e in scene.entities] == ['salience', 'salience_axes']
        for topic, (channel, _) in got.items():
            kind = SPECS[topic].kind
            assert channel['schemaName'] == (SPECS[topic].schema['title'] if kind == Kind.JSON
                                             else kind.value)
        assert client.get_parameters([]) == store.values
        assert client.set_parameters({'/camera.fps': 12}) == {'/camera.fps': 12}
        client.close()
        deadline = time.monotonic() + 10
        while server.clients() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.clients() == 0 and server.subscribed() == set()
    finally:
        server.stop()
    assert not errors


def test_the_node_waits_for_a_taken_port_and_reports_bad_frames(ros_domain):
    """A taken port is a WARN and a retry, not a crash; a frame it cannot encode is counted
    and reported; good frames reach a client as JPEG; the Sleep action's feedback reaches the
    memory summary."""
    # lazy: keeps ROS out of this module's import
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from sage.foxglove_node import SLEEP_FEEDBACK, FoxgloveNode
    from sage_common.ros import SENSOR_QOS
    from sage_interfaces.action import Sleep
    blocker = LiveServer('127.0.0.1', 0, 16, None, lambda _: None)
    port = blocker.port
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = FoxgloveNode(context=ctx, parameter_overrides=[
        Parameter('port', value=port), Parameter('diagnostics_period_s', value=0.2)])
    test = rclpy.create_node('live_view_node_test', context=ctx)
    statuses: list[Any] = []
    test.create_subscription(DiagnosticArray, '/diagnostics', lambda m: statuses.extend(
        s for s in m.status if s.name == 'sage: foxglove'), 50)
    camera = test.create_publisher(Image, Topic.CAMERA_IMAGE, SENSOR_QOS)
    sleep = test.create_publisher(Sleep.Impl.FeedbackMessage, SLEEP_FEEDBACK, 10)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(test)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    def until(cond: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            time.sleep(0.05)
        return bool(cond())

    def values() -> dict[str, str]:
        return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}

    try:
        assert until(lambda: statuses and statuses[-1].message.startswith(
            'live view not serving'), 10), [s.message for s in statuses[-3:]]
        assert statuses[-1].level == DiagnosticStatus.WARN
        assert values()['server'] == 'not listening'
        blocker.stop()  # the port frees: the node serves at its next try (RETRY_S)
        client = LiveViewClient(f'ws://127.0.0.1:{port}').start(timeout=15)
        with client:
            assert client.wait_for(lambda c: len(c.channels) == len(SPECS), 10)
            assert until(lambda: values().get('clients') == '1', 10), values()
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, :32] = 200
            good = Image(height=48, width=64, encoding='rgb8', step=64 * 3,
                         data=frame.tobytes())
            bad = Image(height=48, width=64, encoding='yuv422', step=64 * 2,
                        data=bytes(48 * 64 * 2))
            camera.publish(bad)
            assert until(lambda: values().get('dropped') == '1', 10), values()
            assert until(lambda: statuses[-1].level == DiagnosticStatus.WARN and
                         'yuv422' in statuses[-1].message, 5)
            cam = next(i for i, ch in client.channels.items() if ch['topic'] == LiveView.CAMERA)

            def delivered(c: LiveViewClient) -> bool:
                camera.publish(good)  # best effort: sent until one arrives
                return cam in c.stats
            assert client.wait_for(delivered, 10)
            jpeg = decode(client.channels[cam], client.stats[cam].samples[-1]).data
            back = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert back.shape == (48, 64, 3) and back[:, :28, 2].mean() > 180

            # an action's feedback, as the memory node's Sleep action server sends it
            mem = next(i for i, ch in client.channels.items() if ch['topic'] == LiveView.MEMORY)

            def sleeping(c: LiveViewClient) -> bool:
                fb = Sleep.Impl.FeedbackMessage()
                fb.feedback.phase, fb.feedback.modality = 'retrain', 'audio'
                fb.feedback.steps, fb.feedback.progress = 120, 0.4
                sleep.publish(fb)
                return mem in c.stats and decode(c.channels[mem], c.stats[mem].samples[-1])[
                    'sleep_phase'] == 'retrain'
            assert client.wait_for(sleeping, 10)
            summary = decode(client.channels[mem], client.stats[mem].samples[-1])
            assert summary['sleeping'] and summary['sleep_modality'] == 'audio'
            assert summary['sleep_progress'] == pytest.approx(0.4)
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.close()
        node.destroy_node()
        test.destroy_node()
        rclpy.try_shutdown(context=ctx)
        blocker.stop()


# --- a live nano graph ---------------------------------------------------------------------------

def _say(domain: int, stop: threading.Event) -> None:
    """Publish a text input every second until stopped (the language modality's inputs)."""
    # lazy: keeps ROS out of this module's import
    import rclpy
    from sage_common.ros import RELIABLE_QOS
    from sage_interfaces.msg import TextInput
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('live_view_test_operator', context=ctx)
    pub = node.create_publisher(TextInput, Topic.TEXT_IN, RELIABLE_QOS)
    n = 0
    while not stop.wait(1.0):
        msg = TextInput(text=f'the battery is low, number {n}', source='test')
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        n += 1
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


WINDOW_S = 10.0
START_TIMEOUT_S = 120.0


@pytest.mark.graph
def test_a_client_sees_every_channel_of_a_live_nano_graph(nano_graph, ros_domain, tmp_path):
    port = _free_port()
    # the camera at 30 fps in every metabolic state (REST would take it down to 5, DREAM to 2)
    graph = nano_graph.launch(ros_domain, tmp_path / 'run', [
        f'foxglove.port={port}', f'memory.data_dir={tmp_path / "mem"}',
        f'orchestrator.state_dir={tmp_path / "state"}', "snarc.state_file=''",
        *(f'orchestrator.state.{s}.camera_fps=30.0' for s in STATE_KEYS)])
    stop = threading.Event()
    speaker = threading.Thread(target=_say, args=(ros_domain, stop), daemon=True)
    speaker.start()
    url = f'ws://127.0.0.1:{port}'
    client = LiveViewClient(url, keep=40).start(timeout=START_TIMEOUT_S)
    try:
        assert client.wait_for(lambda c: len(c.channels) == len(SPECS), 30)
        vision = salience_channel('vision')

        def seen(c: LiveViewClient, topic: str) -> int:
            cid = next(i for i, ch in c.channels.items() if ch['topic'] == topic)
            return c.stats[cid].count if cid in c.stats else 0

        assert client.wait_for(lambda c: seen(c, vision) > 0, START_TIMEOUT_S), \
            f'no vision salience; see {tmp_path / "run.log"}'
        t0 = time.monotonic()
        # the window: 10 s of a running graph, and a message on every channel
        assert client.wait_for(lambda c: time.monotonic() >= t0 + WINDOW_S and all(
            seen(c, t) for t in SPECS), WINDOW_S + 40), {
                t: seen(client, t) for t in SPECS}
        t1 = time.monotonic()
        got = client.by_topic()
        assert set(got) == set(SPECS)
        decoded = {t: [decode(ch, p) for p in st.samples] for t, (ch, st) in got.items()}
        camera_hz = got[LiveView.CAMERA][1].rate_hz(t0, t1)
        print(f'live view over {t1 - t0:.1f} s: camera {camera_hz:.1f} Hz; messages per channel '
              f'{ {t: st.count for t, (_, st) in sorted(got.items())} }')
        assert camera_hz >= 5.0, camera_hz
        for m in MODALITIES:
            assert all(s['modality'] == m for s in decoded[salience_channel(m)]), m
        frame = cv2.imdecode(np.frombuffer(decoded[LiveView.CAMERA][-1].data, np.uint8),
                             cv2.IMREAD_COLOR)
        assert frame.shape == (480, 640, 3) and frame.std() > 5  # a scene, not a blank
        puzzle = decoded[puzzle_channel('vision')][-1]
        assert puzzle.encoding == 'rgb8' and len(puzzle.data) == puzzle.height * puzzle.step
        assert any(e.id == 'salience' for e in decoded[LiveView.SCENE][-1].entities)
        status = {s['name']: {kv['key']: kv['value'] for kv in s['values']}
                  for d in decoded[DIAGNOSTICS_CHANNEL] for s in d['status']}
        mine = status['sage: foxglove']  # the server's own: one client, messages sent
        assert mine['clients'] == '1' and int(mine['sent']) > 0 and mine['server'] == 'listening'
        assert decoded[LiveView.LOG][-1].message

        # the graph's parameters, read and written through Foxglove's parameter requests
        params = client.get_parameters([])
        assert params['/camera.fps'] > 0 and params['/foxglove.port'] == port
        assert {n.split('.')[0] for n in params} >= {'/camera', '/snarc', '/memory', '/viz'}
        assert client.set_parameters({'/viz.window_s': 2.5}) == {'/viz.window_s': 2.5}
        assert client.get_parameters(['/viz.window_s']) == {'/viz.window_s': 2.5}
        # outside the parameter's range: the viz node refuses it, the value stays
        assert client.set_parameters({'/viz.window_s': -1.0}) == {'/viz.window_s': 2.5}

        # enabled: false at run time stops the server
        try:
            client.set_parameters({'/foxglove.enabled': False}, timeout=5.0)
        except TimeoutError:
            pass  # the server may close before it answers
        assert client.wait_for(lambda c: c.closed, 10)
        with pytest.raises(TimeoutError):
            LiveViewClient(url).start(timeout=1.0)
    finally:
        client.close()
        stop.set()
        speaker.join(timeout=10)
        nano_graph.stop(graph)
