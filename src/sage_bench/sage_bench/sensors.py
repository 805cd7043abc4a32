"""`sage bench sensors`: the three sensor nodes at the nano rates, alone or under the graph.

The nodes run exactly as `sage launch` runs them (same Supervisor, profile, parameter files,
Fast DDS profile and environment), with the profile's own settings (capture thread
scheduling included) and the benchmark's rates on top: camera synthetic 640x480 at 30 Hz,
microphone from the sample scene's WAV file paced in real time (16 kHz, 512-sample frames),
IMU synthetic at 200 Hz. With `with_graph` the rest of the profile (encoders, SNARC,
orchestrator, memory, viz) runs on the same cores and the orchestrator's per-state camera
rates are pinned to the benchmark rate, so the load is the real one and the requested rate
stays fixed. The measuring side is sage_bench.sensor_probe.
"""
from __future__ import annotations

import os
from pathlib import Path
import tempfile
from typing import Any

from sage_bench.sensor_probe import measure, SensorProbe, STREAMS, wait_for_streams
from sage_bringup.launch_cmd import graph_supervisor
from sage_bringup.profile import Profile, load_profile
from sage_orchestrator.metabolic import State

SENSOR_NODES = ('camera', 'microphone', 'imu')
# parameters worth echoing in the JSON (the rest are the profile's, see its YAML)
SETTINGS_SHOWN = ('backend', 'width', 'height', 'fps', 'path', 'pace', 'sample_rate',
                  'frame_samples', 'rate', 'capture_priority')


def bench_overrides(width: int, height: int, fps: float, sample_rate: int,
                    frame_samples: int, imu_rate: float, audio_path: str,
                    with_graph: bool) -> list[str]:
    """`--set` overrides that put the profile's sensors at the benchmark's rates."""
    sets = ['camera.backend=synthetic', f'camera.width={width}', f'camera.height={height}',
            f'camera.fps={fps}',
            'microphone.backend=file', f'microphone.path={audio_path}', 'microphone.pace=true',
            'microphone.loop=true', f'microphone.sample_rate={sample_rate}',
            f'microphone.frame_samples={frame_samples}',
            'imu.backend=synthetic', f'imu.rate={imu_rate}']
    if with_graph:  # the orchestrator would otherwise set the camera rate per metabolic state
        sets += [f'orchestrator.state.{s.value.lower()}.camera_fps={fps}' for s in State]
    return sets


def run_bench(seconds: float = 60.0, profile: str = 'nano', with_graph: bool = False,
              baseline: bool = False, width: int = 640, height: int = 480, fps: float = 30.0,
              sample_rate: int = 16000, frame_samples: int = 512, imu_rate: float = 200.0,
              audio_path: str = '', queue_s: float = 1.0, probe_priority: int = 10,
              warmup_s: float = 5.0, startup_timeout_s: float = 60.0,
              domain_id: int | None = None, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the sensor nodes (and with_graph: the whole profile) and measure the sensors.

    Args:
        seconds: measurement window after warm-up.
        profile: profile whose node settings are used (nano, thor, or a YAML path).
        with_graph: run the rest of the profile's graph on the same machine.
        baseline: first run everything once more with the capture threads at normal
            scheduling (capture_priority 0), and report ratios against that run.
        width, height, fps: camera (nano: 640x480 at 30 Hz).
        sample_rate, frame_samples: microphone output (nano: 16 kHz, 512 samples).
        imu_rate: IMU rate (nano: 200 Hz).
        audio_path: sound file for the paced file microphone (empty = the sample scene).
        queue_s: seconds of each stream the probe's reader queues hold.
        probe_priority: SCHED_FIFO priority of the probe's threads (0 = normal); below the
            profile's capture priorities (see sage_bench.sensor_probe.SensorProbe).
        warmup_s: settling time (discovery, model loading) before the window.
        startup_timeout_s: give up when a stream has not delivered by then.
        domain_id: ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else one derived from the pid).
        overrides: further `node.param=value` overrides.
    """
    # lazy: keeps cv2 out of this module's import
    from sage_sensors.samples import ensure_samples

    audio_path = audio_path or str(ensure_samples() / 'scene.wav')
    sets = bench_overrides(width, height, fps, sample_rate, frame_samples, imu_rate,
                           audio_path, with_graph) + list(overrides)
    if domain_id is None:
        domain_id = int(os.environ.get('ROS_DOMAIN_ID') or 100 + os.getpid() % 100)
    periods = {'camera': 1.0 / fps, 'microphone': frame_samples / sample_rate,
               'imu': 1.0 / imu_rate}
    run = dict(with_graph=with_graph, periods=periods, seconds=seconds, queue_s=queue_s,
               probe_priority=probe_priority, warmup_s=warmup_s,
               startup_timeout_s=startup_timeout_s, domain_id=domain_id)
    before = None
    if baseline:
        normal = [f'{n}.capture_priority=0' for n in SENSOR_NODES]
        before = _run_once(load_profile(profile, sets + normal), **run)
    result = _run_once(load_profile(profile, sets), **run)
    if before is not None:
        result['baseline'] = before
        result['vs_baseline'] = _compare(result, before)
    return result


def _compare(run: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """p95 latency ratios (this run / baseline) and the drops of both, per stream."""
    out = {}
    for name, stream in run['streams'].items():
        b = base['streams'][name]
        ratio = (stream['latency_ms']['p95'] / b['latency_ms']['p95']
                 if b['latency_ms']['p95'] else float('nan'))
        out[name] = {'latency_p95_ratio': round(ratio, 3),
                     'drops': run['drops'][name], 'baseline_drops': base['drops'][name]}
    return out


def _run_once(prof: Profile, with_graph: bool, periods: dict[str, float], seconds: float,
              queue_s: float, probe_priority: int, warmup_s: float, startup_timeout_s: float,
              domain_id: int) -> dict[str, Any]:
    if not with_graph:
        prof = prof.without(n.name for n in prof.nodes if n.name not in SENSOR_NODES)
    run_dir = Path(tempfile.mkdtemp(prefix='sage-bench-sensors-'))
    # a process per node: the figures give each sensor node's own CPU and memory
    sup = graph_supervisor(prof, run_dir, domain_id, compose=False)

    def check() -> None:
        sup.poll()
        dead = [c.spec.name for c in sup.children if c.gave_up]
        if dead:
            raise RuntimeError(f'nodes gave up: {", ".join(dead)} (logs in {run_dir})')

    sup.start()
    probe = SensorProbe(periods, queue_s, domain_id, probe_priority)
    try:
        wait_for_streams(probe, startup_timeout_s, check)
        result = measure(probe, sup.pids(), periods, seconds, warmup_s)
        check()
    finally:
        probe.close()
        sup.stop()
    result.update({
        'profile': prof.name, 'with_graph': with_graph, 'seconds': seconds,
        'domain_id': domain_id, 'nodes': [n.name for n in prof.nodes],
        'restarts': {c.spec.name: c.restarts for c in sup.children},
        'settings': {n: {k: v for k, v in prof.node(n).parameters.items()
                         if k in SETTINGS_SHOWN} for n in STREAMS},
        'run_dir': str(run_dir)})
    return result
