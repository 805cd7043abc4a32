"""Child processes of the handoff benchmark (bench.py): one role per process.

Run as ``python -m sage_cuda_mailbox._bench_child ROLE JSON_ARGS``. Each prints ``ready`` when
set up, may wait for ``go`` on stdin, and prints one JSON line with its results at the end.
Latency is measured from just before the writer hands a frame over (copy into shared memory,
or building and publishing the Image) to the reader holding a numpy view of it; stamps use
CLOCK_MONOTONIC, shared by every process of the machine.
"""
from __future__ import annotations

import json
import resource
import struct
import sys
import time
from typing import Any

import numpy as np

from sage_cuda_mailbox import _mailbox
from sage_cuda_mailbox.errors import MailboxBusy, StaleFrame
from sage_cuda_mailbox.frames import FrameReader, FrameWriter

# slot (u32), flag (u32: 0 frame, 1 warm-up, 2 end), sequence (u64), t0 ns (u64)
NOTE = struct.Struct('<IIQQ')
FLAG_FRAME, FLAG_WARM, FLAG_END = 0, 1, 2
WARMUP_FRAMES = 10


def cpu_seconds() -> float:
    """User + system CPU time of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def make_frames(width: int, height: int, count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def paced(rate_hz: float, seconds: float) -> list[float]:
    """Send times (monotonic seconds, from now) for a paced stream."""
    n = max(1, int(seconds * rate_hz))
    start = time.monotonic() + 0.05
    return [start + i / rate_hz for i in range(n)]


def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# ------------------------------------------------------------------------------ mailbox

def mailbox_writer(args: dict[str, Any]) -> None:
    w, h = args['width'], args['height']
    writer = FrameWriter(args['segment'], slots=4, max_bytes=w * h * 3)
    notes = _mailbox.Pbm.create(args['segment'] + '_notes', NOTE.size, 64, 'overwrite',
                                'replace')
    producer = notes.producer()
    frames = make_frames(w, h)
    emit({'ready': True})
    sys.stdin.readline()  # go
    for i in range(WARMUP_FRAMES):
        t0 = time.monotonic_ns()
        d = writer.write(frames[i % len(frames)], t0 / 1e9)
        producer.push(NOTE.pack(d.slot, FLAG_WARM, d.sequence, t0))
        time.sleep(1.0 / args['rate_hz'])
    times = paced(args['rate_hz'], args['seconds'])
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    for i, t in enumerate(times):
        sleep_until(t)
        t0 = time.monotonic_ns()
        d = writer.write(frames[i % len(frames)], t0 / 1e9)
        producer.push(NOTE.pack(d.slot, FLAG_FRAME, d.sequence, t0))
    cpu1, wall1 = cpu_seconds(), time.monotonic()
    time.sleep(0.05)
    producer.push(NOTE.pack(0, FLAG_END, 0, 0))
    emit({'frames': len(times), 'cpu_s': cpu1 - cpu0, 'wall_s': wall1 - wall0})
    sys.stdin.readline()  # keep the segments until the reader is done
    writer.close()
    _mailbox.unlink(args['segment'] + '_notes')


def mailbox_reader(args: dict[str, Any]) -> None:
    reader = FrameReader(args['segment'])
    notes = _mailbox.Pbm.attach(args['segment'] + '_notes')
    consumer = notes.consumer()
    emit({'ready': True})
    latencies: list[float] = []
    stale = 0
    cpu0 = wall0 = None
    deadline = time.monotonic() + args['seconds'] + 30.0
    while time.monotonic() < deadline:
        raw = consumer.pop_wait(1.0)
        if raw is None:
            continue
        slot, flag, sequence, t0 = NOTE.unpack(raw)
        if flag == FLAG_END:
            break
        try:
            frame = reader.read(slot, sequence)
        except (StaleFrame, MailboxBusy):
            stale += 1
            continue
        t1 = time.monotonic_ns()
        if flag == FLAG_FRAME:
            if cpu0 is None:
                cpu0, wall0 = cpu_seconds(), time.monotonic()
            latencies.append((t1 - t0) / 1e6)
        del frame
    cpu1, wall1 = cpu_seconds(), time.monotonic()
    emit({'latencies_ms': latencies, 'stale': stale,
          'cpu_s': cpu1 - (cpu0 if cpu0 is not None else cpu1),
          'wall_s': wall1 - (wall0 if wall0 is not None else wall1)})


# ------------------------------------------------------------------------------ DDS

def _qos() -> Any:
    # lazy: keeps ROS out of this module's import
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    # SENSOR_QOS-like but reliable, depth 1 (as the issue fixes for this comparison).
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)


def dds_publisher(args: dict[str, Any]) -> None:
    # lazy: keeps ROS out of this module's import
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('sage_bench_pub')
    pub = node.create_publisher(Image, args['topic'], _qos())
    w, h = args['width'], args['height']
    frames = make_frames(w, h)
    emit({'ready': True})
    deadline = time.monotonic() + 15.0
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.3)  # let the match settle on both sides

    def publish(frame: np.ndarray, frame_id: str) -> None:
        t0 = time.monotonic_ns()
        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t0, 1_000_000_000)
        msg.header.frame_id = frame_id
        msg.height, msg.width, msg.encoding, msg.step = h, w, 'rgb8', w * 3
        msg.data = frame.tobytes()
        pub.publish(msg)

    for i in range(WARMUP_FRAMES):
        publish(frames[i % len(frames)], 'warm')
        time.sleep(1.0 / args['rate_hz'])
    times = paced(args['rate_hz'], args['seconds'])
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    for i, t in enumerate(times):
        sleep_until(t)
        publish(frames[i % len(frames)], 'frame')
    cpu1, wall1 = cpu_seconds(), time.monotonic()
    for _ in range(3):
        time.sleep(0.05)
        publish(frames[0], 'end')
    emit({'frames': len(times), 'cpu_s': cpu1 - cpu0, 'wall_s': wall1 - wall0})
    sys.stdin.readline()
    node.destroy_node()
    rclpy.try_shutdown()


def dds_subscriber(args: dict[str, Any]) -> None:
    # lazy: keeps ROS out of this module's import
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('sage_bench_sub')
    latencies: list[float] = []
    state: dict[str, Any] = {'done': False, 'cpu0': None, 'wall0': None}

    def on_image(msg: Image) -> None:
        frame = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        t1 = time.monotonic_ns()
        if msg.header.frame_id == 'end':
            state['done'] = True
            return
        if msg.header.frame_id == 'frame':
            if state['cpu0'] is None:
                state['cpu0'], state['wall0'] = cpu_seconds(), time.monotonic()
            t0 = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            latencies.append((t1 - t0) / 1e6)
        del frame

    node.create_subscription(Image, args['topic'], on_image, _qos())
    emit({'ready': True})
    deadline = time.monotonic() + args['seconds'] + 30.0
    while not state['done'] and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    cpu1, wall1 = cpu_seconds(), time.monotonic()
    cpu0 = state['cpu0'] if state['cpu0'] is not None else cpu1
    wall0 = state['wall0'] if state['wall0'] is not None else wall1
    emit({'latencies_ms': latencies, 'stale': 0, 'cpu_s': cpu1 - cpu0, 'wall_s': wall1 - wall0})
    node.destroy_node()
    rclpy.try_shutdown()


ROLES = {
    'mailbox_writer': mailbox_writer,
    'mailbox_reader': mailbox_reader,
    'dds_publisher': dds_publisher,
    'dds_subscriber': dds_subscriber,
}


def main() -> int:
    role, raw = sys.argv[1], sys.argv[2]
    ROLES[role](json.loads(raw))
    return 0


if __name__ == '__main__':
    sys.exit(main())
