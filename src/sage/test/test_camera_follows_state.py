"""Graph test: the REAL camera node's captured frame rate follows the orchestrator's states.

A real CameraNode (synthetic backend) and a real OrchestratorNode run with the nano profile's
parameters (only the timings are shortened); a probe drives the metabolic state with salience,
counts the camera's image stamps and reads the camera's `fps` parameter back over its
GetParameters service. WAKE 15, FOCUS 30, REST 5 frames per second, the yellow memory-pressure
cap (10) and the red one (5) must each hold, measured over a window that starts 1 s after the
state changed and ends by 2.5 s.
"""
from __future__ import annotations

from pathlib import Path
import shutil
import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rcl_interfaces.srv import GetParameters
from sensor_msgs.msg import Image

from sage.profile import load_profile
from sage_common.convert import salience_to_msg
from sage_common.records import SalienceRecord
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from sage_common.vocabulary import Topic
from sage_interfaces.msg import MetabolicState, Salience
from sage_orchestrator.orchestrator_node import OrchestratorNode
from sage_sensors.camera_node import CameraNode

pytestmark = pytest.mark.graph
# Recorded /proc memory files (PSI and meminfo) of the orchestrator's pressure tests.
FIXTURES = Path(__file__).resolve().parents[2] / 'sage_orchestrator' / 'test' / 'fixtures'

TIMINGS = {
    'tick_hz': 20.0, 'salience_half_life_s': 0.3, 'state_publish_period_s': 0.5,
    'metabolic.idle_rest_s': 1.0, 'metabolic.idle_dream_s': 60.0, 'effects.retry_s': 0.3,
    'pressure.period_s': 0.1, 'pressure.hold_s': 0.3, 'pressure.cgroup_dir': 'none',
    **{f'metabolic.dwell.{s}': 0.3 for s in ('wake', 'focus', 'rest', 'dream', 'crisis')},
}
SETTLE_S = 1.0     # the rate must hold from 1 s after the state change ...
WINDOW_S = 1.5     # ... for 1.5 s (so it followed within 2.5 s at the latest)
TOLERANCE = 0.2    # measured rate within 20 % of the target


class Probe(Node):
    """Publishes salience, records states and image stamps, reads the camera's fps."""

    def __init__(self, context) -> None:
        super().__init__('rate_probe', context=context)
        self.states: list[tuple[float, str]] = []
        self.stamps: list[float] = []
        self._lock = threading.Lock()
        self.create_subscription(MetabolicState, Topic.METABOLIC_STATE, self._on_state,
                                 LATCHED_QOS)
        self.create_subscription(Image, Topic.CAMERA_IMAGE, self._on_image, SENSOR_QOS)
        self.salience = self.create_publisher(Salience, Topic.SALIENCE, RELIABLE_QOS)
        self.get_params = self.create_client(GetParameters, '/camera/get_parameters')

    def _on_state(self, msg: MetabolicState) -> None:
        if not self.states or self.states[-1][1] != msg.state:
            self.states.append((time.time(), msg.state))

    def _on_image(self, msg: Image) -> None:
        with self._lock:
            self.stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    def state(self) -> str:
        return self.states[-1][1] if self.states else ''

    def rate(self, t0: float, t1: float) -> float:
        with self._lock:
            n = sum(t0 <= s < t1 for s in self.stamps)
        return n / (t1 - t0)

    def publish(self, modality: str, value: float) -> None:
        t = time.time()
        self.salience.publish(salience_to_msg(SalienceRecord(
            t, modality, 0, 0, 0, 0, 0, 0, value, 0.5, value >= 0.5)))


def _wait(cond, timeout: float, what: str, each=None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if each is not None:
            each()
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}')


def _camera_fps(probe: Probe) -> float:
    """The camera node's fps parameter, read back from the node itself."""
    assert probe.get_params.wait_for_service(timeout_sec=10.0)
    future = probe.get_params.call_async(GetParameters.Request(names=['fps']))
    end = time.monotonic() + 10.0
    while not future.done() and time.monotonic() < end:
        time.sleep(0.02)
    assert future.done(), 'camera did not answer GetParameters'
    return float(future.result().values[0].double_value)


def _holds(probe: Probe, target: float, what: str, each=None) -> float:
    """Measure the image rate from SETTLE_S after now for WINDOW_S; return it."""
    t0 = time.time() + SETTLE_S
    _wait(lambda: time.time() > t0 + WINDOW_S + 0.2, SETTLE_S + WINDOW_S + 5.0,
          f'{what} window', each)
    rate = probe.rate(t0, t0 + WINDOW_S)
    assert abs(rate - target) <= TOLERANCE * target, \
        f'{what}: {rate:.1f} frames/s captured, expected {target}'
    assert _camera_fps(probe) == target, f'{what}: camera fps parameter'
    return rate


@pytest.mark.timeout(180)
def test_captured_frame_rate_follows_the_metabolic_state_and_memory_pressure(
        ros_domain, tmp_path):
    fixtures = FIXTURES
    prof = {n.name: dict(n.parameters) for n in load_profile('nano', []).nodes}
    proc = tmp_path / 'proc'
    (proc / 'pressure').mkdir(parents=True)
    shutil.copyfile(fixtures / 'psi_calm.txt', proc / 'pressure' / 'memory')
    shutil.copyfile(fixtures / 'meminfo_8gb_ok.txt', proc / 'meminfo')
    orch_values = {**prof['orchestrator'], **TIMINGS, 'state_dir': str(tmp_path / 'state'),
                   'pressure.proc_root': str(proc)}
    cam_values = {**prof['camera'], 'backend': 'synthetic', 'width': 64, 'height': 48,
                  'capture_priority': 0, 'mailbox.enabled': False}
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    camera = CameraNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in cam_values.items()])
    orch = OrchestratorNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in orch_values.items()])
    probe = Probe(ctx)
    executors = []
    for node in (camera, orch, probe):
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        executors.append(ex)
    threads = [threading.Thread(target=e.spin, daemon=True) for e in executors]
    for th in threads:
        th.start()
    fps = prof['orchestrator']
    target = {s: float(fps[f'state.{s.lower()}.camera_fps']) for s in ('WAKE', 'FOCUS',
                                                                       'REST')}
    busy = lambda: probe.publish('vision', 0.35)  # noqa: E731 - activity below every threshold
    try:
        _wait(lambda: probe.state() == 'WAKE' and len(probe.stamps) > 10, 20.0, 'WAKE', busy)
        measured = {'WAKE': _holds(probe, target['WAKE'], 'WAKE', busy)}
        hot = lambda: probe.publish('vision', 0.95)  # noqa: E731
        _wait(lambda: probe.state() == 'FOCUS', 5.0, 'FOCUS', hot)
        measured['FOCUS'] = _holds(probe, target['FOCUS'], 'FOCUS', hot)
        _wait(lambda: probe.state() == 'REST', 10.0, 'REST')
        measured['REST'] = _holds(probe, target['REST'], 'REST')
        _wait(lambda: probe.state() == 'WAKE', 5.0, 'WAKE again', hot)
        # Yellow memory pressure caps the camera (pressure.yellow.set camera:fps=10.0).
        shutil.copyfile(fixtures / 'psi_moderate.txt', proc / 'pressure' / 'memory')
        measured['yellow'] = _holds(probe, 10.0, 'yellow pressure cap', busy)
        # Red: CRISIS and the red cap (camera:fps=5.0).
        shutil.copyfile(fixtures / 'psi_heavy.txt', proc / 'pressure' / 'memory')
        shutil.copyfile(fixtures / 'meminfo_8gb_critical.txt', proc / 'meminfo')
        _wait(lambda: probe.state() == 'CRISIS', 5.0, 'CRISIS on red pressure', busy)
        measured['red'] = _holds(probe, 5.0, 'red pressure cap', busy)
    finally:
        for e in executors:
            e.shutdown()
        camera.close()
        orch.close()
        rclpy.try_shutdown(context=ctx)
        for th in threads:
            th.join(timeout=5.0)
    print('captured frames/s:', {k: round(v, 1) for k, v in measured.items()})
