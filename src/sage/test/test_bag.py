"""`sage bag`: record a live publisher, read the bag independently, play it back unchanged;
choose what play publishes; compressed and split recordings read back whole and in order."""
from __future__ import annotations

from contextlib import contextmanager
import io
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

from mcap.reader import make_reader
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, Imu
from typer.testing import CliRunner
import yaml

from sage.bag import adapt_qos, info, play, print_info, record
from sage.bag_select import describe, EXCLUDED, NOT_INPUT, NOT_NAMED, readers_wanted, select_topics
from sage.bag_types import BagError, message_class, sage_typestore
from sage.bag_writer import BagOptions, BagWriter, SIZE_CHECK_BYTES
from sage.cli import app
from sage_bringup.profile import load_profile
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
from sage_eval.replay import replay_bag
from sage_eval.scenario import make_scenario
from sage_interfaces.msg import (AtpAllocation, AtpBudget, Experience, MetabolicState, Salience,
                                 TextInput)

TOPICS = ('/sage/salience', '/sage/budget', '/sage/memory/stored', '/sage/metabolic_state')


def expected_messages() -> dict[str, list]:
    """The messages the publisher process sends (float32-exact values, so they compare equal)."""
    out: dict[str, list] = {t: [] for t in TOPICS}
    for i in range(20):
        msg = Salience(modality=('vision', 'audio')[i % 2], surprise=i / 32, novelty=0.5,
                       arousal=0.25, reward=0.0, conflict=1 - i / 32, salience=i / 64,
                       threshold=0.25, attend=i % 3 == 0, input_seq=i)
        msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 1000 * i
        out['/sage/salience'].append(msg)
    for i in range(5):
        allocs = [AtpAllocation(plugin='vision_encoder', modality='vision', trust=0.875,
                                salience=0.375, share=0.625, atp=6.0 + i, atp_used=5.0),
                  AtpAllocation(plugin='audio_encoder', modality='audio', trust=0.75,
                                salience=0.25, share=0.375, atp=4.0, atp_used=3.5 - i / 8)]
        out['/sage/budget'].append(AtpBudget(tick=i, budget_total=10.0 + i, reserve=1.0,
                                             metabolic_state='WAKE', allocations=allocs))
    for i in range(3):
        out['/sage/memory/stored'].append(Experience(
            uuid=f'{i:032x}', device_id='test', modality='vision', salience=0.75,
            codes=list(range(i, i + 9)), embedding=[0.5, -0.25, float(i)],
            preview_format='jpeg', preview=bytes(range(50 + i)), tags=['a', 'b']))
    out['/sage/metabolic_state'].append(MetabolicState(
        state='FOCUS', previous='WAKE', reason='vision salience 0.82 > 0.7', dwell_s=1.5))
    return out


def publish_main() -> int:
    """Publisher process: send expected_messages() once the recorder listens on every topic."""
    rclpy.init()
    node = Node('bag_test_publisher')
    msgs = expected_messages()
    pubs = {t: node.create_publisher(type(m[0]), t,
                                     LATCHED_QOS if t == '/sage/metabolic_state'
                                     else RELIABLE_QOS)
            for t, m in msgs.items()}
    pubs['/sage/metabolic_state'].publish(msgs['/sage/metabolic_state'][0])
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() > 0 for p in pubs.values()):
            break
        time.sleep(0.05)
    else:
        return 3
    for topic in ('/sage/salience', '/sage/budget', '/sage/memory/stored'):
        for msg in msgs[topic]:
            pubs[topic].publish(msg)
            time.sleep(0.01)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _read_mcap(bag: Path) -> dict[str, list[tuple[str, str, str, bytes]]]:
    (mcap_file,) = bag.glob('*.mcap')
    out: dict[str, list] = {}
    with mcap_file.open('rb') as f:
        reader = make_reader(f)
        assert reader.get_header().profile == 'ros2'
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            out.setdefault(channel.topic, []).append(
                (schema.name, schema.encoding, channel.message_encoding, bytes(message.data)))
    return out


def test_recorded_bag_reads_independently_and_plays_back_identical_messages(
        tmp_path, ros_domain):
    bag = tmp_path / 'bag'
    publisher = subprocess.Popen([sys.executable, __file__, 'publish'], env=dict(os.environ))
    stop = threading.Event()
    result: list[int] = []
    log = io.StringIO()
    thread = threading.Thread(target=lambda: result.append(
        record(bag, None, 25.0, stdout=log, stop=stop)))
    thread.start()
    try:
        assert publisher.wait(timeout=25) == 0
    finally:
        stop.set()
        thread.join(timeout=10)
        publisher.kill()
    assert result == [0], log.getvalue()

    # (1) an independent reader (the mcap library) sees ros2msg schemas and CDR messages,
    # and every message deserializes in rclpy to exactly what was published.
    expected = expected_messages()
    recorded = _read_mcap(bag)
    assert set(recorded) == set(TOPICS)
    for topic, rows in recorded.items():
        assert {r[1] for r in rows} == {'ros2msg'} and {r[2] for r in rows} == {'cdr'}
        decoded = [deserialize_message(r[3], message_class(r[0])) for r in rows]
        assert decoded == expected[topic], topic

    summary = info(bag)
    by_name = {t['name']: t for t in summary['topics']}
    assert summary['storage'] == 'mcap'
    assert summary['message_count'] == sum(len(v) for v in expected.values())
    assert by_name['/sage/metabolic_state']['offered_qos_profiles'][0]['durability'] == \
        'transient_local'
    assert by_name['/sage/salience']['offered_qos_profiles'][0]['reliability'] == 'reliable'
    text = io.StringIO()
    print_info(summary, text)
    assert 'sage_interfaces/msg/Salience' in text.getvalue()
    assert summary['compression'] == 'zstd (mcap chunks)'

    # By default play publishes only the graph's inputs: this bag holds none of them.
    said = io.StringIO()
    assert play(bag, delay=0.0, stdout=said) == 1
    (line,) = [t for t in said.getvalue().splitlines() if 'skipping' in t]
    assert set(line.split('skipping ')[1].split(': ')[0].split(', ')) == set(TOPICS), line
    assert 'not a sensor input' in line

    # play: a listener gets the same CDR bytes, in the same order, per topic.
    # delay only bounds the wait for the listener to be matched (play starts as soon as it
    # is); discovery took over 5 s once on a loaded CI machine, and nothing was received
    received = _listen_while_playing(bag, lambda: play(bag, rate=4.0, loop=False, clock=True,
                                                       play_all=True, delay=20.0, stdout=log))
    for topic in TOPICS:
        assert received[topic] == [r[3] for r in recorded[topic]], topic


@contextmanager
def _node_beside(start_play, name: str):
    """A node spun by an executor in a ROS context of its own, and a player thread that runs
    start_play() once started: (node, executor, player, [its exit code]). On leaving, the
    player is joined and the context shut down."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    codes: list[int] = []
    player = threading.Thread(target=lambda: codes.append(start_play()))
    try:
        yield node, executor, player, codes
    finally:
        if player.ident is not None:
            player.join(timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _listen_while_playing(bag: Path, start_play) -> dict[str, list[bytes]]:
    types = {t: f'sage_interfaces/msg/{n}' for t, n in zip(
        TOPICS, ('Salience', 'AtpBudget', 'Experience', 'MetabolicState'))}
    received: dict[str, list[bytes]] = {t: [] for t in TOPICS}
    clocks: list[Clock] = []
    with _node_beside(start_play, 'bag_test_listener') as (node, executor, player, codes):
        for topic, msgtype in types.items():
            node.create_subscription(
                message_class(msgtype), topic, received[topic].append,
                LATCHED_QOS if topic == '/sage/metabolic_state' else RELIABLE_QOS, raw=True)
        node.create_subscription(Clock, '/clock', clocks.append, 10)
        player.start()
        want = {t: len(v) for t, v in expected_messages().items()}
        deadline = time.monotonic() + 35.0
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if all(len(received[t]) >= n for t, n in want.items()) and not player.is_alive():
                break
    assert codes == [0]
    assert clocks, 'no /clock message while playing with clock=True'
    return received


def test_recorder_subscribes_best_effort_when_any_publisher_is_best_effort():
    assert 'sage_interfaces/msg/Salience' in sage_typestore().fielddefs

    class Q:
        def __init__(self, rel, dur):
            self.reliability, self.durability = rel, dur

    reliable = Q(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL)
    best = Q(QosReliability.BEST_EFFORT, QosDurability.VOLATILE)
    assert adapt_qos([reliable]).reliable and adapt_qos([reliable]).transient_local
    mixed = adapt_qos([reliable, best])
    assert not mixed.reliable and not mixed.transient_local


def test_info_refuses_a_folder_that_is_not_a_bag(tmp_path):
    with pytest.raises(BagError, match='metadata.yaml'):
        info(tmp_path)
    with pytest.raises(BagError, match='rate'):
        play(tmp_path, rate=0.0)


# --- topic selection ----------------------------------------------------------------------

DESIGN_TOPICS = ['/sage/camera/image_raw', '/sage/camera/camera_info', '/sage/camera/frame_ref',
                 '/sage/audio/frames', '/sage/imu/data', '/sage/text/in',
                 '/sage/vision/latent', '/sage/audio/latent', '/sage/language/latent',
                 '/sage/salience', '/sage/reward', '/sage/budget', '/sage/metabolic_state',
                 '/sage/memory/stored', '/sage/viz/markers', '/diagnostics']
SENSOR_INPUTS = ('/sage/camera/image_raw', '/sage/camera/camera_info', '/sage/audio/frames',
                 '/sage/imu/data', '/sage/text/in', '/sage/reward')


def test_play_selects_only_sensor_inputs_unless_told_otherwise():
    default = select_topics(DESIGN_TOPICS)
    assert default.play == SENSOR_INPUTS
    assert set(default.skip) == set(DESIGN_TOPICS) - set(SENSOR_INPUTS)
    assert set(default.skip.values()) == {NOT_INPUT}
    # the graph's outputs are never played by default: they would come twice
    assert {'/sage/salience', '/sage/vision/latent', '/sage/budget'} <= set(default.skip)

    everything = select_topics(DESIGN_TOPICS, play_all=True, exclude=['/diagnostics'])
    assert everything.play == tuple(t for t in DESIGN_TOPICS if t != '/diagnostics')
    assert everything.skip == {'/diagnostics': EXCLUDED}

    # --topics takes comma-separated and repeated values, with or without the leading '/'
    named = select_topics(DESIGN_TOPICS, topics=['sage/imu/data,/sage/salience', '/sage/x'])
    assert named.play == ('/sage/imu/data', '/sage/salience')
    assert named.skip['/sage/audio/frames'] == NOT_NAMED
    assert named.missing == ('/sage/x',)

    some = select_topics(DESIGN_TOPICS, exclude=['/sage/camera/image_raw,/sage/reward'])
    assert some.play == ('/sage/camera/camera_info', '/sage/audio/frames', '/sage/imu/data',
                         '/sage/text/in')
    lines = describe(some)
    assert lines[0].startswith('[bag] playing 4 topics: /sage/camera/camera_info')
    assert any(line.startswith('[bag] skipping /sage/camera/image_raw, /sage/reward: excluded')
               for line in lines)

    with pytest.raises(BagError, match='--all'):
        select_topics(DESIGN_TOPICS, topics=['/sage/imu/data'], play_all=True)


def test_play_waits_for_a_reader_that_joins_late_and_it_gets_every_message(
        tmp_path, ros_domain):
    """--wait-for: a node still loading its model is not in the graph when the others are;
    play waits until it reads too, so it gets the bag from the first message."""
    assert readers_wanted(['sage/imu/data=2,/x', '']) == {'/sage/imu/data': 2, '/x': 1}
    for bad, why in (('/x=0', 'whole number'), ('/x=two', 'whole number'), ('=2', 'no topic')):
        with pytest.raises(BagError, match=why):
            readers_wanted([bad])

    bag = tmp_path / 'bag'
    # Each frame's IMU samples just before it, so the reader that joins once a frame came has
    # surely missed the first ones without --wait-for, however slowly play goes on: with them
    # after the frame, a player held up on a loaded machine met the reader before the samples.
    sent = [(topic, t - 4 if topic == '/sage/imu/data' else t, data)
            for topic, t, data in _messages(n_images=20) if topic != '/sage/text/in']
    _write_bag(bag, sent, compression='none')
    imu = [m[2] for m in sorted(sent, key=lambda m: m[1]) if m[0] == '/sage/imu/data']
    frames_before, got, said = _late_imu_reader(bag, ['/sage/imu/data'])
    assert "waiting for the graph's subscribers and /sage/imu/data (1)" in said
    assert frames_before == 0 and got == imu, said
    # Without it, play starts once the camera's reader is matched: the late one misses the start.
    frames_before, got, said = _late_imu_reader(bag, [])
    assert frames_before > 0 and len(got) < len(imu), said
    assert got == imu[len(imu) - len(got):]


def _late_imu_reader(bag: Path, wait_for: list[str]) -> tuple[int, list[bytes], str]:
    """Play bag to a camera reader there from the start, and an IMU reader that joins once
    the camera's got a frame or after 2 s: (frames before the IMU reader joined, what the IMU
    reader got, what play said)."""
    frames: list[bytes] = []
    got: list[bytes] = []
    said = io.StringIO()
    with _node_beside(lambda: play(bag, rate=0.5, wait_for=wait_for, delay=60.0, stdout=said),
                      'bag_test_late_reader') as (node, executor, player, codes):
        node.create_subscription(Image, '/sage/camera/image_raw', frames.append,
                                 RELIABLE_QOS, raw=True)
        player.start()
        end = time.monotonic() + (2.0 if wait_for else 40.0)  # the IMU reader is loading
        while not frames and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        frames_before = len(frames)
        node.create_subscription(Imu, '/sage/imu/data', got.append, RELIABLE_QOS, raw=True)
        end = time.monotonic() + 40.0
        while player.is_alive() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        for _ in range(20):  # the last samples in flight
            executor.spin_once(timeout_sec=0.05)
    assert codes == [0], said.getvalue()
    return frames_before, got, said.getvalue()


def test_cli_play_refuses_topics_with_all_and_says_what_it_skips(tmp_path):
    bag = tmp_path / 'bag'
    _write_bag(bag, _messages(n_images=2), compression='none')
    runner = CliRunner()
    refused = runner.invoke(app, ['bag', 'play', str(bag), '--topics', '/sage/imu/data',
                                  '--all'])
    assert refused.exit_code != 0
    assert 'cannot be combined' in str(refused.exception) + refused.output
    shown = runner.invoke(app, ['bag', 'info', str(bag)])
    assert shown.exit_code == 0, shown.output
    assert 'Compression:       none' in shown.output


# --- compression and splitting ----------------------------------------------------------------

IMAGE_H, IMAGE_W = 240, 320
SPLIT_BYTES = 1_000_000


def _messages(n_images: int = 60, seed: int = 0) -> list[tuple[str, int, bytes]]:
    """Camera frames (a moving gradient with sensor noise, so zstd has something to find),
    IMU samples between them, and text inputs from the middle on: (topic, log time, CDR)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, IMAGE_W, dtype=np.float32)[None, :, None]
    out: list[tuple[str, int, bytes]] = []
    t = 1_700_000_000_000_000_000
    for i in range(n_images):
        frame = ramp + 4 * i + rng.normal(0, 1, (IMAGE_H, IMAGE_W, 3))
        img = Image(height=IMAGE_H, width=IMAGE_W, encoding='rgb8', step=IMAGE_W * 3,
                    data=np.clip(frame, 0, 255).astype(np.uint8).tobytes())
        img.header.stamp.sec, img.header.stamp.nanosec = divmod(t, 10**9)
        out.append(('/sage/camera/image_raw', t, serialize_message(img)))
        for k in range(3):
            imu = Imu()
            imu.header.stamp.sec, imu.header.stamp.nanosec = divmod(t + k + 1, 10**9)
            imu.linear_acceleration.z = 9.81 + float(rng.normal(0, 0.05))
            out.append(('/sage/imu/data', t + k + 1, serialize_message(imu)))
        if i >= n_images // 2:
            out.append(('/sage/text/in', t + 10,
                        serialize_message(TextInput(text=f'frame {i}', source='test'))))
        t += 33_000_000
    return out


def _write_bag(bag, messages, compression='zstd', max_bytes=0, storage='mcap'):
    types = {'/sage/camera/image_raw': 'sensor_msgs/msg/Image',
             '/sage/imu/data': 'sensor_msgs/msg/Imu',
             '/sage/text/in': 'sage_interfaces/msg/TextInput'}
    store = sage_typestore()
    writer = BagWriter(bag, store, BagOptions(storage, compression, max_bytes))
    writer.open()
    for topic, stamp, data in messages:
        if topic not in writer._topics:  # topics appear while recording, as live ones do
            writer.add_topic(topic, types[topic], [])
        writer.write(topic, stamp, data)
    writer.close()
    return writer.files


def _read_all(bag) -> list[tuple[str, int, bytes]]:
    with Reader(bag) as reader:
        return [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]


def _chunk_compressions(path) -> set[str]:
    with path.open('rb') as f:
        reader = make_reader(f)
        assert reader.get_header().profile == 'ros2'
        return {c.compression for c in reader.get_summary().chunk_indexes}


def test_split_compressed_bag_reads_back_every_message_in_order(tmp_path):
    bag = tmp_path / 'bag'
    written = _messages()
    files = _write_bag(bag, written, compression='zstd', max_bytes=SPLIT_BYTES)

    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert len(files) >= 3 and files == [f'bag_{i}.mcap' for i in range(len(files))]
    assert meta['relative_file_paths'] == files
    assert [f['path'] for f in meta['files']] == files
    assert sorted(p.name for p in bag.iterdir()) == sorted(files + ['metadata.yaml'])
    assert meta['message_count'] == len(written)
    assert sum(f['message_count'] for f in meta['files']) == len(written)
    counts = {t['topic_metadata']['name']: t['message_count']
              for t in meta['topics_with_message_count']}
    assert counts == {t: sum(m[0] == t for m in written) for t in counts}
    assert set(counts) == {'/sage/camera/image_raw', '/sage/imu/data', '/sage/text/in'}
    # each file but the last reached the limit, and passed it by less than a chunk
    sizes = [(bag / f).stat().st_size for f in files]
    assert all(SPLIT_BYTES <= s < SPLIT_BYTES + 2**20 + SIZE_CHECK_BYTES for s in sizes[:-1]), \
        sizes

    # rosbags' own Reader gets every message, in order, byte for byte
    assert _read_all(bag) == written
    # an independent MCAP reader sees zstd chunks in every file
    assert all(_chunk_compressions(bag / f) == {'zstd'} for f in files)
    summary = info(bag)
    assert summary['files'] == files and summary['message_count'] == len(written)
    assert summary['compression'] == 'zstd (mcap chunks)'
    assert summary['start_ns'] == written[0][1]


def test_zstd_compression_shrinks_the_bag_and_keeps_every_byte(tmp_path):
    written = _messages(n_images=30)
    plain, packed = tmp_path / 'plain', tmp_path / 'packed'
    _write_bag(plain, written, compression='none')
    _write_bag(packed, written)  # the default
    size = {b: sum(f.stat().st_size for f in b.iterdir()) for b in (plain, packed)}
    assert size[packed] < 0.6 * size[plain], size
    assert _read_all(plain) == _read_all(packed) == written
    assert _chunk_compressions(plain / 'plain_0.mcap') == {''}
    assert info(plain)['compression'] == 'none'
    assert info(packed)['compression'] == 'zstd (mcap chunks)'
    meta = yaml.safe_load((packed / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    # chunk compression lives inside MCAP: metadata.yaml names none, as rosbag2 writes it
    assert not meta['compression_mode'] and not meta['compression_format']

    # sqlite3 has no chunks: zstd per message, named in metadata.yaml (rosbag2's message mode)
    db = tmp_path / 'db'
    _write_bag(db, written, storage='sqlite3')
    meta = yaml.safe_load((db / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert (meta['compression_format'], meta['compression_mode']) == ('zstd', 'message')
    assert _read_all(db) == written
    assert info(db)['compression'] == 'zstd (message)'


def test_replay_decides_identically_on_a_split_compressed_copy(tmp_path):
    scene = tmp_path / 'scene'
    make_scenario(scene, 3, 10.0, repeats=0)  # 10 s: room for no repeated sound
    copy = tmp_path / 'copy'
    writer = BagWriter(copy, sage_typestore(), BagOptions('mcap', 'zstd', SPLIT_BYTES))
    writer.open()
    with Reader(scene) as reader:
        for conn in reader.connections:
            writer.add_topic(conn.topic, conn.msgtype, conn.ext.offered_qos_profiles)
        for conn, stamp, data in reader.messages():
            writer.write(conn.topic, stamp, bytes(data))
    writer.close()
    assert len(writer.files) >= 2

    params = {n.name: dict(n.parameters) for n in load_profile('nano').nodes}
    a, b = tmp_path / 'scene.jsonl', tmp_path / 'copy.jsonl'
    summary = replay_bag(scene, params, a)
    replay_bag(copy, params, b)
    assert sum(summary.inputs.values()) > 100
    assert a.read_bytes() == b.read_bytes()


if __name__ == '__main__' and sys.argv[1:] == ['publish']:
    sys.exit(publish_main())
