"""The encoders' ring of newest inputs (what sleep retrains on): cores, and the vision node's
EncoderInput service over a real ROS graph."""
from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image

from sage_encoders.audio_core import AudioEncoderCore
from sage_encoders.data import demo_frame, skimage_rgb
from sage_encoders.input_ring import (InputRing, int16_samples, jpeg_input, kept_frame,
                                      kept_window, s16le_zlib_input)
from sage_encoders.preprocess import preprocess_rgb, scale_rgb
from sage_encoders.vision_core import VisionEncoderCore, exposed_rgb
from sage_common.ros import SENSOR_QOS, spin_until
from sage_encoders.vision_encoder_node import VisionEncoderNode
from sage_interfaces.msg import Latent
from sage_interfaces.srv import EncoderInput


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def _decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_vision_core_serves_the_model_input_frame_of_a_photo_as_jpeg(vision_params) -> None:
    pytest.importorskip('skimage')

    photo = skimage_rgb('coffee')  # a real 400x600 photo
    assert photo.shape == (400, 600, 3)
    core = VisionEncoderCore.from_params(vision_params)
    rec = core.encode(photo, 1795.125, 12)
    # What the model saw before scaling: the photo squashed to 240x240 by area averaging,
    # then brightened by the exposure normalisation (the photo is darker than its target).
    squashed = cv2.resize(photo, (240, 240), interpolation=cv2.INTER_AREA)
    assert np.array_equal(scale_rgb(squashed), preprocess_rgb(photo, 240))
    gain = core._gain(rec.features['brightness'])
    assert gain > 1.05
    expected = exposed_rgb(squashed, gain)

    ans = core.inputs.lookup(rec.stamp, rec.input_seq)
    assert ans.found, ans.message
    assert (ans.format, ans.width, ans.height) == ('jpeg', 240, 240)
    assert (ans.sample_rate, ans.samples) == (0, 0)
    img = _decode_jpeg(ans.data)
    assert img.shape == (240, 240, 3)
    assert _psnr(img, expected) >= 35.0
    # Not the raw frame: sleep would retrain on frames darker than the model is ever given.
    assert _psnr(img, squashed) < 30.0
    # RGB order kept: the channels swapped would be far off on this brown-and-white photo.
    assert _psnr(img[:, :, ::-1], expected) < 30.0
    assert 'input_seq 12 at 1795.125 s' in ans.message


def test_jpeg_quality_parameter_sets_the_size_and_fidelity_of_the_frame(vision_params) -> None:
    pytest.importorskip('skimage')

    photo = cv2.resize(skimage_rgb('astronaut'), (240, 240), interpolation=cv2.INTER_AREA)
    low, high = jpeg_input(photo, 30), jpeg_input(photo, 95)
    assert len(low.data) < len(high.data)
    assert _psnr(_decode_jpeg(low.data), photo) < _psnr(_decode_jpeg(high.data), photo)
    core = VisionEncoderCore.from_params({**vision_params, 'training_input.jpeg_quality': 30,
                                          'exposure.target': 0.0})  # kept as it came
    core.encode(photo, 5.0, 0)
    assert core.inputs.lookup(5.0, 0).data == low.data
    core.set_training_input({'training_input.keep': 32, 'training_input.jpeg_quality': 95})
    assert core.inputs.lookup(5.0, 0).data == high.data


def test_vision_frame_at_input_size_is_copied_not_aliased(vision_params) -> None:
    frame = demo_frame(3, 240, 240)  # already at input size: no resize, the caller's buffer
    kept = frame.copy()
    core = VisionEncoderCore.from_params({**vision_params, 'exposure.target': 0.0})
    core.encode(frame, 7.0, 0)
    frame[:] = 0  # the camera reuses its mailbox slot
    img = _decode_jpeg(core.inputs.lookup(7.0, 0).data)
    assert _psnr(img, kept) >= 30.0  # synthetic hard edges: JPEG's worst case
    assert _psnr(img, frame) < 15.0


def _tone_with_noise(n: int) -> np.ndarray:
    t = np.arange(n) / 16000.0
    rng = np.random.default_rng(5)
    x = 0.4 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(n)
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def test_audio_core_serves_the_int16_windows_it_encoded(audio_params) -> None:
    core = AudioEncoderCore.from_params(audio_params)
    pcm = _tone_with_noise(16384 + 2 * 4096)
    # 102.4 s is on the 256 ms hop grid: window k starts at sample k * 4096.
    recs = core.push(pcm, 102.4, 16000)
    assert [r.input_seq for r in recs] == [0, 1, 2]
    for k, rec in enumerate(recs):
        ans = core.inputs.lookup(rec.stamp, rec.input_seq)
        assert ans.found, ans.message
        assert (ans.format, ans.sample_rate, ans.samples) == ('s16le-zlib', 16000, 16384)
        assert (ans.width, ans.height) == (0, 0)
        got = np.frombuffer(zlib.decompress(ans.data), '<i2')
        assert np.array_equal(got, pcm[k * 4096:k * 4096 + 16384])
    # The FIFO buffer the windows were views of moves on; the kept windows do not.
    core.push(_tone_with_noise(4096) // 2, 102.4 + len(pcm) / 16000, 16000)
    got = np.frombuffer(zlib.decompress(core.inputs.lookup(recs[0].stamp, 0).data), '<i2')
    assert np.array_equal(got, pcm[:16384])


def test_float_windows_in_unit_range_become_int16_clipped() -> None:
    x = np.array([0.0, 0.5, -0.5, -1.0, 1.0, 1.7, -3.0, 12 / 32768], np.float32)
    assert int16_samples(x).tolist() == [0, 16384, -16384, -32768, 32767, 32767, -32768, 12]
    ans = s16le_zlib_input(x, 16000)
    assert ans.samples == 8
    assert np.frombuffer(zlib.decompress(ans.data), '<i2').tolist()[:3] == [0, 16384, -16384]
    wide = np.array([40000, -40000, 7], np.int32)
    assert int16_samples(wide).tolist() == [32767, -32768, 7]


def _ring(keep: int) -> InputRing:
    return InputRing(keep, lambda a: s16le_zlib_input(a, 16000))


def test_ring_keeps_exactly_the_newest_n() -> None:
    ring = _ring(3)
    for seq in range(5):
        ring.put(seq, 100.0 + seq * 0.033, np.full(4, seq, np.int16))
    assert len(ring) == 3
    for seq in range(2, 5):
        ans = ring.lookup(100.0 + seq * 0.033, seq)
        assert ans.found and np.frombuffer(zlib.decompress(ans.data), '<i2').tolist() == [seq] * 4
    old = ring.lookup(100.033, 1)
    assert not old.found
    assert old.message == ('input_seq 1 at 100.033 s is older than the 3 inputs kept '
                           '(oldest: input_seq 2)')
    assert not ring.lookup(200.0, 9).found
    ring.resize(1)  # the newest stays
    assert len(ring) == 1 and ring.lookup(100.132, 4).found and not ring.lookup(100.099, 3).found


def test_right_seq_with_wrong_stamp_is_not_found() -> None:
    ring = _ring(8)
    ring.put(12, 1795.1, np.zeros(4, np.int16))
    assert ring.lookup(1795.1 + 0.0004, 12).found  # stamp round-trip noise is tolerated
    for stamp in (1795.1 + 0.005, 1795.1 - 0.033, 1000.0):
        ans = ring.lookup(stamp, 12)
        assert not ans.found and 'restarted' in ans.message


def test_keep_zero_serves_nothing(vision_params) -> None:
    core = VisionEncoderCore.from_params({**vision_params, 'training_input.keep': 0})
    core.encode(demo_frame(1), 3.0, 0)
    assert len(core.inputs) == 0 and not core.inputs.enabled
    ans = core.inputs.lookup(3.0, 0)
    assert not ans.found and 'training_input.keep 0' in ans.message


def test_vision_node_answers_encoder_input_for_a_published_frame(ros_domain) -> None:
    rclpy = pytest.importorskip('rclpy')

    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    ex = SingleThreadedExecutor(context=ctx)
    node = VisionEncoderNode(context=ctx)
    peer = rclpy.create_node('memory_peer', context=ctx)
    try:
        ex.add_node(node)
        ex.add_node(peer)
        latents: list = []
        peer.create_subscription(Latent, '/sage/vision/latent', latents.append, 10)
        img_pub = peer.create_publisher(Image, '/sage/camera/image_raw', SENSOR_QOS)
        client = peer.create_client(EncoderInput, '/sage/vision/encoder_input')
        assert spin_until(ex, lambda: img_pub.get_subscription_count() > 0
                           and client.service_is_ready(), 5.0)
        frame = demo_frame(4, 300, 400)
        img = Image(height=300, width=400, encoding='rgb8', step=400 * 3, data=frame.tobytes())
        img.header.stamp.sec, img.header.stamp.nanosec = 1795, 123_456_789
        img_pub.publish(img)
        assert spin_until(ex, lambda: latents, 8.0)
        lat = latents[0]

        def call(stamp, seq):
            req = EncoderInput.Request(stamp=stamp, input_seq=seq)
            future = client.call_async(req)
            assert spin_until(ex, future.done, 5.0)
            return future.result()

        resp = call(lat.header.stamp, lat.input_seq)
        assert resp.found, resp.message
        assert (resp.format, resp.width, resp.height) == ('jpeg', 240, 240)
        got = _decode_jpeg(bytes(resp.data))
        # What the model was given: the frame at 240x240, exposure normalised (the unit test
        # above checks model_frame against the gain by hand).
        expected = node.core.model_frame(frame)
        assert got.shape == (240, 240, 3) and _psnr(got, expected) >= 35.0

        miss = call(lat.header.stamp, lat.input_seq + 5)
        assert not miss.found and not miss.data and miss.format == ''
        assert f'input_seq {lat.input_seq + 5} at 1795.123 s' in miss.message
        assert node.health.counters['training_inputs_served'] == 1
        assert node.health.counters['training_inputs_not_found'] == 1
        assert node.health.snapshot().values['training_inputs_not_found'] == '1'
    finally:
        ex.shutdown()
        node.destroy_node()
        peer.destroy_node()
        rclpy.shutdown(context=ctx)


def test_a_stored_input_decodes_back_to_what_the_ring_kept() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    rgb[:, :20] = (200, 30, 30)  # a flat block: JPEG keeps its colour, so channels show
    ans = jpeg_input(rgb, 95)
    back = kept_frame(ans.format, ans.data)
    assert back.shape == rgb.shape and back.dtype == np.uint8
    assert np.abs(back[4:20, 4:16].astype(int) - (200, 30, 30)).max() < 8  # RGB, not BGR
    pcm = _tone_with_noise(1000)
    ans = s16le_zlib_input(pcm, 16000)
    assert np.array_equal(kept_window(ans.format, ans.data, ans.sample_rate, 16000, 1000), pcm)
    # Shorter: zero padded at the start; longer: its newest samples.
    assert np.array_equal(kept_window(ans.format, ans.data, 0, 16000, 1200),
                          np.concatenate([np.zeros(200, np.int16), pcm]))
    assert np.array_equal(kept_window(ans.format, ans.data, 16000, 16000, 300), pcm[-300:])
    for bad in (lambda: kept_frame('s16le-zlib', ans.data), lambda: kept_frame('jpeg', b''),
                lambda: kept_frame('jpeg', b'not a jpeg'),
                lambda: kept_window('jpeg', ans.data, 16000, 16000, 10),
                lambda: kept_window(ans.format, ans.data, 8000, 16000, 10),
                lambda: kept_window(ans.format, b'torn', 16000, 16000, 10),
                lambda: kept_window(ans.format, zlib.compress(b'odd'), 16000, 16000, 10)):
        with pytest.raises(ValueError):
            bad()
