"""Sensor benchmark, measuring side: a probe on the three sensor topics and the arithmetic.

`SensorProbe` subscribes to the camera, microphone and IMU topics and /diagnostics in its own
rclpy context, with queues deep enough (`queue_s` of each stream) that a stall of this
process does not show up as a sensor drop. `measure` records a window and reports per stream:
achieved vs requested rate, stamp jitter (|stamp interval - period|), gaps in the stamps,
drops counted by the node, capture-stamp-to-receive latency, the node's own
capture-to-publish latency, its capture thread's scheduling, and CPU and memory of each node
process (psutil). Starting the nodes (alone, or with the rest of a profile's graph) is
`sage bench sensors` (sage_bench.sensors), which runs them exactly as `sage launch` does.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import importlib
import math
import struct
import threading
import time
from typing import Any

import numpy as np
import psutil

from sage_sensors.realtime import raised_priority
from sage_common.vocabulary import Topic

#: node name -> (topic, message type as module.Class)
STREAMS = {
    'camera': (Topic.CAMERA_IMAGE, 'sensor_msgs.msg.Image'),
    'microphone': (Topic.AUDIO_FRAMES, 'sage_interfaces.msg.AudioFrame'),
    'imu': (Topic.IMU, 'sensor_msgs.msg.Imu'),
}

#: audio capture stamp -> publish deadline the issue sets (one 32 ms frame + 8 ms)
AUDIO_LATENCY_LIMIT_MS = 40.0


def _percentiles(values: list[float] | np.ndarray) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {'p50': float('nan'), 'p95': float('nan'), 'p99': float('nan')}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {'p50': round(float(p50), 3), 'p95': round(float(p95), 3),
            'p99': round(float(p99), 3)}


def stream_stats(recv: list[float], stamps: list[float], period_s: float,
                 wall_s: float) -> dict[str, Any]:
    """Rate, jitter, gaps and latency of one stream from receive times and header stamps.

    Args:
        recv: receive times (s, same clock as the stamps).
        stamps: header stamps (s).
        period_s: requested period.
        wall_s: measurement window length.
    """
    st = np.asarray(stamps, dtype=np.float64)
    rc = np.asarray(recv, dtype=np.float64)
    dt = np.diff(st)
    gaps = int(np.sum(np.maximum(np.rint(dt / period_s) - 1, 0))) if dt.size else 0
    return {
        'messages': int(st.size),
        'requested_hz': round(1.0 / period_s, 3),
        'achieved_hz': round(st.size / wall_s, 3) if wall_s > 0 else 0.0,
        'stamp_rate_hz': round((st.size - 1) / float(st[-1] - st[0]), 3) if st.size > 2
        else 0.0,
        # paced sources stamp their scheduled ticks, so stamp jitter is ~0 by design; arrival
        # jitter is what a consumer sees of the capture thread's and the transport's delays
        'jitter_ms': _percentiles(np.abs(dt - period_s) * 1e3),
        'arrival_jitter_ms': _percentiles(np.abs(np.diff(rc) - period_s) * 1e3),
        'stamp_gaps': gaps,
        'non_monotonic': int(np.sum(dt <= 0)),
        'latency_ms': _percentiles((rc - st) * 1e3),
    }


def lost_samples(stamp_gaps: int, node_dropped: int) -> dict[str, int]:
    """Samples lost in one stream, each counted once, and where they were lost.

    A tick the node drops never gets a stamp, so it is already one of the receiver's stamp
    gaps: the gaps are the total; the node's own count says how many of them it lost at the
    source and the rest were lost on the way (transport or the reader's queue).
    """
    at_node = min(max(node_dropped, 0), stamp_gaps)
    return {'lost': stamp_gaps, 'lost_at_node': at_node,
            'lost_in_transport': stamp_gaps - at_node}


def cdr_header_stamp(data: bytes) -> float:
    """header.stamp (s) of a serialised message whose first field is a std_msgs/Header.

    CDR: a 4-byte encapsulation header (byte 1 odd = little endian), then the stamp's int32 sec
    and uint32 nanosec, both 4-aligned from the start of the payload.
    """
    if len(data) < 12:
        raise ValueError(f'{len(data)} bytes is too short for a CDR header stamp')
    order = '<' if data[1] & 1 else '>'
    sec, nanosec = struct.unpack_from(order + 'iI', data, 4)
    return sec + nanosec * 1e-9


def queue_depth(period_s: float, queue_s: float) -> int:
    """Reader queue that holds `queue_s` seconds of a stream (at least the sensor default 5)."""
    return max(5, int(math.ceil(queue_s / period_s)))


class SensorProbe:
    """Records (receive time, stamp) of every sensor message and the latest diagnostics.

    Args:
        periods: node name -> requested period (s) of its stream.
        queue_s: seconds of each stream the reader queue holds.
        domain_id: ROS domain to join (None = $ROS_DOMAIN_ID).
        priority: SCHED_FIFO priority of the probe's threads, its DDS receive threads included
            (0 = normal), so that on busy cores the latency measured is the sensor path's,
            not this process's wait for a core; below the sensors' own priorities so the
            probe never delays them.
    """

    def __init__(self, periods: Mapping[str, float], queue_s: float = 1.0,
                 domain_id: int | None = None, priority: int = 0) -> None:
        with raised_priority(priority) as self.scheduling:
            self._create(periods, queue_s, domain_id)

    def _create(self, periods: Mapping[str, float], queue_s: float,
                domain_id: int | None) -> None:
        # lazy: keeps ROS out of this module's import
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sage_common.ros import sensor_qos

        self.records: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in STREAMS}
        self.seen: dict[str, bool] = dict.fromkeys(STREAMS, False)
        self.diags: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._recording = False
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('sensor_bench', context=self.context)
        for name, (topic, type_path) in STREAMS.items():
            module, cls = type_path.rsplit('.', 1)
            msg_type = getattr(importlib.import_module(module), cls)
            # raw: the probe needs only the stamp, and deserialising a 0.9 MB image in Python
            # would hold the GIL while an audio frame waits
            self.node.create_subscription(msg_type, topic, self._recorder(name),
                                          sensor_qos(queue_depth(periods[name], queue_s)),
                                          raw=True)
        self.node.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS, self._on_diag, 50)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _recorder(self, name: str) -> Callable[[Any], None]:
        recv, stamps = self.records[name]

        def cb(data: bytes) -> None:
            now = time.time()
            self.seen[name] = True
            if self._recording:
                stamp = cdr_header_stamp(data)
                with self._lock:
                    recv.append(now)
                    stamps.append(stamp)
        return cb

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            name = status.name.replace('sage: ', '')
            values = {kv.key: kv.value for kv in status.values}
            level = status.level
            values['_level'] = str(int.from_bytes(level, 'little')
                                   if isinstance(level, bytes) else level)
            values['_message'] = status.message
            self.diags[name] = values

    def record(self, on: bool) -> None:
        """Start (clearing what came before) or stop recording."""
        with self._lock:
            if on:
                for recv, stamps in self.records.values():
                    recv.clear()
                    stamps.clear()
            self._recording = on

    def take(self, name: str) -> tuple[list[float], list[float]]:
        with self._lock:
            recv, stamps = self.records[name]
            return list(recv), list(stamps)

    def close(self) -> None:
        # lazy: keeps ROS out of this module's import
        import rclpy
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2)


def wait_for_streams(probe: SensorProbe, timeout_s: float,
                     check: Callable[[], None] = lambda: None) -> None:
    """Block until every stream delivered once; `check` raises when a node died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(probe.seen.values()):
        check()
        time.sleep(0.1)
    missing = [n for n, seen in probe.seen.items() if not seen]
    if missing:
        raise RuntimeError(f'no messages from {", ".join(missing)} after {timeout_s} s')


def _cpu(procs: Mapping[str, psutil.Process]) -> dict[str, float | None]:
    """CPU % (of one core) of each process since the previous call; None once it is gone."""
    out: dict[str, float | None] = {}
    for name, proc in procs.items():
        try:
            out[name] = round(proc.cpu_percent(None), 1)
        except psutil.NoSuchProcess:
            out[name] = None       # respawned: the restart count says so
    return out


def measure(probe: SensorProbe, pids: Mapping[str, int], periods: Mapping[str, float],
            seconds: float, warmup_s: float = 3.0) -> dict[str, Any]:
    """Record `seconds` after `warmup_s` and report every stream (see the module doc).

    Args:
        probe: a probe whose streams are already flowing.
        pids: node name -> process id, for CPU and memory.
        periods: node name -> requested period (s).
        seconds: measurement window.
        warmup_s: settling time before the window.
    """
    time.sleep(warmup_s)
    procs = {n: psutil.Process(pid) for n, pid in pids.items()}
    _cpu(procs)
    base_drops = {n: int(probe.diags.get(n, {}).get('dropped', 0)) for n in STREAMS}
    probe.record(True)
    t0 = time.monotonic()
    time.sleep(seconds)
    probe.record(False)
    wall = time.monotonic() - t0
    cpu = _cpu(procs)
    time.sleep(1.2)        # one more diagnostics message, with the window's drops in it
    streams: dict[str, Any] = {}
    for name in STREAMS:
        recv, stamps = probe.take(name)
        stats = stream_stats(recv, stamps, periods[name], wall)
        diag = probe.diags.get(name, {})
        stats['node_dropped'] = int(diag.get('dropped', 0)) - base_drops[name]
        stats.update(lost_samples(stats['stamp_gaps'], stats['node_dropped']))
        stats['node_capture_to_publish_p95_ms'] = float(
            diag.get('capture_to_publish_p95_ms', 'nan'))
        stats['node_scheduling'] = diag.get('scheduling', '')
        stats['node_status'] = diag.get('_message', '')
        stats['cpu_percent'] = cpu.get(name)
        try:
            stats['rss_mb'] = round(procs[name].memory_info().rss / 2**20, 1)
        except (KeyError, psutil.NoSuchProcess):
            stats['rss_mb'] = None
        streams[name] = stats
    mic = streams['microphone']
    worst = max(mic['latency_ms']['p95'], mic['node_capture_to_publish_p95_ms'])
    drops = {n: s['lost'] for n, s in streams.items()}
    return {'window_s': round(wall, 3), 'probe_scheduling': probe.scheduling,
            'streams': streams,
            'cpu_percent': cpu,
            'drops': drops, 'zero_drops': not any(drops.values()),
            'audio_latency_p95_ms': mic['latency_ms']['p95'],
            'audio_latency_ok': bool(worst < AUDIO_LATENCY_LIMIT_MS)}
