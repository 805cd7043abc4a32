"""Benchmarks: frame handoff between two processes (mailbox vs DDS) and PBM record rates.

``run_bench(seconds, **kw) -> dict`` (JSON-able); the lead wires it to ``sage bench mailbox``.

Handoff: a writer process hands 30 Hz rgb8 frames to a reader process; latency runs from just
before the writer starts the handoff (copy into shared memory + descriptor; or building the
Image with ``msg.data = frame.tobytes()`` + publish) to the reader holding a numpy view of the
frame. Transports: ``mailbox`` (FTM frame + PBM descriptor), ``dds_shm`` (rclpy, Fast DDS with
a shared-memory profile in both processes), ``dds_default`` (Fast DDS defaults). DDS uses
sensor_msgs/Image, reliable, keep-last depth 1, localhost-only discovery.

Why a profile and not ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``: with
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (required on shared machines) rmw_fastrtps sets the
transports itself and LARGE_DATA has no effect (measured: same latency as the defaults), while
without it LARGE_DATA sends discovery multicast on every interface. The SHM-only XML profile
below is honoured under LOCALHOST and sends nothing on the network.
"""
from __future__ import annotations

import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from sage_cuda_mailbox import _mailbox

TRANSPORTS = ('mailbox', 'dds_shm', 'dds_default')
DEFAULT_SIZES = ('640x480', '1280x720')
# Environment variables that would change the DDS transport under test.
_DDS_OVERRIDES = ('FASTDDS_BUILTIN_TRANSPORTS', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                  'FASTDDS_DEFAULT_PROFILES_FILE', 'RMW_FASTRTPS_USE_QOS_FROM_XML')


def parse_size(size: str) -> tuple[int, int]:
    """'640x480' -> (640, 480).

    Raises:
        ValueError: not WIDTHxHEIGHT with positive integers.
    """
    try:
        w, h = (int(x) for x in size.lower().split('x'))
    except ValueError as err:
        raise ValueError(f"size must look like '640x480', got '{size}'") from err
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got '{size}'")
    return w, h


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max of `values` (empty -> NaN-free zeros with n=0)."""
    if not values:
        return {'n': 0, 'p50_ms': 0.0, 'p95_ms': 0.0, 'p99_ms': 0.0, 'mean_ms': 0.0,
                'max_ms': 0.0}
    a = np.asarray(values, dtype=np.float64)
    return {'n': int(a.size), 'p50_ms': float(np.percentile(a, 50)),
            'p95_ms': float(np.percentile(a, 95)), 'p99_ms': float(np.percentile(a, 99)),
            'mean_ms': float(a.mean()), 'max_ms': float(a.max())}


class _Child:
    """A benchmark child process speaking JSON lines on stdout."""

    def __init__(self, role: str, args: dict[str, Any], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'sage_cuda_mailbox._bench_child', role, json.dumps(args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)

    def line(self, timeout: float) -> dict[str, Any]:
        """Next JSON line (skips non-JSON output).

        Raises:
            RuntimeError: the child ended or timed out.
        """
        if self.proc.stdout is None:
            raise RuntimeError('benchmark child has no stdout')
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError('benchmark child timed out')
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            text = self.proc.stdout.readline()
            if not text:
                err = self.proc.stderr.read() if self.proc.stderr else ''
                raise RuntimeError(f'benchmark child ended: {err.strip()[-500:]}')
            text = text.strip()
            if text.startswith('{'):
                return json.loads(text)

    def say(self, text: str = 'go') -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write(text + '\n')
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass

    def close(self) -> None:
        self.say('bye')
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Fast DDS profile of the dds_shm runs: shared memory only (32 MB segment, messages up to
# 4 MB so a 720p frame is not fragmented); discovery also runs over shared memory.
SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>sage_shm</transport_id>
        <type>SHM</type>
        <segment_size>33554432</segment_size>
        <maxMessageSize>4194304</maxMessageSize>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="sage_shm_only" is_default_profile="true">
      <rtps>
        <useBuiltinTransports>false</useBuiltinTransports>
        <userTransports>
          <transport_id>sage_shm</transport_id>
        </userTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def _env(transport: str, domain_id: int, shm_profile: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in _DDS_OVERRIDES:
        env.pop(key, None)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if transport == 'dds_shm':
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = shm_profile
    return env


def handoff(transport: str, width: int, height: int, seconds: float, rate_hz: float,
            domain_id: int, tag: str, shm_profile: str = '') -> dict[str, Any]:
    """Measure one transport at one frame size between two fresh processes.

    Raises:
        RuntimeError: a child process failed or timed out.
    """
    args = {'width': width, 'height': height, 'seconds': seconds, 'rate_hz': rate_hz,
            'segment': f'sage_bench_{os.getpid()}_{tag}',
            'topic': f'/sage_bench_{os.getpid()}/{tag}'}
    env = _env(transport, domain_id, shm_profile)
    budget = seconds + 60.0
    if transport == 'mailbox':
        writer = _Child('mailbox_writer', args, env)
        reader = None
        try:
            writer.line(30.0)
            reader = _Child('mailbox_reader', args, env)
            reader.line(30.0)
            writer.say('go')
            w_res = writer.line(budget)
            r_res = reader.line(budget)
        finally:
            if reader is not None:
                reader.close()
            writer.close()
    else:
        reader = _Child('dds_subscriber', args, env)
        writer = None
        try:
            reader.line(30.0)
            writer = _Child('dds_publisher', args, env)
            writer.line(30.0)
            w_res = writer.line(budget)
            r_res = reader.line(budget)
        finally:
            if writer is not None:
                writer.close()
            reader.close()
    frames = max(1, int(w_res['frames']))
    result = percentiles(r_res['latencies_ms'])
    wall = max(1e-9, float(w_res['wall_s']))
    result.update({
        'frames_sent': int(w_res['frames']),
        'frames_received': len(r_res['latencies_ms']),
        'stale': int(r_res.get('stale', 0)),
        'writer_cpu_ms_per_frame': 1000.0 * float(w_res['cpu_s']) / frames,
        'reader_cpu_ms_per_frame': 1000.0 * float(r_res['cpu_s']) / frames,
        'cpu_percent_of_one_core': 100.0 * (float(w_res['cpu_s']) + float(r_res['cpu_s'])) / wall,
    })
    return result


def _guarded(transport: str, width: int, height: int, seconds: float, rate_hz: float,
             domain_id: int, profile: str) -> dict[str, Any]:
    """handoff(), reporting a failed transport as {'error': ...} instead of raising."""
    try:
        return handoff(transport, width, height, seconds, rate_hz, domain_id,
                       f'{transport}_{width}x{height}', profile)
    except (RuntimeError, OSError, KeyError, ValueError) as err:
        return {'error': str(err)}


def pbm_rates(records: int, record_size: int = 32) -> dict[str, Any]:
    """PBM push/pop rates: native loops (C++) and per-call Python rates."""
    name = f'sage_bench_pbm_{os.getpid()}'
    out: dict[str, Any] = {'native': _mailbox.testing.native_rates(name, record_size, records)}
    n = max(1000, min(records, 300_000))
    _mailbox.unlink(name)
    pbm = _mailbox.Pbm.create(name, record_size, 4096, 'overwrite', 'replace')
    try:
        producer = pbm.producer()
        record = bytes(record_size)
        push = producer.push
        t0 = time.perf_counter()
        for _ in range(n):
            push(record)
        push_s = time.perf_counter() - t0
        consumer = pbm.consumer()
        pop = consumer.pop
        popped = 0
        pop_s = 0.0
        while popped < n:
            for _ in range(4096):
                push(record)
            t0 = time.perf_counter()
            while pop() is not None:
                popped += 1
            pop_s += time.perf_counter() - t0
        batch = np.zeros((4096, record_size), np.uint8)
        t0 = time.perf_counter()
        batches = max(1, n // 4096)
        for _ in range(batches):
            producer.push_many(batch)
        batch_s = time.perf_counter() - t0
        out['python'] = {'records': n, 'push_per_s': n / push_s, 'pop_per_s': popped / pop_s,
                         'push_many_per_s': batches * 4096 / batch_s}
        consumer.close()
        producer.close()
    finally:
        _mailbox.unlink(name)
    return out


def run_bench(seconds: float = 3.0, *, sizes: Sequence[str] = DEFAULT_SIZES,
              transports: Sequence[str] = TRANSPORTS, rate_hz: float = 30.0,
              pbm_records: int = 1_000_000, domain_id: int | None = None,
              dds_shm_profile: str | None = None) -> dict[str, Any]:
    """Run the mailbox benchmarks and return JSON-able results.

    Args:
        seconds: measured duration of each handoff run (after a warm-up).
        sizes: frame sizes, 'WIDTHxHEIGHT' (rgb8).
        transports: any of 'mailbox', 'dds_shm', 'dds_default'.
        rate_hz: frame rate of the handoff runs.
        pbm_records: records of the PBM rate runs (0 skips them).
        domain_id: ROS_DOMAIN_ID of the DDS runs (default: $ROS_DOMAIN_ID or 0).
        dds_shm_profile: Fast DDS XML profile of the dds_shm runs (default: SHM_PROFILE).

    Returns:
        {'config', 'handoff': {size: {transport: stats}}, 'speedup', 'pbm', 'checks'}; a
        transport that fails is reported as {'error': message}.

    Raises:
        ValueError: unknown transport or bad size.
    """
    for t in transports:
        if t not in TRANSPORTS:
            raise ValueError(f"unknown transport '{t}' (one of: {', '.join(TRANSPORTS)})")
    parsed = [(s, *parse_size(s)) for s in sizes]
    if domain_id is None:
        domain_id = int(os.environ.get('ROS_DOMAIN_ID', '0'))
    results: dict[str, Any] = {
        'config': {'seconds': seconds, 'rate_hz': rate_hz, 'sizes': list(sizes),
                   'transports': list(transports), 'domain_id': domain_id,
                   'machine': platform.machine(), 'cpus': os.cpu_count(),
                   'python': platform.python_version(),
                   'cuda_available': _mailbox.cuda_available(),
                   'dds_shm_profile': dds_shm_profile or 'built-in SHM-only profile'},
        'handoff': {}, 'speedup': {}, 'checks': {}}
    with tempfile.TemporaryDirectory(prefix='sage_bench_') as tmp:
        profile = dds_shm_profile
        if profile is None:
            profile = os.path.join(tmp, 'fastdds_shm.xml')
            with open(profile, 'w', encoding='utf-8') as f:
                f.write(SHM_PROFILE)
        for label, w, h in parsed:
            results['handoff'][label] = {
                t: _guarded(t, w, h, seconds, rate_hz, domain_id, profile) for t in transports}
    for label, _, _ in parsed:
        per = results['handoff'][label]
        mb = per.get('mailbox', {})
        speed: dict[str, float] = {}
        for t in ('dds_shm', 'dds_default'):
            other = per.get(t, {})
            if mb.get('p50_ms') and other.get('p50_ms'):
                speed[f'p50_vs_{t}'] = other['p50_ms'] / mb['p50_ms']
        results['speedup'][label] = speed
        if 'p50_vs_dds_shm' in speed:
            results['checks'][f'mailbox_8x_faster_than_dds_shm_{label}'] = (
                speed['p50_vs_dds_shm'] >= 8.0)
    if pbm_records > 0:
        results['pbm'] = pbm_rates(pbm_records)
        native = results['pbm']['native']
        results['checks']['pbm_push_over_1M_per_s'] = native['push_per_s'] > 1e6
        results['checks']['pbm_pop_over_1M_per_s'] = native['pop_per_s'] > 1e6
        results['checks']['pbm_python_push_over_1M_per_s'] = (
            results['pbm']['python']['push_per_s'] > 1e6)
    return results


def main() -> int:
    """Print run_bench() as JSON (``python -m sage_cuda_mailbox.bench [seconds]``)."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    print(json.dumps(run_bench(seconds), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
