"""A bag played with `sage bag play --clock` at 0.5x and 2x into `sage launch nano
--use-sim-time` (issue 52, must-show 4): the graph attends to the inputs the offline replay
attends to, and the orchestrator's idle timer (WAKE -> REST after metabolic.idle_rest_s without
activity) runs on the bag's /clock time: it fires when the orchestrator core, fed the offline
decisions in bag time, does, after the bag-time seconds divided by the rate in wall time (at 2x
half of them, at 0.5x twice). One test per rate, each with its own graph and domain.

The bag is an IMU stream (100 Hz, 7.5 s, three shakes) stamped from 1000 s, far from the wall
clock, so a stamp the graph gives in sim time cannot be mistaken for one in wall time. The
graph is SNARC and the orchestrator (composed, as nano runs them): the other nodes would only
add load and an encoder's frame dropping, which is not what this compares (test_replay_live and
test_bag_play_graph compare the full graph, at 0.8). As there, the attend threshold does not
move with the metabolic state, in both runs.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rosgraph_msgs.msg import Clock
from sage_interfaces.msg import MetabolicState, Salience

from sage_bringup.profile import load_profile
from sage_common.records import AXES, SalienceRecord
from sage_common.ros import RELIABLE_QOS
from sage_common.vocabulary import absolute, MetabolicState as State, Topic
from sage_eval.attend_agreement import attend_agreement, decision_key
from sage_eval.imu_scene import write_imu_bag
from sage_eval.replay import replay_bag
from sage_orchestrator.orchestrator_core import OrchestratorCore
from sage_orchestrator.orchestrator_params import build_config
from sage_orchestrator.plugins import build_inprocess

pytestmark = pytest.mark.graph

KEEP = ('snarc', 'orchestrator')
T0 = 1000.0  # bag time of the first sample (s)
DURATION_S, IMU_HZ = 7.5, 100.0
# bag seconds after T0: three turns, 12 attended windows offline, then 3.8 s still
SHAKES = ((0.5, 0.7), (2.0, 2.2), (3.5, 3.7))
IDLE_REST_S = 2.0
RATES = (0.5, 2.0)
MIN_AGREEMENT = 0.95
TICK_S = 0.1  # orchestrator tick_hz 10: a transition lands within a tick of its time
# Wall seconds from a window's close to its salience in the live orchestrator (SNARC, DDS, two
# Python processes on shared cores): the orchestrator counts activity from then, so its idle
# timer may end this much later, times the rate, in bag time. Seen: 0.2 s at 2x (0.39 s late).
LAG_WALL_S = 0.3
START_TIMEOUT_S = 60.0
CLI = [sys.executable, '-m', 'sage.cli']


def _offline_rest(orchestrator_params: dict, decisions: list[dict]) -> float | None:
    """When the orchestrator core enters REST on the offline decisions: ticked every TICK_S of
    bag time from the bag's start (where play holds /clock, so the live node's first tick is
    there too), each salience fed at the first tick after its window closed."""
    cfg = build_config(orchestrator_params)
    core = OrchestratorCore(cfg, build_inprocess(
        s.name for s in cfg.plugins if s.kind == 'inprocess'))
    pending = sorted(decisions, key=lambda d: d['stamp'])
    for k in range(int(DURATION_S / TICK_S) + 1):
        now = T0 + k * TICK_S
        while pending and pending[0]['stamp'] <= now:
            d = pending.pop(0)
            core.on_salience(SalienceRecord(
                d['stamp'], d['modality'], 0, *(d[a] for a in AXES), d['salience'], 0.0,
                d['attend']), now)
        if any(tr.target.value == State.REST for tr in core.tick(now).transitions):
            return now
    return None


class _Watch:
    """Salience, metabolic states and /clock as they arrive, with the wall time of each: one
    node in its own context, spun on a thread."""

    def __init__(self, domain: int) -> None:
        self.lock = threading.Lock()
        self.salience: dict = {}
        self.states: list[tuple[str, float, float]] = []  # state, stamp (sim), wall
        self.clock: list[tuple[float, float]] = []  # /clock value, wall
        self._stop = threading.Event()
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node('sim_time_watch', context=self.ctx)
        for msg_type, topic, callback in (
                (Salience, absolute(Topic.SALIENCE), self._on_salience),
                (MetabolicState, absolute(Topic.METABOLIC_STATE), self._on_state),
                (Clock, Topic.CLOCK, self._on_clock)):
            self.node.create_subscription(msg_type, topic, callback, RELIABLE_QOS)
        self._executor = SingleThreadedExecutor(context=self.ctx)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.05)

    def hears_the_graph(self) -> bool:
        """SNARC's and the orchestrator's publishers are discovered (their first outputs
        would otherwise be lost to this listener)."""
        return all(self.node.count_publishers(absolute(t)) >= 1
                   for t in (Topic.SALIENCE, Topic.METABOLIC_STATE))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._executor.shutdown()
        rclpy.try_shutdown(context=self.ctx)

    def _on_salience(self, m: Salience) -> None:
        with self.lock:
            self.salience[decision_key(m.modality, m.header.stamp.sec
                                       + m.header.stamp.nanosec * 1e-9)] = bool(m.attend)

    def _on_state(self, m: MetabolicState) -> None:
        with self.lock:
            self.states.append((m.state, m.header.stamp.sec + m.header.stamp.nanosec * 1e-9,
                                time.monotonic()))

    def _on_clock(self, m: Clock) -> None:
        with self.lock:
            self.clock.append((m.clock.sec + m.clock.nanosec * 1e-9, time.monotonic()))

    def settle(self, quiet_s: float = 1.0, timeout: float = 20.0) -> None:
        """Until no salience arrived for quiet_s (what was played is scored)."""
        seen, since, end = -1, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                n = len(self.salience)
            if n != seen:
                seen, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)


@pytest.mark.parametrize('rate', RATES)
def test_a_bag_played_with_clock_drives_the_graph_in_sim_time(
        rate, ros_domain, tmp_path, nano_graph):
    bag = tmp_path / 'imu_bag'
    write_imu_bag(bag, T0, DURATION_S, IMU_HZ, SHAKES, seed=52)
    common = ["snarc.state_file=''", 'snarc.memory.preload_k=0',
              'snarc.imu_queue_depth=400',  # 2 s of a 2x IMU stream: a loaded SNARC loses none
              f'orchestrator.metabolic.idle_rest_s={IDLE_REST_S}',
              'orchestrator.metabolic.idle_dream_s=1000.0',
              'orchestrator.metabolic.activity_salience=1.0',  # activity = an attended input
              # short dwells: REST follows the idle timer, not FOCUS's minimum stay
              'orchestrator.metabolic.dwell.wake=0.5', 'orchestrator.metabolic.dwell.focus=0.5',
              *nano_graph.state_free_threshold()]
    profile = load_profile('nano', common)
    offline_out = tmp_path / 'offline.jsonl'
    replay_bag(bag, {n.name: dict(n.parameters) for n in profile.nodes}, offline_out)
    decisions = [json.loads(line) for line in offline_out.read_text().splitlines()]
    offline = {decision_key(d['modality'], d['stamp']): bool(d['attend']) for d in decisions}
    # the reference: the orchestrator's core on the offline decisions, in bag time
    expected_rest = _offline_rest(profile.node('orchestrator').parameters, decisions)
    assert expected_rest is not None, 'the offline orchestrator never rests in the bag'

    graph = nano_graph.launch(ros_domain, tmp_path / 'graph',
                              [*common, f'orchestrator.state_dir={tmp_path / "st"}'],
                              tuple(n.name for n in profile.nodes if n.name not in KEEP),
                              args=('--use-sim-time',))
    watch = _Watch(ros_domain)
    try:
        end = time.monotonic() + START_TIMEOUT_S
        while not watch.hears_the_graph() and time.monotonic() < end and graph.poll() is None:
            time.sleep(0.1)
        assert watch.hears_the_graph(), f'graph not up: see {tmp_path}/graph.log'
        # play holds /clock at the bag's start until SNARC reads the IMU topic and the
        # orchestrator (beside this test's listener) reads salience
        played = subprocess.run(
            [*CLI, 'bag', 'play', str(bag), '--clock', '--rate', str(rate),
             '--wait', str(START_TIMEOUT_S), '--wait-for', f'{absolute(Topic.SALIENCE)}=2',
             '--domain-id', str(ros_domain)],
            capture_output=True, text=True, timeout=START_TIMEOUT_S + DURATION_S / rate + 30)
        watch.settle()
    finally:
        watch.stop()
        nano_graph.stop(graph)
    assert played.returncode == 0, played.stdout + played.stderr
    assert 'playing anyway' not in played.stdout, played.stdout

    got = attend_agreement(offline, watch.salience)
    print(f'{rate}x: ' + json.dumps({**got._asdict(), 'offline': len(offline),
                                     'live': len(watch.salience)}))
    assert got.compared >= 0.9 * len(offline), got
    assert got.attended >= 5, got
    assert got.precision >= MIN_AGREEMENT and got.recall >= MIN_AGREEMENT, got

    # The idle timer in sim seconds: REST comes when the orchestrator core fed the offline
    # decisions in bag time enters it, stamped in bag time (a wall-clock node would stamp
    # ~1.8e9 s); the live ticks fall within a tick or two of the reference's, later by the
    # time a salience takes to reach the live orchestrator (in bag time).
    rest = [(stamp, wall) for state, stamp, wall in watch.states if state == State.REST]
    assert rest, f'no REST (states: {[s for s, _, _ in watch.states]})'
    rest_stamp, rest_wall = rest[0]
    late = rest_stamp - expected_rest
    assert -2 * TICK_S <= late <= 2 * TICK_S + LAG_WALL_S * rate, (rest_stamp, expected_rest)
    # and in wall time, from the first /clock past the bag's start: the sim seconds / rate
    # (2x: half of them, 0.5x: twice)
    moving = [(c, w) for c, w in watch.clock if c > T0 + 1e-6]
    assert moving, '/clock never left the bag start'
    clock0, wall0 = moving[0]
    wall, sim = rest_wall - wall0, rest_stamp - clock0
    print(f'{rate}x: REST after {sim:.2f} s of /clock time, {wall:.2f} s of wall time')
    assert 0.75 * sim / rate <= wall <= 1.25 * sim / rate + 0.3, (sim, wall)
