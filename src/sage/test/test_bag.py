"""`sage bag`: record a live publisher, read the bag independently, play it back unchanged."""
from __future__ import annotations

import io
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

DOMAIN_ID = '170'
TOPICS = ('/sage/salience', '/sage/budget', '/sage/memory/stored', '/sage/metabolic_state')


def expected_messages() -> dict[str, list]:
    """The messages the publisher process sends (float32-exact values, so they compare equal)."""
    from sage_interfaces.msg import (AtpAllocation, AtpBudget, Experience, MetabolicState,
                                     Salience)
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
    import rclpy
    from rclpy.node import Node

    from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
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
    from mcap.reader import make_reader
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
        tmp_path, monkeypatch):
    from rclpy.serialization import deserialize_message

    from sage.bag import info, play, print_info, record
    from sage.bag_types import message_class
    monkeypatch.setenv('ROS_DOMAIN_ID', DOMAIN_ID)
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
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

    # play: a listener gets the same CDR bytes, in the same order, per topic.
    # delay only bounds the wait for the listener to be matched (play starts as soon as it
    # is); discovery took over 5 s once on a loaded CI machine, and nothing was received
    received = _listen_while_playing(bag, lambda: play(bag, rate=4.0, loop=False, clock=True,
                                                       delay=20.0, stdout=log))
    for topic in TOPICS:
        assert received[topic] == [r[3] for r in recorded[topic]], topic


def _listen_while_playing(bag: Path, start_play) -> dict[str, list[bytes]]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock

    from sage.bag_types import message_class
    from sage_common.ros import LATCHED_QOS, RELIABLE_QOS
    types = {t: f'sage_interfaces/msg/{n}' for t, n in zip(
        TOPICS, ('Salience', 'AtpBudget', 'Experience', 'MetabolicState'))}
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('bag_test_listener', context=context)
    received: dict[str, list[bytes]] = {t: [] for t in TOPICS}
    clocks: list[Clock] = []
    for topic, msgtype in types.items():
        node.create_subscription(
            message_class(msgtype), topic, received[topic].append,
            LATCHED_QOS if topic == '/sage/metabolic_state' else RELIABLE_QOS, raw=True)
    node.create_subscription(Clock, '/clock', clocks.append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    codes: list[int] = []
    player = threading.Thread(target=lambda: codes.append(start_play()))
    player.start()
    want = {t: len(v) for t, v in expected_messages().items()}
    deadline = time.monotonic() + 35.0
    try:
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if all(len(received[t]) >= n for t, n in want.items()) and not player.is_alive():
                break
    finally:
        player.join(timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert codes == [0]
    assert clocks, 'no /clock message while playing with clock=True'
    return received


def test_recorder_subscribes_best_effort_when_any_publisher_is_best_effort():
    from rosbags.interfaces import QosDurability, QosReliability

    from sage.bag import adapt_qos
    from sage.bag_types import sage_typestore
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
    import pytest

    from sage.bag import info, play
    from sage.bag_types import BagError
    with pytest.raises(BagError, match='metadata.yaml'):
        info(tmp_path)
    with pytest.raises(BagError, match='rate'):
        play(tmp_path, rate=0.0)


if __name__ == '__main__' and sys.argv[1:] == ['publish']:
    sys.exit(publish_main())
