"""The SNARC node on a real (in-process) ROS graph: latents and IMU in, Salience out."""
import json
import math

import numpy as np
import pytest

from sage_encoders.model_versions import MEMORY_EMBEDDINGS_FILE, write_memory_embeddings

rclpy = pytest.importorskip('rclpy')
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sage_interfaces.msg import Latent, Salience  # noqa: E402
from sensor_msgs.msg import Imu  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from sage_common.convert import latent_to_msg, set_stamp  # noqa: E402
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS  # noqa: E402
from sage_snarc.snarc_node import SnarcNode  # noqa: E402
from sage_snarc.synthetic import SyntheticWorld  # noqa: E402
from sage_common.ros import spin_until  # noqa: E402
from sage_common.vocabulary import Topic  # noqa: E402

T0 = 1_700_000_000.0


@pytest.fixture()
def ros(monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=131)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _spin_until(executor, cond, timeout=10.0):
    return spin_until(executor, cond, timeout)


def _snarc_and_probe(ros, *params):
    """A SNARC node (diagnostics every 0.2 s, no memory preload, plus params), a probe node
    that collects its Salience and /diagnostics, and an executor spinning both."""
    node = SnarcNode(context=ros, parameter_overrides=[
        Parameter('diagnostics_period_s', value=0.2), Parameter('memory.preload_k', value=0),
        *params])
    probe = rclpy.create_node('snarc_probe', context=ros)
    ex = SingleThreadedExecutor(context=ros)
    ex.add_node(node)
    ex.add_node(probe)
    got: list[Salience] = []
    diags: list[DiagnosticArray] = []
    probe.create_subscription(Salience, Topic.SALIENCE, got.append, RELIABLE_QOS)
    probe.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS, diags.append, 10)
    return node, probe, ex, got, diags


def test_node_scores_latents_and_imu_and_reports_problems_on_diagnostics(ros):
    node, probe, ex, got, diags = _snarc_and_probe(ros)
    lat_pub = probe.create_publisher(Latent, '/sage/vision/latent', RELIABLE_QOS)
    imu_pub = probe.create_publisher(Imu, '/sage/imu/data', SENSOR_QOS)
    try:
        assert _spin_until(ex, lambda: lat_pub.get_subscription_count() > 0
                           and imu_pub.get_subscription_count() > 0
                           and probe.count_publishers('/sage/salience') > 0)
        world = SyntheticWorld(0)
        n_frames = 60
        for i in range(n_frames):
            rec = world.vision(T0 + i / 10.0)
            msg = latent_to_msg(rec)
            msg.input_seq = 1000 + i
            if i == 40:  # bad input: NaN embedding
                msg.embedding = [math.nan] * len(msg.embedding)
            lat_pub.publish(msg)
            for k in range(20):  # 200 Hz IMU
                imu = Imu()
                set_stamp(imu.header, T0 + i / 10.0 + k / 200.0)
                imu.linear_acceleration.z = 9.81
                imu.orientation_covariance[0] = -1.0
                imu_pub.publish(imu)
                for _ in range(3):  # the sensor QoS queue is shallow: keep up with it
                    ex.spin_once(timeout_sec=0.0)

        def vision():
            return [m for m in got if m.modality == 'vision']
        assert _spin_until(ex, lambda: len(vision()) == n_frames)
        assert _spin_until(ex, lambda: any(
            s.name == 'sage: snarc' and any(kv.key == 'vision.inputs' and kv.value == '60'
                                            for kv in s.values)
            for d in diags for s in d.status))
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    vis = vision()
    assert [m.input_seq for m in vis] == [1000 + i for i in range(n_frames)]
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in vis]
    assert np.allclose(stamps, [T0 + i / 10.0 for i in range(n_frames)], atol=1e-6)
    assert all(0.0 <= m.salience <= 1.0 and math.isfinite(m.salience) for m in vis)
    imu = [m for m in got if m.modality == 'imu']
    assert len(imu) > 50  # best effort: most 20 Hz windows arrive
    seqs = [m.input_seq for m in imu]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    status = [s for d in diags for s in d.status if s.name == 'sage: snarc'][-1]
    values = {kv.key: kv.value for kv in status.values}
    assert int(values['vision.inputs']) == n_frames
    assert 'vision.salience_p95' in values and 'weight.reward' in values
    assert int(values['issue.non_finite']) >= 1  # the NaN latent is reported
    assert int(status.level[0] if isinstance(status.level, bytes) else status.level) >= 1


def _imu_msg(stamp: float) -> Imu:
    imu = Imu()
    set_stamp(imu.header, stamp)
    imu.linear_acceleration.z = 9.81
    imu.orientation_covariance[0] = -1.0
    return imu


def _run_imu(ros, state_file, stamps):
    """One SNARC node life (state file loaded at start, saved at close): IMU in, salience out."""
    node = SnarcNode(context=ros, parameter_overrides=[
        Parameter('memory.preload_k', value=0), Parameter('state_file', value=str(state_file))])
    probe = rclpy.create_node('snarc_probe', context=ros)
    ex = SingleThreadedExecutor(context=ros)
    ex.add_node(node)
    ex.add_node(probe)
    got: list[Salience] = []
    probe.create_subscription(Salience, '/sage/salience', got.append, RELIABLE_QOS)
    pub = probe.create_publisher(Imu, '/sage/imu/data', SENSOR_QOS)
    try:
        assert _spin_until(ex, lambda: pub.get_subscription_count() > 0
                           and probe.count_publishers('/sage/salience') > 0)
        for t in stamps:
            pub.publish(_imu_msg(t))
            for _ in range(3):
                ex.spin_once(timeout_sec=0.0)
        _spin_until(ex, lambda: False, timeout=0.5)   # let the last messages arrive
    finally:
        ex.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()
    return [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got
            if m.modality == 'imu']


def test_after_a_restart_no_imu_salience_carries_a_stamp_from_before_it(ros, tmp_path):
    state = tmp_path / 'snarc_state.npz'
    # First run: 200 Hz for 1.02 s; it stops inside an open 50 ms window.
    _run_imu(ros, state, [T0 + k / 200.0 for k in range(205)])
    assert state.is_file()
    # Second run, a minute later: every IMU salience is from the new stream.
    t1 = T0 + 60.0
    stamps = _run_imu(ros, state, [t1 + k / 200.0 for k in range(100)])
    assert stamps, 'no IMU salience after the restart'
    assert min(stamps) >= t1


def _scored_once(ros, before_refinement: bool):
    """Vision inputs sent as the encoders do (early on latent_initial, then refined on latent),
    some only refined (an encoder with irp.publish_initial off), some refined first: the
    salience messages and the node's 'scored_already' count."""
    node, probe, ex, got, diags = _snarc_and_probe(
        ros, Parameter('before_refinement', value=before_refinement))
    refined = probe.create_publisher(Latent, Topic.latent('vision'), RELIABLE_QOS)
    early = probe.create_publisher(Latent, Topic.latent_initial('vision'), RELIABLE_QOS)
    world = SyntheticWorld(1)
    orders = ['early,refined'] * 10 + ['refined'] * 5 + ['refined,early'] * 3
    try:
        want = 1 if before_refinement else 0
        assert _spin_until(ex, lambda: refined.get_subscription_count() == 1
                           and early.get_subscription_count() == want
                           and probe.count_publishers(Topic.SALIENCE) > 0)
        for i, order in enumerate(orders):
            msg = latent_to_msg(world.vision(T0 + i / 10.0))
            msg.input_seq = 500 + i
            for which in order.split(','):
                (early if which == 'early' else refined).publish(msg)
                for _ in range(3):
                    ex.spin_once(timeout_sec=0.0)

        def counters():
            status = [s for d in diags for s in d.status if s.name == 'sage: snarc']
            return {kv.key: kv.value for kv in status[-1].values} if status else {}
        sent = sum(len(o.split(',')) for o in orders) if before_refinement else len(orders)
        assert _spin_until(ex, lambda: int(counters().get('vision.inputs', 0))
                           + int(counters().get('scored_already', 0)) >= sent)
        assert _spin_until(ex, lambda: len([m for m in got if m.modality == 'vision'])
                           >= int(counters()['vision.inputs']))
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    return [m for m in got if m.modality == 'vision'], int(counters()['scored_already'])


def test_an_input_that_comes_before_and_after_refinement_is_scored_once(ros):
    vis, already = _scored_once(ros, before_refinement=True)
    assert [m.input_seq for m in vis] == [500 + i for i in range(18)]
    assert already == 13  # the second copy of each input that came twice
    # Without it, SNARC listens to refined latents only (one per input here, the
    # early ones fall on no subscriber).
    vis, already = _scored_once(ros, before_refinement=False)
    assert [m.input_seq for m in vis] == [500 + i for i in range(18)] and already == 0


def test_a_live_versions_re_embedded_memories_are_added_once_and_a_bad_file_is_reported(
        ros, tmp_path):
    rows = np.random.default_rng(2).normal(size=(7, 32)).astype(np.float32)
    vision, audio, old = (tmp_path / name for name in ('v0002', 'v0003', 'v0001'))
    for d in (vision, audio, old):
        d.mkdir()
    write_memory_embeddings(vision, [f'u{i}' for i in range(len(rows))], rows)
    (audio / MEMORY_EMBEDDINGS_FILE).write_bytes(b'PK\x03\x04 torn')  # a corrupt file
    node, probe, ex, got, diags = _snarc_and_probe(ros)
    pub = probe.create_publisher(String, Topic.MODELS_LIVE, LATCHED_QOS)

    def send(doc) -> None:
        pub.publish(String(data=doc if isinstance(doc, str) else json.dumps(doc)))

    def issues():
        status = [s for d in diags for s in d.status if s.name == 'sage: snarc']
        return ({kv.key: kv.value for kv in status[-1].values if kv.key.startswith('issue.')}
                if status else {})
    live = {'vision': {'version': 'v0002', 'path': str(vision)},
            'audio': {'version': 'v0003', 'path': str(audio)}}
    try:
        assert _spin_until(ex, lambda: pub.get_subscription_count() > 0)
        send(live)
        assert _spin_until(ex, lambda: ('vision', 'v0002') in node.core.model_memories
                           and issues().get('issue.bad_model_memories') == '1')
        # One at a time: the latched subscription keeps the newest message only.
        send('not json')  # reported; the node goes on
        assert _spin_until(ex, lambda: int(issues().get('issue.bad_models_live', 0)) >= 1)
        send(live)  # the latched message again (its publisher restarted): nothing twice
        assert _spin_until(ex, lambda: issues().get('issue.bad_model_memories') == '2')
        send({**live, 'vision': {'version': 'v0001', 'path': str(old)}})  # a file-less version
        assert _spin_until(ex, lambda: issues().get('issue.bad_model_memories') == '3')
    finally:
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    index = node.core.memory['vision']['v0002']
    assert len(index) == len(rows)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    assert np.allclose(index.vectors(), unit, atol=1e-6)
    assert 'audio' not in node.core.memory and ('audio', 'v0003') not in node.core.model_memories
    assert ('vision', 'v0001') not in node.core.model_memories
