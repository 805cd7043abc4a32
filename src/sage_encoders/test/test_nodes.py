"""Node shells: real messages through an in-process executor on a private ROS domain."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from sage_common.previews import decode_audio
from sage_encoders.audio_core import FEATURES
from sage_encoders.data import demo_frame
from sage_encoders.vision_core import FEATURES as VISION_FEATURES
from sage_common.ros import spin_until

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from sage_common.ros import LATCHED_QOS, SENSOR_QOS  # noqa: E402
from sage_encoders.audio_encoder_node import AudioEncoderNode  # noqa: E402
from sage_encoders.vision_encoder_node import VisionEncoderNode  # noqa: E402
from sage_interfaces.msg import (AtpAllocation, AtpBudget, AudioFrame, Latent,  # noqa: E402
                                 MetabolicState)


@pytest.fixture
def ros(monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    ctx = Context()
    rclpy.init(context=ctx, domain_id=121)
    ex = SingleThreadedExecutor(context=ctx)
    yield ctx, ex
    ex.shutdown()
    rclpy.shutdown(context=ctx)


def test_vision_node_publishes_latents_reports_bad_frames_and_unloads_in_dream(ros) -> None:
    ctx, ex = ros
    node = VisionEncoderNode(context=ctx)
    peer = rclpy.create_node('peer', context=ctx)
    ex.add_node(node)
    ex.add_node(peer)
    latents: list = []
    diags: list = []
    peer.create_subscription(Latent, '/sage/vision/latent', latents.append, 10)
    peer.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    img_pub = peer.create_publisher(Image, '/sage/camera/image_raw', SENSOR_QOS)
    budget_pub = peer.create_publisher(AtpBudget, '/sage/budget', 10)
    state_pub = peer.create_publisher(MetabolicState, '/sage/metabolic_state', LATCHED_QOS)
    assert spin_until(ex, lambda: img_pub.get_subscription_count() > 0, 5.0)

    budget = AtpBudget(tick=1, allocations=[AtpAllocation(plugin='other', atp=50.0),
                                            AtpAllocation(plugin='vision_encoder', atp=3.0)])
    budget_pub.publish(budget)
    spin_until(ex, lambda: node.account.available() is not None, 2.0)
    frame = demo_frame(0)
    good = Image(height=224, width=224, encoding='rgb8', step=224 * 3, data=frame.tobytes())
    good.header.stamp.sec = 42
    bad = Image(height=224, width=224, encoding='rgb8', step=224 * 3, data=bytes(100))
    # The node keeps only the newest frame (depth 1): send the bad one and let it be handled
    # before the good one, or the good one would replace it in the queue.
    img_pub.publish(bad)
    assert spin_until(ex, lambda: node.health.counters.get('bad_input'), 4.0)
    img_pub.publish(good)
    assert spin_until(ex, lambda: latents, 8.0)
    msg = latents[0]
    assert (msg.grid_height, msg.grid_width, len(msg.codes)) == (30, 30, 900)
    assert msg.header.stamp.sec == 42 and msg.modality == 'vision'
    assert tuple(msg.feature_names) == VISION_FEATURES
    assert msg.preview_format == 'webp' and len(msg.embedding) == 32
    assert msg.iterations == 3 and msg.halt_reason == 'budget'  # allocation 3 ATP
    assert node.account.available() == 0.0
    assert spin_until(ex, lambda: any('bad image' in s.message for d in diags
                                       for s in d.status), 4.0)
    assert node.health.counters['bad_input'] == 1

    state_pub.publish(MetabolicState(state='DREAM', memory_pressure='green'))
    assert spin_until(ex, lambda: node.suspended, 4.0)
    assert not node.core.model.loaded
    img_pub.publish(good)
    spin_until(ex, lambda: node.health.counters.get('skipped_suspended'), 2.0)
    assert len(latents) == 1
    ex.remove_node(node)
    node.destroy_node()
    peer.destroy_node()


def test_audio_node_turns_frames_into_window_latents(ros) -> None:
    ctx, ex = ros
    node = AudioEncoderNode(context=ctx)
    peer = rclpy.create_node('peer', context=ctx)
    ex.add_node(node)
    ex.add_node(peer)
    latents: list = []
    peer.create_subscription(Latent, '/sage/audio/latent', latents.append, 50)
    pub = peer.create_publisher(AudioFrame, '/sage/audio/frames', SENSOR_QOS)
    assert spin_until(ex, lambda: pub.get_subscription_count() > 0, 5.0)
    t = np.arange(512 * 40) / 16000.0
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype('<i2')
    for i in range(40):  # 40 x 512 = 20480 samples: one window + one hop
        f = AudioFrame(sample_rate=16000, channels=1, encoding='S16LE',
                       data=pcm[i * 512:(i + 1) * 512].tobytes())
        # 102.4 s lies on the 256 ms hop grid, so the first window starts at the first frame.
        ns = 102_400_000_000 + i * 32_000_000
        f.header.stamp.sec, f.header.stamp.nanosec = ns // 10**9, ns % 10**9
        pub.publish(f)
        ex.spin_once(timeout_sec=0.01)
    wrong = AudioFrame(sample_rate=44100, channels=1, encoding='S16LE', data=bytes(1024))
    pub.publish(wrong)
    assert spin_until(ex, lambda: len(latents) >= 2
                       and node.health.counters.get('bad_input'), 8.0)
    first = latents[0]
    assert first.header.stamp.sec == 102 and first.header.stamp.nanosec == 400_000_000
    assert (first.grid_height, first.grid_width) == (16, 16)
    names = list(first.feature_names)
    assert tuple(names) == FEATURES
    assert first.features[0] == pytest.approx(0.3 / np.sqrt(2), rel=0.02)
    assert latents[1].header.stamp.nanosec == 656_000_000  # hop 4096 samples = 256 ms
    assert first.preview_format == 'wav'
    assert len(decode_audio(bytes(first.preview), 'wav')[0]) >= 4000  # 0.5 s at 8 kHz
    # A steady tone is no voice, and /diagnostics says the detector runs.
    assert first.features[names.index('voice')] < 0.3
    assert node.health.values['voice'] == 'on'
    ex.remove_node(node)
    node.destroy_node()
    peer.destroy_node()


def test_vision_node_begins_the_next_frame_while_the_last_is_refined(ros) -> None:
    """With irp.publish_initial the refinement runs on a thread of its own: a frame sent
    while the previous one is still being refined (a long refinement here: 16 candidates
    per cell, ATP for 60 steps, no target) has its latent before refinement out first, so
    its salience does not wait for the other frame's steps; both refined latents follow."""
    ctx, ex = ros
    slow = {'irp.publish_initial': True, 'irp.candidates': 16, 'irp.max_iterations': 60,
            'irp.default_atp': 60.0, 'irp.target': 0.0, 'irp.eps': 0.0, 'irp.k': 50}
    node = VisionEncoderNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in slow.items()])
    peer = rclpy.create_node('peer', context=ctx)
    ex.add_node(node)
    ex.add_node(peer)
    arrived: list[tuple[str, int]] = []
    peer.create_subscription(Latent, '/sage/vision/latent',
                             lambda m: arrived.append(('refined', m.input_seq)), 10)
    peer.create_subscription(Latent, '/sage/vision/latent_initial',
                             lambda m: arrived.append(('initial', m.input_seq)), 10)
    img_pub = peer.create_publisher(Image, '/sage/camera/image_raw', SENSOR_QOS)
    assert spin_until(ex, lambda: img_pub.get_subscription_count() > 0, 5.0)
    for seq in (0, 1):
        frame = demo_frame(seq)
        img_pub.publish(Image(height=224, width=224, encoding='rgb8', step=224 * 3,
                              data=frame.tobytes()))
        assert spin_until(ex, lambda: ('initial', seq) in arrived, 8.0)
    assert spin_until(ex, lambda: len(arrived) == 4, 30.0)
    assert arrived[:2] == [('initial', 0), ('initial', 1)], arrived
    assert sorted(arrived[2:]) == [('refined', 0), ('refined', 1)]
    assert node.health.counters['published'] == 2
    ex.remove_node(node)
    node.close()
    node.destroy_node()
    peer.destroy_node()


@pytest.mark.parametrize('module', ['vision_encoder_node', 'audio_encoder_node',
                                    'language_encoder_node'])
def test_encoder_node_modules_do_not_import_torch(module) -> None:
    code = (f'import sys, sage_encoders.{module}, sage_encoders.{module.replace("_node", "")}'
            "_params; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'
