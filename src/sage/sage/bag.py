"""`sage bag record | play | info`: standard rosbag2 bags (MCAP by default) through rosbags.

Record subscribes with rclpy to serialized (CDR) messages and writes them unchanged with the
rosbags Writer; play reads them with rosbags and publishes the same CDR bytes. The bags carry
rosbag2's metadata.yaml (offered QoS, type hashes) and `ros2msg` schemas with `cdr` messages,
so `ros2 bag info/play` read them and `ros2 bag record` bags play here. Recordings are
zstd-compressed and may be split into several files (sage.bag_writer); play publishes only the
graph's inputs unless told otherwise (sage.bag_select).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
import math
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Any, TextIO

from rosbags.highlevel import AnyReader
import yaml

from rosbags.interfaces import (Connection, Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

from sage.bag_frames import FullRateImages
from sage.bag_select import describe, readers_wanted, select_topics
from sage.bag_types import BagError, ensure_type, message_class, sage_typestore
from sage.bag_writer import BagOptions, BagWriter, compression_of
from sage_common.vocabulary import absolute, PREFIX, Topic

DEFAULT_PREFIX = absolute(PREFIX)  # /sage/: what a graph with no namespace publishes
DISCOVERY_PERIOD_S = 0.5
FRAMES_POLL_S = 0.1  # how soon a FrameRef camera's services, once up, are asked for every frame
# How long a recording's duration may wait for FrameRef cameras to send every frame (a camera
# that never answers still gets a recording, of the images it sends).
FRAMES_WAIT_S = 10.0
CLOCK_PERIOD_S = 0.025  # 40 Hz, rosbag2's default --clock rate
PROGRESS_STEP_S = 0.25  # a progress bar hears of every quarter second of the bag
# play waits at most this long for the graph's subscribers: a running graph is matched in well
# under a second, and nobody waits long for a bag played to no one (--wait for a loaded host).
DEFAULT_WAIT_S = 5.0
MATCH_SETTLE_S = 0.5  # the graph's subscribers stay matched this long before play starts


def _say(out: TextIO | None, text: str) -> None:
    # None: the sys.stdout of the moment (a default argument would keep the one at import)
    print(text, file=out or sys.stdout, flush=True)


# --- QoS: rclpy <-> rosbags (same enum values: both mirror rmw) -------------------------------

def qos_to_bag(profile: Any) -> Qos:
    """The rosbags Qos record of an rclpy QoSProfile (an endpoint's offered QoS)."""
    def t(duration: Any) -> QosTime:
        ns = int(duration.nanoseconds)
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)

    return Qos(history=QosHistory(int(profile.history)), depth=int(profile.depth),
               reliability=QosReliability(int(profile.reliability)),
               durability=QosDurability(int(profile.durability)),
               deadline=t(profile.deadline), lifespan=t(profile.lifespan),
               liveliness=QosLiveliness(int(profile.liveliness)),
               liveliness_lease_duration=t(profile.liveliness_lease_duration),
               avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


@dataclass(frozen=True)
class QosChoice:
    """Reliability/durability a recorder subscribes with, or a player publishes with."""

    reliable: bool
    transient_local: bool
    depth: int


def adapt_qos(offered: Sequence[Qos], depth: int = 100) -> QosChoice:
    """rosbag2's rule: reliable / transient-local only when every publisher offers it.

    That way the subscription matches all publishers (a reliable subscriber would not match a
    best-effort publisher), and latched topics are still received by a late recorder.
    """
    if not offered:
        return QosChoice(reliable=True, transient_local=False, depth=depth)
    reliable = all(q.reliability == QosReliability.RELIABLE for q in offered)
    latched = all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    return QosChoice(reliable=reliable, transient_local=latched, depth=depth)


def _rclpy_qos(choice: QosChoice) -> Any:
    # lazy: keeps ROS out of this module's import
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=choice.depth,
        reliability=(ReliabilityPolicy.RELIABLE if choice.reliable
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if choice.transient_local
                    else DurabilityPolicy.VOLATILE))


def _wanted(topic: str, topics: Sequence[str] | None, prefix: str = DEFAULT_PREFIX) -> bool:
    if topics:
        return topic in topics
    return topic.startswith(prefix)


def out_of_namespace(topic: str, namespace: str) -> str:
    """The name a namespaced graph's topic is recorded under: /r1/sage/x -> /sage/x, so the
    bag reads like a graph's with no namespace (offline replay, play --namespace anywhere)."""
    ns = '/' + namespace.strip('/')
    if ns != '/' and topic.startswith(absolute(PREFIX, ns)):
        return topic[len(ns):]
    return topic


def _normalise(topics: Sequence[str] | None) -> list[str] | None:
    if not topics:
        return None
    return [t if t.startswith('/') else '/' + t for t in topics]


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `stop` (main thread only), so bags are always closed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _new_context() -> Any:
    # lazy: keeps ROS out of this module's import
    import rclpy
    context = rclpy.Context()
    kwargs: dict[str, Any] = {'context': context}
    try:  # leave SIGINT to Python (KeyboardInterrupt), so the bag is always closed
        # lazy: optional, rclpy before Humble has no SignalHandlerOptions
        from rclpy.signals import SignalHandlerOptions
        kwargs['signal_handler_options'] = SignalHandlerOptions.NO
    except ImportError:
        pass
    rclpy.init(**kwargs)
    return context


# --- record -----------------------------------------------------------------------------------

@dataclass
class _Recorder:
    node: Any
    writer: BagWriter
    store: Any
    topics: list[str] | None
    out: TextIO | None
    namespace: str = ''
    frames: FullRateImages | None = None
    counts: dict[str, int] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    subscriptions: list[Any] = field(default_factory=list)

    def discover(self) -> None:
        """Subscribe to every wanted topic that has a publisher and is not recorded yet."""
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.counts or topic in self.skipped:
                continue
            if not _wanted(topic, self.topics, absolute(PREFIX, self.namespace)):
                continue
            infos = self.node.get_publishers_info_by_topic(topic)
            if not infos:
                continue  # only subscribers so far: wait for a publisher (and its QoS)
            if out_of_namespace(topic, self.namespace) == absolute(Topic.CAMERA_FRAME_REF):
                if self.frames is not None and _wanted(
                        absolute(Topic.CAMERA_IMAGE, self.namespace), self.topics,
                        absolute(PREFIX, self.namespace)):
                    self.frames.camera_found(infos)
                self._skip(topic, "it points into this machine's shared memory (the frames "
                                  'are recorded as Images)')
                continue
            if len(types) != 1:
                self._skip(topic, f'has several types {types}')
                continue
            self._subscribe(topic, types[0], [qos_to_bag(i.qos_profile) for i in infos])

    def _skip(self, topic: str, why: str) -> None:
        self.skipped.add(topic)
        _say(self.out, f'[bag] not recording {topic}: {why}')

    def _subscribe(self, topic: str, msgtype: str, offered: list[Qos]) -> None:
        try:
            cls = message_class(msgtype)
        except BagError as err:
            self._skip(topic, str(err))
            return
        if not ensure_type(self.store, msgtype):
            self._skip(topic, f'no message definition found for {msgtype}')
            return
        stored = out_of_namespace(topic, self.namespace)
        self.writer.add_topic(stored, msgtype, offered)
        self.counts[topic] = 0

        def on_message(data: bytes, topic: str = topic) -> None:
            self.writer.write(stored, time.time_ns(), data)
            self.counts[topic] += 1

        qos = _rclpy_qos(adapt_qos(offered))
        self.subscriptions.append(
            self.node.create_subscription(cls, topic, on_message, qos, raw=True))
        _say(self.out, f'[bag] recording {topic} ({msgtype})'
                       + (f' as {stored}' if stored != topic else ''))


def record(out: Path, topics: list[str] | None = None, duration: float | None = None,
           storage: str = 'mcap', *, compression: str = 'zstd', max_bytes: int = 0,
           stdout: TextIO | None = None, stop: threading.Event | None = None,
           namespace: str = '') -> int:
    """Record topics of the running graph into a new rosbag2 folder.

    Args:
        out: bag folder to create (must not exist).
        topics: topic names to record; None records every topic under /sage/ (found as
            publishers appear, so nodes started later are recorded too).
        duration: stop after this many seconds; None runs until Ctrl-C or SIGTERM. The
            seconds count from when a publisher was found and the cameras that send frames by
            shared memory send an Image of every frame (at most FRAMES_WAIT_S after the start).
        storage: 'mcap' (default) or 'sqlite3'.
        compression: 'zstd' (default) or 'none' (see sage.bag_writer).
        max_bytes: start a new file in the bag folder when one holds this many bytes
            (0: one file).
        stdout: where progress lines go.
        stop: ends the recording when set (for callers running record in a thread).
        namespace: the graph's namespace ('/r1'): its /r1/sage/ topics are recorded (by
            default), under their /sage/ names (out_of_namespace).

    Returns:
        0 on success (also when stopped by Ctrl-C or SIGTERM), 1 when nothing was recorded.

    Raises:
        BagError: unknown storage or compression, or the folder cannot be created.
    """
    wanted = _normalise(topics)
    store = sage_typestore()
    writer = BagWriter(out, store, BagOptions(storage, compression, max_bytes))
    writer.open()

    # lazy: keeps ROS out of this module's import
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    context = _new_context()
    node = Node('sage_bag_recorder', context=context)
    frames = FullRateImages(node, lambda line: _say(stdout, line))
    rec = _Recorder(node, writer, store, wanted, stdout, namespace, frames)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.create_timer(DISCOVERY_PERIOD_S, rec.discover)
    node.create_timer(FRAMES_POLL_S, frames.poll)
    started, deadline = time.monotonic(), None
    split = f', new file every {max_bytes / 1e6:g} MB' if max_bytes else ''
    what = ', '.join(wanted) if wanted else f'all {absolute(PREFIX, namespace)}* topics'
    _say(stdout, f'[bag] recording into {out} ({what}; {storage}, compression '
                 f'{compression}{split})')
    stop = stop or threading.Event()
    try:
        with _stop_on_signals(stop):
            rec.discover()
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                executor.spin_once(timeout_sec=0.05)
                # The clock starts once the graph is seen and its cameras send every frame.
                if deadline is None and duration is not None and (
                        (rec.counts and not frames.pending())
                        or time.monotonic() - started > FRAMES_WAIT_S):
                    deadline = time.monotonic() + duration
    except KeyboardInterrupt:
        pass
    finally:
        try:
            frames.restore(lambda timeout: executor.spin_once(timeout_sec=timeout))
        except KeyboardInterrupt:
            pass
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        writer.close()
    total = sum(rec.counts.values())
    for topic, n in sorted(rec.counts.items()):
        _say(stdout, f'[bag]   {topic}: {n}')
    _say(stdout, f'[bag] wrote {total} messages on {len(rec.counts)} topics to {out} '
                 f"({len(writer.files)} file{'s' if len(writer.files) != 1 else ''})")
    if wanted:
        missing = sorted(set(wanted) - set(rec.counts))
        if missing:
            _say(stdout, f"[bag] never saw a publisher on: {', '.join(missing)}")
    return 0 if total else 1


# --- play -------------------------------------------------------------------------------------

def _open_reader(bag: Path) -> Any:
    if not (Path(bag) / 'metadata.yaml').is_file():
        raise BagError(f'{bag} is not a rosbag2 folder (no metadata.yaml)')
    reader = AnyReader([Path(bag)], default_typestore=sage_typestore())
    try:
        reader.open()
    except (ReaderError, OSError) as err:
        raise BagError(f'cannot open {bag}: {err}') from err
    return reader


def play(bag: Path, rate: float = 1.0, loop: bool = False, clock: bool = False,
         topics: list[str] | None = None, *, exclude: list[str] | None = None,
         play_all: bool = False, delay: float | None = None, wait_for: Sequence[str] = (),
         stdout: TextIO | None = None, stop: threading.Event | None = None,
         namespace: str = '',
         progress: Callable[[float, float | None], None] | None = None) -> int:
    """Publish a bag's messages with their original timing (scaled by rate).

    Each message is published as the recorded CDR bytes, with the QoS its publishers offered
    when it was recorded (so latched topics stay latched). By default only the graph's input
    topics are played (sage.bag_select), so a running graph never gets its own outputs twice.

    Args:
        bag: rosbag2 folder (MCAP or sqlite3).
        rate: playback speed factor (2.0 = twice as fast).
        loop: start again at the end until Ctrl-C or SIGTERM.
        clock: publish /clock (rosgraph_msgs/Clock) with the bag's time, for use_sim_time:
            every CLOCK_PERIOD_S of wall time, the bag's time scaled by rate; its first
            message's time while the graph is awaited (nodes on sim time start there).
        topics: only these topics (default: the graph's input topics).
        exclude: never these topics.
        play_all: every topic of the bag (the graph's outputs too).
        delay: at most this many seconds to wait, before the first message, until every
            subscriber the graph has on the played topics is matched (see _wait_for_graph);
            None: DEFAULT_WAIT_S.
        wait_for: topics ('TOPIC' or 'TOPIC=N' readers, comma-separated) that must also have
            their readers before the first message, within delay: a node that is still
            loading its model is not in the graph yet, so matching the subscribers found
            cannot wait for it. Any topic, played or not (SNARC's latents too).
        stdout: where progress lines go.
        stop: ends playing when set (for callers running play in a thread).
        namespace: the graph's namespace ('/r1'): the bag's /sage/... topics are published
            as /r1/sage/... (a graph launched with --namespace /r1).
        progress: called with (seconds of the bag played, its length) as it plays (a
            progress bar; each pass of a loop starts again at 0).

    Returns:
        0 when played to the end or stopped (Ctrl-C, SIGTERM), 1 when there was nothing to play.

    Raises:
        BagError: the bag cannot be read, rate is not positive, or topics and play_all are
            both given.
    """
    if not rate > 0:
        raise BagError(f'rate must be positive, got {rate}')
    wanted = readers_wanted(wait_for)
    reader = _open_reader(bag)
    # lazy: keeps ROS out of this module's import
    import rclpy
    from rclpy.node import Node
    sent = 0
    stop = stop or threading.Event()
    try:
        selection = select_topics([c.topic for c in reader.connections], topics or (),
                                  exclude or (), play_all)
        for line in describe(selection):
            _say(stdout, line)
        conns = [c for c in reader.connections if c.topic in selection.play]
        if not conns:
            _say(stdout, f'[bag] nothing to play in {bag}')
            return 1
        context = _new_context()
        node = Node('sage_bag_player', context=context)
        try:
            pubs = _publishers(node, conns, stdout, namespace)
            clock_pub = _clock_publisher(node) if clock else None
            start = int(reader.start_time)

            def hold_clock() -> None:
                if clock_pub is not None:
                    _publish_clock(clock_pub, start)
            with _stop_on_signals(stop):
                _wait_for_graph(node, {in_namespace(c.topic, namespace): pubs[c.id]
                                       for c in conns if c.id in pubs},
                                DEFAULT_WAIT_S if delay is None else delay, stop, stdout,
                                wanted, hold_clock)
                while not stop.is_set():
                    sent += _play_once(reader, [c for c in conns if c.id in pubs], pubs,
                                       clock_pub, rate, stop, progress)
                    if not loop:
                        break
        except KeyboardInterrupt:
            pass
        finally:
            node.destroy_node()
            rclpy.try_shutdown(context=context)
    finally:
        reader.close()
    _say(stdout, f'[bag] played {sent} messages from {bag}')
    return 0


def in_namespace(topic: str, namespace: str) -> str:
    """A recorded /sage/... topic as a graph in namespace names it (other topics as they are)."""
    if namespace.strip('/') and topic.startswith(DEFAULT_PREFIX):
        return absolute(topic[1:], namespace)
    return topic


def _publishers(node: Any, conns: list[Connection], stdout: TextIO | None,
                namespace: str = '') -> dict[int, Any]:
    by_topic: dict[str, Any] = {}
    pubs: dict[int, Any] = {}
    for conn in conns:
        if conn.topic not in by_topic:
            try:
                cls = message_class(conn.msgtype)
            except BagError as err:
                _say(stdout, f'[bag] not playing {conn.topic}: {err}')
                continue
            offered = list(getattr(conn.ext, 'offered_qos_profiles', []) or [])
            by_topic[conn.topic] = node.create_publisher(
                cls, in_namespace(conn.topic, namespace),
                _rclpy_qos(adapt_qos(offered, depth=100)))
        pubs[conn.id] = by_topic[conn.topic]
    return pubs


def _clock_publisher(node: Any) -> Any:
    # lazy: keeps ROS out of this module's import
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    return node.create_publisher(Clock, Topic.CLOCK,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))


def _publish_clock(pub: Any, stamp_ns: int) -> None:
    # lazy: keeps ROS out of this module's import
    from rosgraph_msgs.msg import Clock
    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    pub.publish(msg)


def _wait_for_graph(node: Any, pubs: dict[str, Any], delay: float, stop: threading.Event,
                    stdout: TextIO | None, wanted: dict[str, int] | None = None,
                    idle: Any = None) -> None:
    """Wait until the graph's subscribers on the played topics are matched, at most delay s.

    Messages sent before a subscriber is matched are lost to it, and a node that misses the
    first inputs of a bag decides differently on the rest (its statistics start elsewhere).
    Ready: some played topic has a subscriber (or `wanted` names topics), every subscriber
    discovery has found on a played topic is matched, and each `wanted` topic has its
    readers, for MATCH_SETTLE_S in a row (nodes are discovered one by one). Topics no node
    subscribes to (camera_info without a viewer) do not hold playback up. idle() is called
    on every look (play holds /clock at the bag's start meanwhile).
    """
    wanted = wanted or {}
    deadline = time.monotonic() + max(0.0, delay)
    settled_at: float | None = None
    if delay > 0:
        extra = f" and {', '.join(f'{t} ({n})' for t, n in wanted.items())}" if wanted else ''
        _say(stdout, f"[bag] waiting for the graph's subscribers{extra} (at most {delay:g} s)")
    while not stop.is_set():
        now = time.monotonic()
        found = {t: node.count_subscribers(t) for t in pubs}
        unmatched = [t for t, p in pubs.items() if p.get_subscription_count() < found[t]]
        short = {t: k for t, n in wanted.items() if (k := node.count_subscribers(t)) < n}
        if (any(found.values()) or wanted) and not unmatched and not short:
            settled_at = settled_at if settled_at is not None else now
            if now - settled_at >= MATCH_SETTLE_S:
                return
        else:
            settled_at = None
        if idle is not None:
            idle()
        if now >= deadline:
            if short:
                _say(stdout, f'[bag] readers after {delay:g} s: ' + ', '.join(
                    f'{t} {k} of {wanted[t]}' for t, k in short.items()) + ': playing anyway')
            elif not any(found.values()):
                _say(stdout, f'[bag] no subscriber after {delay:g} s: playing anyway')
            elif unmatched:
                _say(stdout, f"[bag] not matched after {delay:g} s: {', '.join(unmatched)}")
            return
        time.sleep(0.02)


def _play_once(reader: Any, conns: list[Connection], pubs: dict[int, Any], clock_pub: Any,
               rate: float, stop: threading.Event,
               progress: Callable[[float, float | None], None] | None = None) -> int:
    """One pass over the bag; returns the number of messages published."""
    start_wall = time.monotonic()
    first: int | None = None
    sent = 0
    begin, length = int(reader.start_time), (int(reader.end_time) - int(reader.start_time)) * 1e-9
    shown = -math.inf
    for conn, stamp, raw in reader.messages(connections=conns):
        if first is None:
            first = stamp
        due = start_wall + (stamp - first) * 1e-9 / rate
        while True:
            now = time.monotonic()
            if clock_pub is not None:
                bag_now = first + int((now - start_wall) * rate * 1e9)
                _publish_clock(clock_pub, min(bag_now, stamp))
            if now >= due or stop.is_set():
                break
            time.sleep(min(due - now, CLOCK_PERIOD_S if clock_pub is not None else 0.1))
        if stop.is_set():
            break
        pubs[conn.id].publish(bytes(raw))
        sent += 1
        if progress is not None and (stamp - begin) * 1e-9 - shown >= PROGRESS_STEP_S:
            shown = (stamp - begin) * 1e-9
            progress(shown, length)
    if progress is not None and not stop.is_set():
        progress(length, length)
    return sent


# --- info -------------------------------------------------------------------------------------

def _qos_dict(q: Qos) -> dict[str, Any]:
    return {'history': q.history.name.lower(), 'depth': q.depth,
            'reliability': q.reliability.name.lower(),
            'durability': q.durability.name.lower()}


def info(bag: Path) -> dict[str, Any]:
    """A bag's summary: storage, times, and per topic its type, count and offered QoS.

    Raises:
        BagError: not a rosbag2 folder, or unreadable.
    """
    bag = Path(bag)
    if not (bag / 'metadata.yaml').is_file():
        raise BagError(f'{bag} is not a rosbag2 folder (no metadata.yaml)')
    try:
        meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
        with Reader(bag) as reader:
            topics: list[dict[str, Any]] = [
                {'name': c.topic, 'type': c.msgtype, 'count': c.msgcount,
                 'serialization_format': getattr(c.ext, 'serialization_format', 'cdr'),
                 'offered_qos_profiles': [_qos_dict(q) for q in
                                          getattr(c.ext, 'offered_qos_profiles', [])]}
                for c in reader.connections]
            result = {
                'path': str(bag),
                'storage': meta.get('storage_identifier', ''),
                'version': meta.get('version'),
                'files': list(meta.get('relative_file_paths', [])),
                'size_bytes': sum(f.stat().st_size for f in bag.iterdir() if f.is_file()),
                'start_ns': reader.start_time if reader.message_count else 0,
                'end_ns': reader.end_time if reader.message_count else 0,
                'duration_s': reader.duration * 1e-9 if reader.message_count else 0.0,
                'message_count': reader.message_count,
                'compression': compression_of(bag, meta),
                'topics': sorted(topics, key=lambda t: t['name']),
            }
    except (ReaderError, OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as err:
        raise BagError(f'cannot read {bag}: {err}') from err
    return result


def print_info(summary: dict[str, Any], out: TextIO | None = None) -> None:
    """Print `info()` as `ros2 bag info` does: header lines, then one line per topic."""
    start = summary['start_ns'] * 1e-9
    lines = [
        f"Files:             {', '.join(summary['files'])}",
        f"Bag size:          {summary['size_bytes'] / 1e6:.2f} MB",
        f"Storage id:        {summary['storage']} (rosbag2 v{summary['version']})",
        f"Duration:          {summary['duration_s']:.3f} s",
        f"Start:             {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(start))} "
        f'({start:.3f})',
        f"Messages:          {summary['message_count']}",
        f"Compression:       {summary['compression']}",
        'Topics:',
    ]
    width = max((len(t['name']) for t in summary['topics']), default=0)
    for t in summary['topics']:
        qos = t['offered_qos_profiles'][0] if t['offered_qos_profiles'] else {}
        tag = f"{qos.get('reliability', '?')}/{qos.get('durability', '?')}" if qos else ''
        lines.append(f"  {t['name']:<{width}}  {t['count']:>7}  {t['type']}  "
                     f"{t['serialization_format']}  {tag}")
    print('\n'.join(lines), file=out or sys.stdout)


__all__ = ['BagError', 'adapt_qos', 'info', 'play', 'print_info', 'qos_to_bag', 'record']
