"""The edge host's side of `sage bench twohost`: send texts, time what comes back.

Run on the edge (in its network namespace, in the graph's DDS environment):
    python -m sage_bench.twohost_probe COUNT RATE_HZ DISCOVER_S SETTLE_S [REMOTE_AFTER]
Once a warm-up text has come back scored (within DISCOVER_S; with REMOTE_AFTER, once the
other host has answered one too and one sent after that has come back here: see main), it
publishes COUNT TextInput
messages on /sage/text/in at RATE_HZ, each stamped with its send time, and records when the
language Latent (encoded on the other host) and the edge SNARC's Salience for that stamp
arrive here; it stops when all are back, or SETTLE_S after the last text. Prints one JSON
line.
"""
from __future__ import annotations

import json
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor

from sage_common.ros import RELIABLE_QOS
from sage_common.vocabulary import Topic
from sage_eval.attend_agreement import sequence_gaps
from diagnostic_msgs.msg import DiagnosticArray
from sage_interfaces.msg import Latent, Salience, TextInput


def _key(stamp) -> int:
    """The stamp in whole milliseconds: encoders carry stamps as float seconds, which moves
    the nanoseconds by up to ~0.2 us; texts are sent on whole milliseconds."""
    return round(int(stamp.sec) * 1000 + int(stamp.nanosec) / 1e6)


def next_stamp_ms(now_s: float, last_ms: int) -> int:
    """A text's stamp in whole milliseconds, after the previous text's: texts are told apart
    by stamp (this probe's keys, SNARC's input key), and a probe that fell behind sends its
    late texts back to back, two of them within one millisecond (a clean-clone CI run: 5
    texts counted of 6 sent)."""
    return max(round(now_s * 1000), last_ms + 1)


def _ros_name(dds_topic: str) -> str:
    """A DDS topic under its ROS name: rt/x is topic /x; services keep rq/ and rr/."""
    return '/' + dds_topic[3:] if dds_topic.startswith('rt/') else dds_topic


def main(count: int, rate_hz: float, discover_s: float, settle_s: float,
         remote_after: int = -1) -> dict:
    """Send `count` texts at `rate_hz` and time their latents and salience.

    remote_after >= 0: the other host must answer first. Warm-up texts go on until the edge
    encoder's remote_answered count (its diagnostics) passes this value, its count when the
    previous probe ended: every text measured after that reaches the other host's encoder
    (the edge's own standby encoder answers any text sent before that encoder matched).
    """
    rclpy.init()
    node = rclpy.create_node('sage_twohost_probe')
    sent: dict[int, float] = {}
    latent: dict[int, float] = {}
    salience: dict[int, float] = {}

    def on_latent(msg: Latent) -> None:
        latent.setdefault(_key(msg.header.stamp), time.time())

    seqs: dict[str, set[int]] = {}  # every modality's scored inputs, for gaps

    def on_salience(msg: Salience) -> None:
        seqs.setdefault(msg.modality, set()).add(int(msg.input_seq))
        if msg.modality == 'language':
            salience.setdefault(_key(msg.header.stamp), time.time())

    edge_encoder: dict[str, str] = {}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:  # the edge's language encoder: the one that counts remotes
            values = {kv.key: kv.value for kv in status.values}
            if 'remote_trust' in values:
                edge_encoder.update(values)

    pub = node.create_publisher(TextInput, Topic.TEXT_IN, RELIABLE_QOS)
    node.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS, on_diagnostics, RELIABLE_QOS)
    node.create_subscription(Latent, Topic.LANGUAGE_LATENT, on_latent, RELIABLE_QOS)
    node.create_subscription(Salience, Topic.SALIENCE, on_salience, RELIABLE_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)

    last_ms = 0

    def send(i: int, warmup: bool = False) -> int:
        nonlocal last_ms
        msg = TextInput()
        last_ms = stamp_ms = next_stamp_ms(time.time(), last_ms)
        wall = stamp_ms / 1000
        msg.header.stamp.sec = stamp_ms // 1000
        msg.header.stamp.nanosec = stamp_ms % 1000 * 1_000_000
        msg.text = f'message {i} from the edge: is the door at the end of the hall open?'
        msg.source = 'twohost_probe'
        key = _key(msg.header.stamp)
        if not warmup:
            sent[key] = wall
        pub.publish(msg)
        return key

    t_start = time.monotonic()
    # The encoder on the other host, and the edge SNARC's reader of its latents, must be
    # matched first (a sample sent before is lost): warm-up texts until one is scored and,
    # when asked, one was answered by the other host.
    while pub.get_subscription_count() == 0 and time.monotonic() - t_start < discover_s:
        ex.spin_once(timeout_sec=0.1)
    warm: set[int] = set()
    next_warm = time.monotonic()
    # This probe's own reader must know the latent writers too: the other host's, and with
    # remote_after the edge's standby encoder. Over a lossy link its discovery can lag the
    # graph's (a CI run lost the first two remote latents of the 5 % loss condition so, while
    # the edge SNARC, matched long before, scored all ten).
    writers = 2 if remote_after >= 0 else 1
    # Knowing a writer is not being known by it: a remote writer sends only to the readers it
    # has matched, so a sample it publishes before it knows this probe's reader never comes
    # here (a clean-clone CI run at 5 % loss: 9 latents of 10 here, while the edge SNARC,
    # matched long before, scored all ten). A warm-up text sent once the other host has
    # answered must come back to this probe as a latent too.
    # (Texts sent after a remote answer imply that answer, so they stand for it below.)
    after_remote: set[int] = set()

    def remote_answered() -> bool:
        return int(edge_encoder.get('remote_answered', 0)) > remote_after

    def warming() -> bool:
        matched = node.count_publishers(Topic.LANGUAGE_LATENT) >= writers
        heard = remote_after < 0 or bool(after_remote & latent.keys())
        return not (warm & salience.keys() and matched and heard)

    while warming() and time.monotonic() - t_start < discover_s:
        if time.monotonic() >= next_warm:
            key = send(-1 - len(warm), warmup=True)
            warm.add(key)
            if remote_after >= 0 and remote_answered():
                after_remote.add(key)
            next_warm += 1.0
        ex.spin_once(timeout_sec=0.05)
    ready_s = time.monotonic() - t_start
    seqs.clear()  # gaps are counted from here on
    period = 1.0 / rate_hz
    next_send = time.monotonic()
    i = 0
    last_send = next_send
    while True:
        now = time.monotonic()
        if i < count and now >= next_send:
            send(i)
            i += 1
            next_send += period
            last_send = now
        back = all(k in salience and k in latent for k in sent)
        if i >= count and (back or now - last_send > settle_s):
            break
        ex.spin_once(timeout_sec=0.01)
    # the edge encoder's counts as of now (its next diagnostics report)
    seen = dict(edge_encoder)
    end = time.monotonic() + 5.0
    while edge_encoder == seen and time.monotonic() < end:  # a report newer than the texts
        ex.spin_once(timeout_sec=0.1)
    # every writer this host has discovered (its own and the other host's), by topic: the
    # bench maps the link's traffic to topics with them
    gids = {_ros_name(topic): [bytes(info.endpoint_gid[:16]).hex() for info in
                               node.get_publishers_info_by_topic(topic, no_mangle=True)]
            for topic, _ in node.get_topic_names_and_types(no_demangle=True)}
    ex.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return {
        'ready_s': round(ready_s, 3), 'warmup_texts': len(warm), 'sent': len(sent),
        'latent_ms': [round((latent[k] - t) * 1e3, 3) for k, t in sent.items() if k in latent],
        'salience_ms': [round((salience[k] - t) * 1e3, 3) for k, t in sent.items()
                        if k in salience],
        # inputs of each modality SNARC did not score while the texts ran (input_seq gaps)
        'salience_gaps': {m: sequence_gaps(v) for m, v in seqs.items()},
        'salience_scored': {m: len(v) for m, v in seqs.items()},
        'edge_encoder': {k: edge_encoder[k] for k in ('remote_trust', 'remote_answered',
                                                      'local_fallbacks', 'remote_late')
                         if k in edge_encoder},
        'writer_gids': gids,
    }


if __name__ == '__main__':
    print(json.dumps(main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]),
                          float(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else -1)))
