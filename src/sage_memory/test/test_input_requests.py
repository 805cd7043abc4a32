"""The memory node's requests for encoder inputs, against a real vision encoder node: which
stored rows keep their input (experiences always, context rows with training_inputs.context).
"""
from __future__ import annotations

# Imports inside tests are lazy: rclpy, the message packages and the encoder node load only
# for the node tests.

from dataclasses import replace

import numpy as np
import pytest

from sage_memory.store.training_inputs import wants_input


def test_context_rows_keep_their_input_only_when_asked() -> None:
    assert wants_input('experience', False) and wants_input('experience', True)
    assert wants_input('context', True) and not wants_input('context', False)
    assert not wants_input('pattern', True)


def test_requester_asks_the_encoder_for_experiences_and_with_context_their_context(
        ros_domain) -> None:
    rclpy = pytest.importorskip('rclpy')
    pytest.importorskip('sage_encoders.vision_encoder_node')
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sage_common.health import Health
    from sage_common.ros import SENSOR_QOS, spin_until
    from sage_interfaces.msg import Latent
    from sensor_msgs.msg import Image

    from sage_encoders.data import demo_frame
    from sage_encoders.vision_encoder_node import VisionEncoderNode
    from sage_memory.sleep.input_requests import InputRequester
    from sage_memory.store.synthetic import synthetic_record

    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    ex = SingleThreadedExecutor(context=ctx)
    encoder = VisionEncoderNode(context=ctx)
    memory = rclpy.create_node('memory_peer', context=ctx)
    try:
        ex.add_node(encoder)
        ex.add_node(memory)
        latents: list = []
        memory.create_subscription(Latent, '/sage/vision/latent', latents.append, 10)
        pub = memory.create_publisher(Image, '/sage/camera/image_raw', SENSOR_QOS)
        got: dict[bool, list] = {True: [], False: []}
        health = {c: Health() for c in (True, False)}
        requesters = {c: InputRequester(memory, ['vision'], 5.0, got[c].append, health[c],
                                         context=c) for c in (True, False)}
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0 and all(
            r.clients['vision'].service_is_ready() for r in requesters.values()), 5.0)
        for i in range(3):
            img = Image(height=120, width=160, encoding='rgb8', step=160 * 3,
                        data=demo_frame(i, 120, 160).tobytes())
            img.header.stamp.sec = 1800 + i
            pub.publish(img)
            assert spin_until(ex, lambda: len(latents) > i, 8.0)
        # The rows the policy stores around an attended frame: its context before and after.
        rng = np.random.default_rng(0)
        rows = []
        for lat, kind in zip(latents, ('context', 'experience', 'context')):
            rec = synthetic_record(lat.input_seq, rng, dim=8, preview_bytes=16, grid=4,
                                   stamp=lat.header.stamp.sec + lat.header.stamp.nanosec * 1e-9,
                                   input_seq=lat.input_seq)
            rows.append(replace(rec, kind=kind))
        for r in requesters.values():
            r.request(rows)

        def answered() -> bool:
            for r in requesters.values():
                r.poll()
            return not any(r.pending for r in requesters.values())
        assert spin_until(ex, answered, 8.0)
        assert [t.uuid for t in got[True]] == [r.uuid for r in rows]
        assert [t.uuid for t in got[False]] == [rows[1].uuid]
        assert all(t.format == 'jpeg' and t.width == 240 and t.data for t in got[True])
        assert health[True].counters['training_inputs_asked'] == 3
        assert health[False].counters['training_inputs_asked'] == 1
    finally:
        ex.shutdown()
        encoder.destroy_node()
        memory.destroy_node()
        rclpy.shutdown(context=ctx)
