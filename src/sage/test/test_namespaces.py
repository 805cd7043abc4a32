"""Two SAGE graphs on one DDS domain, `sage launch nano --namespace /r1` and `--namespace /r2`
(issue 52, must-show 3): each scores only its own inputs.

Each graph is SNARC and the orchestrator (composed in one process, as nano runs them), fed IMU
samples on its own namespaced topic: /r1's by this test's publisher (a robot's IMU driver),
stamped from 1000 s; /r2's by `sage bag play --namespace /r2` of a bag recorded without a
namespace (/sage/imu/data), stamped from 2000 s and twice as long. Every salience on
/r1/sage/salience must carry a /r1 stamp and /r2's a /r2 stamp, each graph must have scored
(nearly) all of its own windows, nothing may appear on the un-namespaced /sage/salience, and
each namespace has its own orchestrator (its metabolic state on /rN/sage/metabolic_state).
`sage bag record --namespace /r2` records /r2's graph under the /sage/... names a graph with no
namespace has: its salience there is /r2's alone. /r1 also gets a robot's ROS params file
(`--params-file`, its section /r1/snarc) and `--log-level warn`: its IMU window (0.1 s, /r2's
0.05 s from --set) shows in its count.
"""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import rclpy
from rosbags.highlevel import AnyReader
from rclpy.executors import SingleThreadedExecutor
from sage_interfaces.msg import MetabolicState, Salience
from sensor_msgs.msg import Imu
import yaml

from sage_bringup.profile import load_profile
from sage_common.ros import RELIABLE_QOS, SENSOR_QOS, spin_until
from sage_common.vocabulary import absolute, Topic
from sage_eval.bagio import typestore
from sage_eval.imu_scene import write_imu_bag

pytestmark = pytest.mark.graph

KEEP = ('snarc', 'orchestrator')
IMU_HZ = 100.0
SECONDS = {'/r1': 1.0, '/r2': 2.0}  # different counts: a crossed wire would show
BASE = {'/r1': 1000.0, '/r2': 2000.0}  # stamps of each robot's own samples
START_TIMEOUT_S = 60.0
# snarc imu.window_s: /r1's from a ROS params file given to `sage launch --params-file` (the
# robot's own file, any namespace), /r2's from --set; the counts show each took effect
WINDOW_S = {'/r1': 0.1, '/r2': 0.05}


def _imu(stamp: float, i: int) -> Imu:
    msg = Imu()
    msg.header.stamp.sec, nsec = divmod(round(stamp * 1e9), 10**9)
    msg.header.stamp.nanosec = nsec
    msg.header.frame_id = 'imu_link'
    msg.linear_acceleration.z = 9.81 + 0.01 * ((i * 7) % 5 - 2)  # still, a little noise
    return msg


def test_two_namespaced_graphs_on_one_domain_score_only_their_own_inputs(
        ros_domain, tmp_path, nano_graph):
    without = [n.name for n in load_profile('nano').nodes if n.name not in KEEP]
    robot_params = tmp_path / 'r1.params.yaml'
    robot_params.write_text(yaml.safe_dump(
        {'/r1/snarc': {'ros__parameters': {'imu': {'window_s': WINDOW_S['/r1']}}}}))
    for ns, more in (('/r1', ('--params-file', str(robot_params), '--log-level', 'warn')),
                     ('/r2', ('--set', f"snarc.imu.window_s={WINDOW_S['/r2']}"))):
        name = ns.strip('/')
        nano_graph.launch(ros_domain, tmp_path / name,
                          ["snarc.state_file=''", 'snarc.memory.preload_k=0',
                           f'orchestrator.state_dir={tmp_path / f"st_{name}"}'],
                          tuple(without), args=('--namespace', ns, *more))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node('two_robots_probe', context=ctx)
    got: dict[str, list[tuple[str, float]]] = {ns: [] for ns in (*SECONDS, '/')}
    states: dict[str, list[str]] = {ns: [] for ns in SECONDS}
    pubs = {}
    for ns in (*SECONDS, '/'):
        node.create_subscription(
            Salience, absolute(Topic.SALIENCE, ns),
            lambda m, ns=ns: got[ns].append(
                (m.modality, m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)), RELIABLE_QOS)
    for ns in SECONDS:
        node.create_subscription(MetabolicState, absolute(Topic.METABOLIC_STATE, ns),
                                 lambda m, ns=ns: states[ns].append(m.state), RELIABLE_QOS)
        pubs[ns] = node.create_publisher(Imu, absolute(Topic.IMU, ns), SENSOR_QOS)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    bag = tmp_path / 'r2_imu'
    write_imu_bag(bag, BASE['/r2'], SECONDS['/r2'], IMU_HZ)
    player = recorder = None
    recorded = tmp_path / 'r2_recorded'
    try:
        # each graph's SNARC reads its own IMU topic, and its orchestrator reads its salience
        assert spin_until(executor, lambda: all(
            p.get_subscription_count() >= 1
            and node.count_subscribers(absolute(Topic.SALIENCE, ns)) >= 2
            for ns, p in pubs.items()), START_TIMEOUT_S), \
            f'graphs not up; see {tmp_path}/r1.log and r2.log'
        recorder = subprocess.Popen(
            [sys.executable, '-m', 'sage.cli', 'bag', 'record', str(recorded), '--namespace',
             '/r2', '--domain-id', str(ros_domain)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # its subscriptions: beside the orchestrator's and this probe's
        assert spin_until(executor, lambda: node.count_subscribers(
            absolute(Topic.SALIENCE, '/r2')) >= 3, START_TIMEOUT_S), 'the recorder never came'
        player = subprocess.Popen(
            # at half rate: SNARC's 100-sample IMU queue then rides out a 2 s stall (a loaded
            # run lost /r2's first second at full rate while the graph was settling)
            [sys.executable, '-m', 'sage.cli', 'bag', 'play', str(bag), '--namespace', '/r2',
             '--rate', '0.5', '--wait', str(START_TIMEOUT_S), '--domain-id', str(ros_domain)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(int(SECONDS['/r1'] * IMU_HZ)):
            pubs['/r1'].publish(_imu(BASE['/r1'] + i / IMU_HZ, i))
            executor.spin_once(timeout_sec=0.002)  # paced like a driver, replies read
        assert spin_until(executor, lambda: player.poll() is not None, START_TIMEOUT_S + 30)
        said = player.stdout.read()
        assert player.returncode == 0 and '/sage/imu/data' in said, said
        # the last window of each stays open
        expected = {ns: int(round(s / WINDOW_S[ns])) - 1 for ns, s in SECONDS.items()}
        spin_until(executor, lambda: all(len(got[ns]) >= n for ns, n in expected.items())
                   and all(states.values()), 20.0)
        spin_until(executor, lambda: False, 1.0)  # anything crossing over would arrive now
        recorder.send_signal(signal.SIGINT)
        said = recorder.communicate(timeout=30)[0]
        assert recorder.returncode == 0, said
    finally:
        for proc in (player, recorder):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        executor.shutdown()
        rclpy.try_shutdown(context=ctx)
    counts = {ns: len(v) for ns, v in got.items()}
    print('salience per namespace:', counts, 'expected', expected)
    assert not got['/'], f'{len(got["/"])} saliences on the un-namespaced topic'
    for ns, seconds in SECONDS.items():
        own = (BASE[ns], BASE[ns] + seconds)
        foreign = [s for _m, s in got[ns] if not own[0] <= s <= own[1]]
        assert not foreign, f'{ns} scored {len(foreign)} inputs of the other robot: {foreign[:3]}'
        assert {m for m, _s in got[ns]} == {'imu'}
        # IMU samples travel best effort: a starved SNARC may lose some under load, but never
        # gains the other robot's (which would add 39 or 9)
        assert 0.5 * expected[ns] <= counts[ns] <= expected[ns] + 1, (ns, counts)
        assert states[ns], f'no metabolic state from {ns}/sage/metabolic_state'
    # --log-level warn: /r1's nodes log no INFO line (/r2's orchestrator logs the parameters
    # it sets on its own SNARC, /r2/snarc)
    r1_log = '\n'.join(p.read_text() for p in (tmp_path / 'r1' / 'logs').glob('*.log'))
    assert '[INFO]' not in r1_log, r1_log[-2000:]
    # the recording of /r2 reads like a graph's with no namespace, and holds /r2's scores only
    with AnyReader([recorded], default_typestore=typestore()) as reader:
        names = {c.topic for c in reader.connections}
        conns = [c for c in reader.connections if c.topic == absolute(Topic.SALIENCE)]
        stamps = [reader.deserialize(raw, c.msgtype).header.stamp.sec
                  for c, _t, raw in reader.messages(connections=conns)]
    assert absolute(Topic.SALIENCE) in names and not [n for n in names if '/r2/' in n], names
    assert len(stamps) == counts['/r2'], (len(stamps), counts)
    assert all(BASE['/r2'] <= s <= BASE['/r2'] + SECONDS['/r2'] for s in stamps), stamps
