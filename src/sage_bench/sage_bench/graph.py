"""`sage bench graph`: run a profile's whole graph and measure every stage.

Per topic: rate, and latency from the sensor's capture stamp to arrival here (so the latent
topic measures capture -> encoded, salience capture -> scored, ...), p50/p95/p99; sequence
gaps (drops) on topics that carry input_seq; CPU and RSS per node process (psutil).
Per modality (sage_bench.salience_timing): time to first salience from the graph's start, and
capture -> salience latency, audio from its window's last sample; the encoders' own encode
time (Latent.encode_ms), the part of that latency the encoder spends computing. With swap, a
new model version of each encoder is made live halfway (sage_bench.swap_window: what the hot swap
cost, against as long a window before it). With foxglove, after the window: the graph's CPU
with the Foxglove live view off against on with one client connected (sage_bench.foxglove_cost).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
import importlib
from pathlib import Path
import shutil
import tempfile
import threading
import time
from typing import Any

import psutil

from sage_bringup.launch_cmd import graph_supervisor
from sage_bringup.environment import resolve_domain
from sage_bringup.profile import load_profile
from sage_bench import foxglove_cost
from sage_bench.salience_timing import (first_salience_input, first_salience_s, first_salience_seq,
                                        last_sample_offsets, latency_by_refinement, percentiles,
                                        SalienceArrival, salience_latency_ms)
from sage_common.vocabulary import Topic, absolute
from sage_encoders.model_files import PACKAGED_DIR
from sage_encoders.model_versions import ModelVersions, PACKAGED
from sage_eval.attend_agreement import sequence_gaps
from sage_bench.swap_window import Arrival, swap_report

ENCODERS = {'vision': 'vision_encoder', 'audio': 'audio_encoder'}
LATENT_TOPICS = {Topic.VISION_LATENT: 'vision', Topic.AUDIO_LATENT: 'audio'}
INITIAL_TOPICS = frozenset(Topic.latent_initial(m) for m in ENCODERS)

STAGES = {
    Topic.CAMERA_IMAGE: ('sensor_msgs.msg', 'Image', True),
    Topic.AUDIO_FRAMES: ('sage_interfaces.msg', 'AudioFrame', True),
    Topic.IMU: ('sensor_msgs.msg', 'Imu', True),
    Topic.VISION_LATENT: ('sage_interfaces.msg', 'Latent', False),
    Topic.AUDIO_LATENT: ('sage_interfaces.msg', 'Latent', False),
    # the encoders' latents before refinement (irp.publish_initial): what SNARC scores, so
    # capture -> here vs capture -> salience splits the salience path at the encoder
    Topic.latent_initial('vision'): ('sage_interfaces.msg', 'Latent', False),
    Topic.latent_initial('audio'): ('sage_interfaces.msg', 'Latent', False),
    Topic.SALIENCE: ('sage_interfaces.msg', 'Salience', False),
    Topic.MEMORY_STORED: ('sage_interfaces.msg', 'Experience', False),
}


class _Probe:
    """Subscribes to every stage topic in its own rclpy context and records arrivals."""

    def __init__(self) -> None:
        # lazy: keeps ROS out of this module's import
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
        # for a hot swap: camera frames and latents as (arrival, stamp, input_seq), and the
        # model version each encoder reports on /diagnostics, with when it first did
        self.camera: list[Arrival] = []
        self.latents: dict[str, list[Arrival]] = defaultdict(list)
        self.model_versions: dict[tuple[str, str], float] = {}
        self.swap_ms: dict[str, float] = {}  # per encoder node: its last model load, ms
        # refinement steps of each latent, by (modality, stamp to 0.1 ms)
        self.iterations: dict[tuple[str, float], int] = {}
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
        # lazy: keeps ROS out of this module's import
        from diagnostic_msgs.msg import DiagnosticArray
        self.node.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS, self._on_diagnostics,
                                      RELIABLE_QOS)
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
            if topic == Topic.CAMERA_IMAGE:
                self.camera.append((now, stamp, 0))
            elif topic in LATENT_TOPICS:
                self.latents[LATENT_TOPICS[topic]].append((now, stamp, int(msg.input_seq)))
                self.iterations[(msg.modality, round(stamp, 4))] = int(msg.iterations)
            if topic in INITIAL_TOPICS:
                # encode_ms up to the hand-over before refinement: the encoder's part of the
                # salience path
                self.encode_ms[f'{msg.modality}_initial'].append(float(msg.encode_ms))
            elif hasattr(msg, 'encode_ms') and hasattr(msg, 'modality'):
                self.encode_ms[msg.modality].append(float(msg.encode_ms))
            if topic == Topic.SALIENCE:
                arrival = SalienceArrival(msg.modality, now, stamp, int(msg.input_seq))
                self.salience_all.append(arrival)
                self.salience.append(arrival)

    def _on_diagnostics(self, msg: Any) -> None:
        now = time.time()
        for status in msg.status:
            node = status.name.split(': ')[-1]
            if node not in ENCODERS.values():
                continue
            for kv in status.values:
                if kv.key == 'model_version':
                    with self.lock:
                        self.model_versions.setdefault((node, kv.value), now)
                elif kv.key == 'model_swap_ms' and kv.value:
                    with self.lock:
                        self.swap_ms[node] = float(kv.value)

    def close(self) -> None:
        # lazy: keeps ROS out of this module's import
        import rclpy
        self.executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=self.context)


def run_bench(seconds: float = 30.0, profile: str = 'nano', warmup_s: float = 8.0,
              overrides: tuple[str, ...] = (), domain_id: int | None = None,
              compose: bool | None = None, swap: bool = False,
              foxglove: bool = False,
              progress: Callable[[float, float | None], None] | None = None
              ) -> dict[str, Any]:
    """Run the graph for warmup_s + seconds and report the measured window.

    domain_id: ROS_DOMAIN_ID of the benchmark's graph (None: the project's one rule,
    sage_bringup.environment.resolve_domain: $ROS_DOMAIN_ID, else the profile's launch.domain_id),
    so
    two benches on one host are kept apart the same way two graphs are.
    compose: run launch.compose_groups one process each (None: the profile's launch.compose).
    swap: halfway through the window, make a new version of the vision and audio models live
    (a copy of the packaged ones, in a memory folder of the run's own: the user's models are
    not touched) and report what the encoders' hot swap cost (sage_bench.swap_window).
    foxglove: after the window, alternate the live view off and on with one client and report
    the graph's CPU in each (sage_bench.foxglove_cost; the server on a free port of its own).
    progress: called with (seconds run, warmup_s + seconds) as the window runs (a progress bar;
    the --foxglove phases after it are not counted).
    """
    report = progress or (lambda done, total: None)
    run_dir = Path(tempfile.mkdtemp(prefix='sage-bench-graph-'))
    if swap:
        overrides = (*overrides, f'memory.data_dir={run_dir / "memory"}')
    port = foxglove_cost.free_port() if foxglove else 0
    if foxglove:
        overrides = (*overrides, f'foxglove.port={port}')
    prof = load_profile(profile, list(overrides))
    domain = int(resolve_domain(prof, domain_id).value)
    compose = prof.composed(compose)  # reported as run
    sup = graph_supervisor(prof, run_dir, domain, compose=compose)
    # subscribed before the graph starts, so the first salience of each modality is seen
    probe = _Probe()
    started = time.time()
    sup.start()
    try:
        report(0.0, warmup_s + seconds)
        time.sleep(warmup_s)
        report(warmup_s, warmup_s + seconds)
        with probe.lock:
            for store in (probe.arrivals, probe.latency_ms, probe.seqs, probe.salience,
                          probe.encode_ms, probe.camera, probe.latents, probe.iterations):
                store.clear()
        procs = {name: psutil.Process(pid) for name, pid in sup.pids().items()}
        for p in procs.values():
            p.cpu_percent(None)
        t0 = time.time()
        rss: dict[str, list[float]] = defaultdict(list)
        promoted, version = 0.0, ''
        while time.time() - t0 < seconds:
            time.sleep(1.0)
            report(warmup_s + min(time.time() - t0, seconds), warmup_s + seconds)
            if swap and not promoted and time.time() - t0 >= seconds / 2:
                version = promote_copies(run_dir / 'memory' / 'models', tuple(ENCODERS))
                promoted = time.time()
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
            # Topics named as a user sees them on the graph (the probe runs at the root).
            stages = {absolute(topic): {'rate_hz': len(probe.arrivals[topic]) / elapsed,
                              'latency_from_capture_ms': percentiles(probe.latency_ms[topic])}
                      for topic in STAGES}
            drops = {f'{absolute(t)}[{m}]': sequence_gaps(s) for (t, m), s in probe.seqs.items()}
            first = first_salience_s(probe.salience_all, started)
            first_seq = first_salience_seq(probe.salience_all)
            first_topic = {absolute(t): probe.first[t] - started for t in STAGES
                           if t in probe.first}
            offsets = last_sample_offsets({n.name: n.parameters for n in prof.nodes})
            first_input = first_salience_input(probe.salience_all, started, offsets)
            latency = salience_latency_ms(probe.salience, offsets)
            by_refinement = latency_by_refinement(probe.salience, probe.iterations, offsets)
            encode = {m: percentiles(v) for m, v in sorted(probe.encode_ms.items())}
            swapped = None
            if promoted:
                swapped = swap_report(
                    promoted, {m: probe.model_versions.get((node, version))
                               for m, node in ENCODERS.items()},
                    list(probe.camera), {m: list(probe.latents[m]) for m in ENCODERS},
                    version, {m: probe.swap_ms[node] for m, node in ENCODERS.items()
                              if node in probe.swap_ms})
        live_view = None
        if foxglove:
            live_view = foxglove_cost.measure(probe.node, procs, _host_of(sup, 'foxglove'), port)
    finally:
        probe.close()
        sup.stop()
    return {'profile': profile, 'domain_id': domain, 'compose': compose, 'seconds': elapsed,
            'stages': stages,
            'seq_gaps': drops,
            'first_salience_s': first,
            'first_salience_input_seq': first_seq,
            'first_salience_input': first_input,
            'first_arrival_s': first_topic,
            'salience_latency_ms': {'from': 'capture stamp of the newest sample of the input',
                                    'last_sample_offset_s': offsets, 'modalities': latency,
                                    'by_refinement': by_refinement},
            'encode_ms': encode,
            'nodes': {name: {'cpu_percent': cpu.get(name),
                             'rss_mb_max': max(rss[name]) if rss[name] else None}
                      for name in procs},
            'restarts': {c.spec.name: c.restarts for c in sup.children},
            'swap': swapped,
            'foxglove': live_view}


def _host_of(sup: Any, node: str) -> str:
    """The name of the supervised process that runs a node (its compose group, or itself)."""
    for child in sup.children:
        if child.spec.name == node or node in {m.name for m in getattr(child.spec, 'members', ())}:
            return str(child.spec.name)
    raise KeyError(f'no process runs {node}')


def promote_copies(root: Path, modalities: tuple[str, ...]) -> str:
    """Make a copy of each packaged model the live version under root (a memory node's
    models folder); returns the version's name (the same for each in a fresh folder)."""
    names = set()
    for m in modalities:
        versions = ModelVersions(root, m)
        with versions.build() as b:
            for f in PACKAGED_DIR.glob(f'{m}_*'):
                shutil.copy2(f, b.path / f.name)
            b.info = {'base': PACKAGED, 'decision': 'promoted',
                      'reason': 'sage bench graph --swap: a copy of the packaged model'}
        versions.promote(b.name, reason='bench swap')
        names.add(b.name)
    if len(names) != 1:
        raise RuntimeError(f'versions of one swap differ: {sorted(names)}')
    return names.pop()


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per modality: first salience (s from start), when its input's newest sample was
    captured (s from start), capture -> salience n, p50, p95 (ms)."""
    latency = results['salience_latency_ms']['modalities']
    inputs = results.get('first_salience_input') or {}
    rows = []
    for m in sorted(set(results['first_salience_s']) | set(latency)):
        first = results['first_salience_s'].get(m)
        captured = inputs.get(m, {}).get('newest_sample_s')
        lat = latency.get(m, {'n': 0})
        rows.append([m, '-' if first is None else f'{first:.2f}',
                     '-' if captured is None else f'{captured:.2f}', str(lat['n']),
                     *(f'{lat[k]:.1f}' if k in lat else '-' for k in ('p50', 'p95'))])
    return rows


def print_table(results: dict[str, Any], echo=print) -> None:
    header = ['modality', 'first salience s', 'its input captured s', 'n',
              'capture->salience p50 ms', 'p95 ms']
    rows = [header, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        echo('  '.join(c.ljust(w) for c, w in zip(r, widths)))
    fox = results.get('foxglove')
    if fox:
        cpu = fox['graph_cpu_percent']
        echo(f"Foxglove live view: graph CPU {cpu['off']:.1f} % off, {cpu['client']:.1f} % with "
             f"one client (+{fox['cost_cpu_percent']:.1f} % of a core); the client got "
             f"{fox['client_messages_per_s']:.0f} messages/s, {fox['client_kbytes_per_s']:.0f} "
             f"kB/s, camera {fox['camera_hz']:.1f} Hz")
    split = results['salience_latency_ms'].get('by_refinement') or {}
    for m, kinds in sorted(split.items()):
        parts = [f"{k} n={v['n']} p50 {v['p50']:.1f} p95 {v['p95']:.1f} ms"
                 for k, v in sorted(kinds.items()) if v.get('n')]
        if parts:
            echo(f"{m} capture->salience by refinement: {'; '.join(parts)}")
    for m, r in sorted(((results.get('swap') or {}).get('modalities') or {}).items()):
        if not r.get('swapped'):
            echo(f'swap {m}: the encoder never reported the new version')
            continue
        load = '' if r.get('load_ms') is None else f", loaded in {r['load_ms']:.0f} ms"
        echo(f"swap {m}: reported {r['reported_after_s']:.2f} s after the promotion{load}; "
             f"{r['swap']['latents']} latents in {r['swap']['seconds']:.2f} s against "
             f"{r['baseline']['latents']} before (lost {r['latents_lost']}); longest wait "
             f"{r['swap']['max_wait_ms']} ms against {r['baseline']['max_wait_ms']} ms")
        if m != 'vision':
            continue
        sw, base = r['swap'], r['baseline']
        frames = (f"{sw['not_encoded']} of {sw['camera_frames']} frames not encoded against "
                  f"{base['not_encoded']} of {base['camera_frames']} before")
        if r['comparable']:
            echo(f"swap vision: {frames}: {r['frames_lost']} lost to the swap")
        else:
            echo(f"swap vision: {frames}; not comparable: the camera ran at "
                 f"{base['camera_hz']} Hz before and {sw['camera_hz']} Hz during (the "
                 'orchestrator changed state)')
