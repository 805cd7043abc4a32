"""`sage bench graph`: run a profile's whole graph and measure every stage.

Per topic: rate, and latency from the sensor's capture stamp to arrival here (so the latent
topic measures capture -> encoded, salience capture -> scored, ...), p50/p95/p99; sequence
gaps (drops) on topics that carry input_seq; CPU and RSS per node process (psutil).
Per modality (sage.salience_timing): time to first salience from the graph's start, and
capture -> salience latency, audio from its window's last sample; the encoders' own encode
time (Latent.encode_ms), the part of that latency the encoder spends computing.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
import tempfile
import threading
import time
from typing import Any

import psutil

from sage.launch_cmd import graph_supervisor
from sage.environment import resolve_domain
from sage.profile import load_profile
from sage.salience_timing import (first_salience_s, first_salience_seq, last_sample_offsets,
                                  percentiles, SalienceArrival, salience_latency_ms)
from sage_common.vocabulary import Topic
from sage_eval.attend_agreement import sequence_gaps

STAGES = {
    Topic.CAMERA_IMAGE: ('sensor_msgs.msg', 'Image', True),
    Topic.AUDIO_FRAMES: ('sage_interfaces.msg', 'AudioFrame', True),
    Topic.IMU: ('sensor_msgs.msg', 'Imu', True),
    Topic.VISION_LATENT: ('sage_interfaces.msg', 'Latent', False),
    Topic.AUDIO_LATENT: ('sage_interfaces.msg', 'Latent', False),
    Topic.SALIENCE: ('sage_interfaces.msg', 'Salience', False),
    Topic.MEMORY_STORED: ('sage_interfaces.msg', 'Experience', False),
}


class _Probe:
    """Subscribes to every stage topic in its own rclpy context and records arrivals."""

    def __init__(self) -> None:
        import importlib

        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from sage_common.ros import RELIABLE_QOS, sensor_qos
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
        # every Salience since the probe started (first arrivals) / in the measured window
        self.salience_all: list[SalienceArrival] = []
        self.salience: list[SalienceArrival] = []
        self.first: dict[str, float] = {}  # first arrival per topic: where start-up time goes
        self.encode_ms: dict[str, list[float]] = defaultdict(list)  # Latent.encode_ms
        self.lock = threading.Lock()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('sage_bench_probe', context=self.context)
        for topic, (module, name, sensor) in STAGES.items():
            msg_type = getattr(importlib.import_module(module), name)
            self.node.create_subscription(msg_type, topic,
                                          lambda m, t=topic: self._on(t, m),
                                          # a second of a 200 Hz stream: a stall of
                                          # this process is not a drop of the graph's
                                          sensor_qos(200) if sensor else RELIABLE_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on(self, topic: str, msg: Any) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self.lock:
            self.arrivals[topic].append(now)
            self.first.setdefault(topic, now)
            self.latency_ms[topic].append((now - stamp) * 1e3)
            if hasattr(msg, 'input_seq') and hasattr(msg, 'modality'):
                self.seqs[(topic, msg.modality)].append(int(msg.input_seq))
            if hasattr(msg, 'encode_ms') and hasattr(msg, 'modality'):
                self.encode_ms[msg.modality].append(float(msg.encode_ms))
            if topic == Topic.SALIENCE:
                arrival = SalienceArrival(msg.modality, now, stamp, int(msg.input_seq))
                self.salience_all.append(arrival)
                self.salience.append(arrival)

    def close(self) -> None:
        import rclpy
        self.executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=self.context)


def run_bench(seconds: float = 30.0, profile: str = 'nano', warmup_s: float = 8.0,
              overrides: tuple[str, ...] = (), domain_id: int | None = None,
              compose: bool | None = None) -> dict[str, Any]:
    """Run the graph for warmup_s + seconds and report the measured window.

    domain_id: ROS_DOMAIN_ID of the benchmark's graph (None: the project's one rule,
    sage.environment.resolve_domain: $ROS_DOMAIN_ID, else the profile's launch.domain_id), so
    two benches on one host are kept apart the same way two graphs are.
    compose: run launch.compose_groups one process each (None: the profile's launch.compose).
    """
    prof = load_profile(profile, list(overrides))
    run_dir = Path(tempfile.mkdtemp(prefix='sage-bench-graph-'))
    domain = int(resolve_domain(prof, domain_id).value)
    sup = graph_supervisor(prof, run_dir, domain, compose=compose)
    # subscribed before the graph starts, so the first salience of each modality is seen
    probe = _Probe()
    started = time.time()
    sup.start()
    try:
        time.sleep(warmup_s)
        with probe.lock:
            for store in (probe.arrivals, probe.latency_ms, probe.seqs, probe.salience,
                          probe.encode_ms):
                store.clear()
        procs = {name: psutil.Process(pid) for name, pid in sup.pids().items()}
        for p in procs.values():
            p.cpu_percent(None)
        t0 = time.time()
        rss: dict[str, list[float]] = defaultdict(list)
        while time.time() - t0 < seconds:
            time.sleep(1.0)
            sup.poll()
            for name, p in procs.items():
                try:
                    rss[name].append(p.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    pass
        cpu = {}
        for name, p in procs.items():
            try:
                cpu[name] = p.cpu_percent(None)
            except psutil.NoSuchProcess:
                cpu[name] = None
        elapsed = time.time() - t0
        with probe.lock:
            stages = {topic: {'rate_hz': len(probe.arrivals[topic]) / elapsed,
                              'latency_from_capture_ms': percentiles(probe.latency_ms[topic])}
                      for topic in STAGES}
            drops = {f'{t}[{m}]': sequence_gaps(s) for (t, m), s in probe.seqs.items()}
            first = first_salience_s(probe.salience_all, started)
            first_seq = first_salience_seq(probe.salience_all)
            first_topic = {t: probe.first[t] - started for t in STAGES if t in probe.first}
            offsets = last_sample_offsets({n.name: n.parameters for n in prof.nodes})
            latency = salience_latency_ms(probe.salience, offsets)
            encode = {m: percentiles(v) for m, v in sorted(probe.encode_ms.items())}
    finally:
        probe.close()
        sup.stop()
    return {'profile': profile, 'domain_id': domain, 'compose': compose, 'seconds': elapsed,
            'stages': stages,
            'seq_gaps': drops,
            'first_salience_s': first,
            'first_salience_input_seq': first_seq,
            'first_arrival_s': first_topic,
            'salience_latency_ms': {'from': 'capture stamp of the newest sample of the input',
                                    'last_sample_offset_s': offsets, 'modalities': latency},
            'encode_ms': encode,
            'nodes': {name: {'cpu_percent': cpu.get(name),
                             'rss_mb_max': max(rss[name]) if rss[name] else None}
                      for name in procs},
            'restarts': {c.spec.name: c.restarts for c in sup.children}}


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per modality: first salience (s from start), capture -> salience n, p50, p95 (ms)."""
    latency = results['salience_latency_ms']['modalities']
    rows = []
    for m in sorted(set(results['first_salience_s']) | set(latency)):
        first = results['first_salience_s'].get(m)
        lat = latency.get(m, {'n': 0})
        rows.append([m, '-' if first is None else f'{first:.2f}', str(lat['n']),
                     *(f'{lat[k]:.1f}' if k in lat else '-' for k in ('p50', 'p95'))])
    return rows


def print_table(results: dict[str, Any], echo=print) -> None:
    header = ['modality', 'first salience s', 'n', 'capture->salience p50 ms', 'p95 ms']
    rows = [header, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        echo('  '.join(c.ljust(w) for c, w in zip(r, widths)))
