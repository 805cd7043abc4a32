"""The robot-driver backends' pure parts: every image encoding a driver publishes, compressed
frames, CameraInfo scaling, the camera and IMU sources fed by a subscription, both audio_common
families' samples, and what the driver watch says about gaps, silence and units."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sage_sensors.audio_backends import AudioCommonAudio
from sage_sensors.audio_core import AudioPipeline
from sage_sensors.driver_watch import DriverWatch, ImuUnitCheck
from sage_sensors.errors import StreamError
from sage_sensors.imu_core import ImuReading
from sage_sensors.pacing import ClockMap
from sage_sensors.ros_audio import decode_audio_stamped
from sage_sensors.ros_camera import (RawImage, RosImageSource, compressed_to_rgb, image_to_rgb,
                                     scale_intrinsics)
from sage_sensors.ros_imu import RosImuSource, driver_orientation

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def _yuyv_of(rgb):
    """Packed YUYV of an RGB image (BT.601 studio swing, chroma averaged over the pair)."""
    f = rgb.astype(float)
    y = 16 + 0.257 * f[..., 0] + 0.504 * f[..., 1] + 0.098 * f[..., 2]
    u = 128 - 0.148 * f[..., 0] - 0.291 * f[..., 1] + 0.439 * f[..., 2]
    v = 128 + 0.439 * f[..., 0] - 0.368 * f[..., 1] - 0.071 * f[..., 2]
    out = np.empty(rgb.shape[:2] + (2,))
    out[..., 0] = y
    out[:, 0::2, 1] = (u[:, 0::2] + u[:, 1::2]) / 2
    out[:, 1::2, 1] = (v[:, 0::2] + v[:, 1::2]) / 2
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize('encoding,payload', [
    ('rgb8', RGB), ('bgr8', RGB[..., ::-1]),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])),
])
def test_colour_encodings_give_the_same_rgb(encoding, payload):
    data = np.ascontiguousarray(payload).tobytes()
    out = image_to_rgb(6, 8, encoding, 8 * payload.shape[2], data)
    assert out.shape == (6, 8, 3) and np.array_equal(out, RGB)


def test_padded_rows_are_read_by_their_step():
    padded = np.zeros((6, 8 * 3 + 8), np.uint8)
    padded[:, :24] = RGB.reshape(6, 24)
    assert np.array_equal(image_to_rgb(6, 8, 'rgb8', 32, padded.tobytes()), RGB)


def test_mono8_and_mono16_in_both_byte_orders():
    grey = RGB[..., 0]
    assert np.array_equal(image_to_rgb(6, 8, 'mono8', 8, grey.tobytes()),
                          np.repeat(grey[..., None], 3, axis=2))
    wide = grey.astype(np.uint16) * 256 + 77
    for order, big in (('<u2', False), ('>u2', True)):
        out = image_to_rgb(6, 8, 'mono16', 16, wide.astype(order).tobytes(), big)
        assert np.array_equal(out[..., 1], grey)


@pytest.mark.parametrize('encoding', ['yuv422_yuy2', 'yuyv'])
def test_yuyv_as_usb_cam_publishes_it_comes_back_close_to_the_photo(encoding):
    photo = cv2.GaussianBlur(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8), (7, 7), 3)
    out = image_to_rgb(32, 32, encoding, 64, _yuyv_of(photo).tobytes())
    # 4:2:2 halves the chroma: smooth content comes back within a few levels
    assert np.abs(out.astype(int) - photo).mean() < 4


def test_yuv422_is_uyvy_byte_order():
    # image_encodings' "yuv422" is U Y0 V Y1; a pure red in BT.601 studio swing
    uyvy = np.tile(np.array([90, 81, 240, 81], np.uint8), (2, 2))
    for encoding in ('yuv422', 'uyvy'):
        out = image_to_rgb(2, 4, encoding, 8, uyvy.tobytes())
        assert np.abs(out.astype(int) - (255, 0, 0)).max() <= 3


def test_bad_images_are_refused_with_the_reason():
    with pytest.raises(StreamError, match='not handled'):
        image_to_rgb(2, 2, '32FC1', 8, bytes(16))
    with pytest.raises(StreamError, match='does not fit'):
        image_to_rgb(6, 8, 'rgb8', 24, bytes(100))
    with pytest.raises(StreamError, match='odd'):
        image_to_rgb(2, 3, 'yuv422_yuy2', 6, bytes(12))


def test_jpeg_and_png_decode_and_depth_is_refused():
    photo = cv2.GaussianBlur(RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8), (9, 9), 4)
    bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    png = cv2.imencode('.png', bgr)[1].tobytes()
    assert np.array_equal(compressed_to_rgb('bgr8; png compressed bgr8', png), photo)
    jpg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert np.abs(compressed_to_rgb('rgb8; jpeg compressed bgr8', jpg).astype(int)
                  - photo).mean() < 3
    with pytest.raises(StreamError, match='depth'):
        compressed_to_rgb('16UC1; compressedDepth png', png)
    with pytest.raises(StreamError, match='decode'):
        compressed_to_rgb('jpeg', b'not an image')


def test_intrinsics_scale_with_the_published_size():
    k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    p = [500.0, 0.0, 320.0, 5.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    k2, p2 = scale_intrinsics(k, p, 0.35, 0.5)
    assert k2 == pytest.approx([175.0, 0.0, 112.0, 0.0, 255.0, 120.0, 0.0, 0.0, 1.0])
    assert p2 == pytest.approx([175.0, 0.0, 112.0, 1.75, 0.0, 255.0, 120.0, 0.0,
                                0.0, 0.0, 1.0, 0.0])


def _raw(stamp, value=0):
    data = np.full((4, 4, 3), value, np.uint8).tobytes()
    return RawImage(stamp, 'cam', 'rgb8', data, 4, 4, 12)


def test_camera_source_keeps_the_newest_frame_stamp_and_frame_id():
    src = RosImageSource('/camera/image_raw', 8, 6, 30.0)
    src.open()
    src.push(_raw(10.0, 1))
    src.push(_raw(10.033, 2))             # replaces the unread one
    frame = src.read()
    assert src.dropped == 1 and frame.stamp == 10.033 and frame.frame_id == 'cam'
    assert frame.rgb.shape == (6, 8, 3) and frame.rgb[0, 0, 0] == 2
    assert src.read() is None              # nothing new: waits, then None


def test_camera_source_paces_a_faster_driver_to_fps_by_stamp():
    src = RosImageSource('/camera/image_raw', 4, 4, 10.0)
    src.open()
    kept = 0
    for i in range(60):                    # 2 s of a 30 Hz driver
        src.push(_raw(100.0 + i / 30))
        kept += src.read() is not None
    assert 19 <= kept <= 22
    src.set_rate(30.0)
    kept = 0
    for i in range(60, 90):
        src.push(_raw(100.0 + i / 30))
        kept += src.read() is not None
    assert kept == 30


def test_a_bad_message_is_told_and_skipped_not_the_end_of_the_stream():
    src = RosImageSource('/camera/image_raw', 4, 4, 30.0)
    told = []
    src.on_bad = told.append
    src.push(RawImage(1.0, 'cam', 'rgb8', bytes(5), 4, 4, 12))
    assert src.read() is None and src.bad == 1 and 'does not fit' in told[0]
    src.push(_raw(1.1))
    assert src.read() is not None


def test_imu_source_hands_readings_over_in_order_and_counts_overflow():
    src = RosImuSource('/imu/data', capacity=3)
    src.open()
    for i in range(5):
        src.push(ImuReading(float(i), np.zeros(3), np.zeros(3)))
    assert src.dropped == 2
    assert [src.read().stamp for _ in range(3)] == [2.0, 3.0, 4.0]
    assert src.read() is None


def test_driver_orientation_unknown_or_normalised():
    assert driver_orientation((0, 0, 0, 1), [-1.0] + [0.0] * 8) is None
    assert driver_orientation((0, 0, 0, 0), [0.0] * 9) is None
    q = driver_orientation((0, 0, 0, 2), [0.01] + [0.0] * 8)
    assert q.tolist() == [0, 0, 0, 1]


def _audio(fmt, channels, rate, **arrays):
    fields = {f: arrays.get(f, []) for f in ('float32_data', 'int32_data', 'int16_data',
                                              'int8_data', 'uint8_data')}
    return SimpleNamespace(info=SimpleNamespace(format=fmt, channels=channels, rate=rate,
                                                chunk=0),
                           audio_data=SimpleNamespace(**fields))


@pytest.mark.parametrize('fmt,field,values,expected', [
    (8, 'int16_data', [16384, -16384, 0, 32767], [0.5, -0.5, 0.0, 32767 / 32768]),
    (1, 'float32_data', [0.25, -1.0, 0.5, 0.0], [0.25, -1.0, 0.5, 0.0]),
    (2, 'int32_data', [2 ** 30, -2 ** 30, 0, 0], [0.5, -0.5, 0.0, 0.0]),
    (16, 'int8_data', [64, -64, 0, -128], [0.5, -0.5, 0.0, -1.0]),
    (32, 'uint8_data', [192, 64, 128, 0], [0.5, -0.5, 0.0, -1.0]),
])
def test_every_4x_sample_format_decodes_interleaved(fmt, field, values, expected):
    samples, rate = decode_audio_stamped(_audio(fmt, 2, 48000, **{field: values}))
    assert rate == 48000 and samples.shape == (2, 2) and samples.dtype == np.float32
    assert samples.reshape(-1).tolist() == pytest.approx(expected)


def test_4x_audio_problems_are_named():
    with pytest.raises(StreamError, match='rate'):
        decode_audio_stamped(_audio(8, 1, 0, int16_data=[1]))
    with pytest.raises(StreamError, match='whole frames'):
        decode_audio_stamped(_audio(8, 2, 16000, int16_data=[1, 2, 3]))
    with pytest.raises(StreamError, match='float32_data'):
        decode_audio_stamped(_audio(8, 1, 16000, float32_data=[0.1]))
    # an unknown flag is read from the one array that holds samples
    samples, _ = decode_audio_stamped(_audio(99, 1, 16000, int16_data=[16384]))
    assert samples[0, 0] == 0.5


def test_driver_watch_counts_a_gap_with_its_missing_messages():
    watch = DriverWatch('/imu/data', gap_factor=1.8, silent_s=2.0)
    stamps = [100 + i * 0.005 for i in range(20)] + [100 + i * 0.005 for i in range(25, 40)]
    gaps = [g for i, s in enumerate(stamps) if (g := watch.message(s, float(i))) is not None]
    assert watch.gaps == 1 and watch.missing == 5 and gaps[0].period_s == pytest.approx(0.005)
    assert watch.values()['driver_rate_hz'] == '200.00'
    watch.message(100.0, 40.0)               # a stamp going back: out of order, not a gap
    assert watch.out_of_order == 1 and watch.gaps == 1


def test_jitter_below_the_factor_is_no_gap_and_unstamped_messages_are_counted():
    watch = DriverWatch('/audio')
    t = 0.0
    for i in range(100):
        t += 0.0107 * (1.3 if i % 2 else 0.7)
        watch.message(t, t)
    watch.message(0.0, t)
    assert watch.gaps == 0 and watch.unstamped == 1


def test_silence_before_the_first_message_and_after_the_last():
    watch = DriverWatch('/camera/image_raw', silent_s=2.0)
    watch.start(10.0)
    assert watch.silence(11.0) == ''
    assert 'is the driver running' in watch.silence(12.5)
    watch.message(5.0, 13.0)
    assert watch.silence(14.0) == ''
    assert 'silent' in watch.silence(15.5) and '2.5 s' in watch.silence(15.5)


def test_units_in_g_and_degrees_are_told_apart_from_si():
    check = ImuUnitCheck(window_s=1.0)
    still = np.array([0.0, 0.0, 9.81])
    for i in range(250):
        assert check.reading(i / 200, still, np.array([0.0, 0.0, 0.5])) == ''
    assert check.accel_problem == ''
    for i in range(250, 700):                # the same driver switched to g
        check.reading(i / 200, still / 9.81, np.zeros(3))
    assert 'g?' in check.accel_problem and '1.00' in check.accel_problem
    # a 90 deg/s turn published in degrees per second
    assert 'degrees per second' in check.reading(3.6, still, np.array([0.0, 0.0, 90.0]))
    assert check.gyro_suspect == 1


def test_a_lost_audio_message_becomes_silence_so_later_stamps_stay_the_drivers():
    src = AudioCommonAudio('/audio', 512, 16000, ClockMap())
    pipeline = AudioPipeline(16000, 512)
    chunk = 480                                  # 10 ms at 48 kHz
    tone = np.full((chunk, 2), 0.25, np.float32)
    sent = [i for i in range(100) if i not in (40, 41)]    # two messages lost on the way
    for i in sent:
        src.push_samples(tone * (i >= 60), 48000, 100.0 + i * chunk / 48000)
    src.push_samples(tone, 48000, 100.0 + 100 * chunk / 48000 + 0.002)  # jitter: no fill
    blocks = []
    while (block := src.read()) is not None:
        blocks.append(block)
    assert src.filled == 2 * chunk and len(blocks) == len(sent) + 2
    hole = blocks[40]
    assert hole.t_first == pytest.approx(100.4) and not hole.samples.any()
    frames = [f for b in blocks for f in pipeline.push(b)]
    # the tone starts 0.6 s in, and its first loud sample is stamped there (not 20 ms early)
    first = next(f for f in frames if f.peak > 0.2)
    pcm = np.frombuffer(first.data, '<i2')
    onset = first.stamp + int(np.argmax(np.abs(pcm) > 0.2 * 32767)) / 16000
    assert pipeline.resyncs == 0 and onset == pytest.approx(100.6, abs=0.002)
