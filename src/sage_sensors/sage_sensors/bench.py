"""Sensor benchmark: the three nodes as separate processes, measured from a subscriber.

`run_bench(seconds)` starts camera (synthetic, 640x480 at 30 Hz), microphone (file backend
paced in real time, 16 kHz, 512-sample frames) and IMU (synthetic, 200 Hz) with the nano
settings, subscribes to their topics and /diagnostics in this process, and reports per
stream: achieved vs requested rate, stamp jitter (|stamp interval - period|), gaps in the
stamps, drops counted by the node, capture-stamp-to-receive latency, the node's own
capture-to-publish latency, and CPU and memory of each node process (psutil).
"""
from __future__ import annotations

from collections.abc import Mapping
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np
import psutil

SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>sage_shm</transport_id>
        <type>SHM</type>
        <segment_size>33554432</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>sage_udp</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="sage_participant" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>sage_shm</transport_id>
          <transport_id>sage_udp</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""

STREAMS = {
    'camera': ('sage_sensors.camera_node', '/sage/camera/image_raw'),
    'microphone': ('sage_sensors.microphone_node', '/sage/audio/frames'),
    'imu': ('sage_sensors.imu_node', '/sage/imu/data'),
}


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
        'jitter_ms': _percentiles(np.abs(dt - period_s) * 1e3),
        'stamp_gaps': gaps,
        'non_monotonic': int(np.sum(dt <= 0)),
        'latency_ms': _percentiles((rc - st) * 1e3),
    }


def _node_args(name: str, cfg: Mapping[str, Any]) -> list[str]:
    args = [sys.executable, '-m', STREAMS[name][0], '--ros-args', '-r', f'__node:={name}']
    for key, value in cfg.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ['-p', f'{key}:={text}']
    return args


def run_bench(seconds: float = 60.0, domain_id: int | None = None,
              width: int = 640, height: int = 480, fps: float = 30.0,
              sample_rate: int = 16000, frame_samples: int = 512, imu_rate: float = 200.0,
              camera_backend: str = 'synthetic', microphone_backend: str = 'file',
              imu_backend: str = 'synthetic', audio_path: str = '',
              warmup_s: float = 3.0, startup_timeout_s: float = 30.0,
              fastdds_profile: str = '') -> dict[str, Any]:
    """Run the three sensor nodes as processes for `seconds` and measure them.

    Args:
        seconds: measurement window after warm-up.
        domain_id: ROS_DOMAIN_ID for the run (default: $ROS_DOMAIN_ID, else 42).
        width: camera width (nano: 640).
        height: camera height (nano: 480).
        fps: camera rate (nano: 30 Hz).
        sample_rate: microphone output rate (nano: 16 kHz).
        frame_samples: samples per audio frame (nano: 512).
        imu_rate: IMU rate (nano: 200 Hz).
        camera_backend: camera backend under test.
        microphone_backend: microphone backend under test (file = paced real-time file).
        imu_backend: IMU backend under test.
        audio_path: sound file for the file microphone (empty = the sample scene).
        warmup_s: seconds to let discovery and caches settle before measuring.
        startup_timeout_s: give up if a stream has not delivered by then.
        fastdds_profile: Fast DDS XML profile (default: $FASTDDS_DEFAULT_PROFILES_FILE, else
            a built-in shared-memory profile with a 32 MB segment).

    Returns:
        JSON-able dict: settings, and per stream the figures of stream_stats plus
        node_dropped, node_capture_to_publish_p95_ms, cpu_percent (of one core), rss_mb.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, Imu

    from sage_common.ros import SENSOR_QOS
    from sage_common.stamps import to_sec
    from sage_interfaces.msg import AudioFrame

    from sage_sensors.samples import ensure_samples

    if domain_id is None:
        domain_id = int(os.environ.get('ROS_DOMAIN_ID', '42'))
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1')
    if fastdds_profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = fastdds_profile
    elif not any(k in env for k in ('FASTDDS_DEFAULT_PROFILES_FILE',
                                    'FASTRTPS_DEFAULT_PROFILES_FILE')):
        # 640x480 rgb8 over best-effort UDP or the builtin 512 kB SHM segment loses most
        # frames here (measured 5-22 Hz of 30); a 32 MB SHM segment delivers all of them.
        tmp = Path(tempfile.mkdtemp(prefix='sage-bench-'))
        (tmp / 'fastdds.xml').write_text(SHM_PROFILE)
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(tmp / 'fastdds.xml')
    for key in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTDDS_DEFAULT_PROFILES_FILE',
                'FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_BUILTIN_TRANSPORTS'):
        if key in env:
            os.environ[key] = env[key]       # this process's participant must match
    data_dir = ensure_samples()
    configs = {
        'camera': {'backend': camera_backend, 'width': width, 'height': height, 'fps': fps},
        'microphone': {'backend': microphone_backend, 'sample_rate': sample_rate,
                       'frame_samples': frame_samples, 'pace': True,
                       'path': audio_path or str(Path(data_dir) / 'scene.wav')},
        'imu': {'backend': imu_backend, 'rate': imu_rate},
    }
    periods = {'camera': 1.0 / fps, 'microphone': frame_samples / sample_rate,
               'imu': 1.0 / imu_rate}
    procs = {name: subprocess.Popen(_node_args(name, cfg), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
             for name, cfg in configs.items()}
    records: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in STREAMS}
    diags: dict[str, dict[str, str]] = {}
    lock = threading.Lock()
    recording = threading.Event()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node('sensor_bench', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def recorder(name: str):
        first = records[name]

        def cb(msg) -> None:
            now = time.time()
            if not first[0] and not recording.is_set():
                first[0].append(now)          # marks "stream alive" during start-up
                first[1].append(to_sec(msg.header.stamp))
                return
            if recording.is_set():
                with lock:
                    first[0].append(now)
                    first[1].append(to_sec(msg.header.stamp))
        return cb

    def on_diag(msg) -> None:
        for status in msg.status:
            name = status.name.replace('sage: ', '')
            diags[name] = {kv.key: kv.value for kv in status.values}
            diags[name]['_level'] = str(int.from_bytes(status.level, 'little')
                                        if isinstance(status.level, bytes) else status.level)
            diags[name]['_message'] = status.message

    for name, msg_type in (('camera', Image), ('microphone', AudioFrame), ('imu', Imu)):
        node.create_subscription(msg_type, STREAMS[name][1], recorder(name), SENSOR_QOS)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    result: dict[str, Any] = {'seconds': seconds, 'domain_id': domain_id,
                              'fastdds_profile': env.get('FASTDDS_DEFAULT_PROFILES_FILE', ''),
                              'settings': configs, 'streams': {}}
    try:
        deadline = time.monotonic() + startup_timeout_s
        while time.monotonic() < deadline and not all(records[n][0] for n in STREAMS):
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f'{name} node exited with {proc.returncode}: '
                                       f'{proc.stderr.read() if proc.stderr else ""}')
            time.sleep(0.1)
        missing = [n for n in STREAMS if not records[n][0]]
        if missing:
            raise RuntimeError(f'no messages from {", ".join(missing)} '
                               f'after {startup_timeout_s} s')
        time.sleep(warmup_s)
        ps = {n: psutil.Process(p.pid) for n, p in procs.items()}
        for p in ps.values():
            p.cpu_percent(None)
        base_drops = {n: int(diags.get(n, {}).get('dropped', 0)) for n in STREAMS}
        with lock:
            for rec in records.values():
                rec[0].clear()
                rec[1].clear()
        recording.set()
        t0 = time.monotonic()
        time.sleep(seconds)
        recording.clear()
        wall = time.monotonic() - t0
        time.sleep(1.2)       # one more diagnostics message
        for name in STREAMS:
            with lock:
                recv, stamps = list(records[name][0]), list(records[name][1])
            stats = stream_stats(recv, stamps, periods[name], wall)
            d = diags.get(name, {})
            stats['node_dropped'] = int(d.get('dropped', 0)) - base_drops[name]
            stats['node_capture_to_publish_p95_ms'] = float(
                d.get('capture_to_publish_p95_ms', 'nan'))
            stats['node_status'] = d.get('_message', '')
            stats['cpu_percent'] = round(ps[name].cpu_percent(None), 1)
            stats['rss_mb'] = round(ps[name].memory_info().rss / 2**20, 1)
            result['streams'][name] = stats
        mic = result['streams']['microphone']
        result['audio_latency_p95_ms'] = mic['latency_ms']['p95']
        result['audio_latency_ok'] = bool(mic['latency_ms']['p95'] < 40.0)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spin.join(timeout=2)
    return result


if __name__ == '__main__':
    import json
    print(json.dumps(run_bench(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0), indent=1))
