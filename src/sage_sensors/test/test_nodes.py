"""Node tests: the three nodes publish real messages; bad parameters exit 2 naming them."""
import importlib.util
import os
import subprocess
import sys

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, Imu
import soundfile as sf
from sage_common.ros import SENSOR_QOS, spin_until
from sage_common.stamps import to_sec
from sage_interfaces.msg import AudioFrame
from sage_sensors.camera_node import CameraNode
from sage_sensors.imu_node import ImuNode
from sage_sensors.microphone_node import MicrophoneNode

# The run's domain block (root conftest) plus this file's own offset (and the next).
DOMAIN = int(os.environ.get('SAGE_TEST_DOMAIN_BASE', '90')) + 14


@pytest.fixture()
def ros_context(monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN)
    yield context
    rclpy.try_shutdown(context=context)


def test_the_three_nodes_publish_stamped_sensor_messages(ros_context, samples_dir, tmp_path):
    wav = tmp_path / 'tone.wav'
    t = np.arange(44100) / 44100
    sf.write(str(wav), 0.5 * np.sin(2 * np.pi * 1000 * t), 44100)
    data = Parameter('data_dir', value=str(samples_dir))
    nodes = [
        CameraNode(context=ros_context, parameter_overrides=[
            data, Parameter('width', value=64), Parameter('height', value=48)]),
        MicrophoneNode(context=ros_context, parameter_overrides=[
            data, Parameter('backend', value='file'), Parameter('path', value=str(wav))]),
        ImuNode(context=ros_context, parameter_overrides=[data]),
    ]
    listener = rclpy.create_node('listener', context=ros_context)
    got = {k: [] for k in ('image', 'info', 'audio', 'imu', 'diag')}
    for kind, msg_type, topic in (('image', Image, '/sage/camera/image_raw'),
                                  ('info', CameraInfo, '/sage/camera/camera_info'),
                                  ('audio', AudioFrame, '/sage/audio/frames'),
                                  ('imu', Imu, '/sage/imu/data')):
        listener.create_subscription(msg_type, topic, got[kind].append, SENSOR_QOS)
    listener.create_subscription(DiagnosticArray, '/diagnostics', got['diag'].append, 50)
    executor = SingleThreadedExecutor(context=ros_context)
    for n in (*nodes, listener):
        executor.add_node(n)
    try:
        spin_until(executor, lambda: len(got['image']) >= 10 and len(got['audio']) >= 10
                    and len(got['imu']) >= 50 and len(got['diag']) >= 3, timeout=12.0)
    finally:
        for n in nodes:
            n.close()
            n.destroy_node()
        listener.destroy_node()
        executor.shutdown()

    img = got['image'][-1]
    assert (img.width, img.height, img.encoding, img.step) == (64, 48, 'rgb8', 192)
    assert len(img.data) == 64 * 48 * 3
    stamps = np.array([to_sec(m.header.stamp) for m in got['image']])
    assert np.all(np.diff(stamps) > 0)
    assert np.allclose(np.diff(stamps) * 30.0, np.round(np.diff(stamps) * 30.0), atol=1e-3)
    info = got['info'][-1]
    assert (info.width, info.height) == (64, 48) and info.k[8] == 1.0

    frame = got['audio'][-1]
    assert (frame.sample_rate, frame.channels, frame.encoding) == (16000, 1, 'S16LE')
    assert len(frame.data) == 1024
    pcm = np.frombuffer(bytes(frame.data), '<i2') / 32767
    assert np.max(np.abs(pcm)) == pytest.approx(0.5, abs=0.02)
    audio_stamps = np.array([to_sec(m.header.stamp) for m in got['audio']])
    assert np.allclose(np.diff(audio_stamps), 0.032, atol=1e-4)

    imu = got['imu'][-1]
    # The scene lies still but for its scripted shake, which a slow run reaches: the median
    # sample is at rest (a last sample inside the shake read 9.57).
    z = np.median([m.linear_acceleration.z for m in got['imu']])
    assert z == pytest.approx(9.80665, abs=0.1)
    assert imu.orientation_covariance[0] > 0 and imu.angular_velocity_covariance[0] > 0
    assert abs(imu.orientation.w) == pytest.approx(1.0, abs=0.05)

    names = {s.name for d in got['diag'] for s in d.status}
    assert {'sage: camera', 'sage: microphone', 'sage: imu'} <= names


@pytest.mark.parametrize('module,args,name', [
    ('camera_node', ['-p', 'fps:=-30.0'], "'fps'"),
    ('camera_node', ['-p', 'backend:=kinect'], "'backend'"),
    ('microphone_node', ['-p', 'backend:=file', '-p', 'path:=/no/such.wav'], "'path'"),
])
def test_bad_parameters_end_the_process_with_exit_2_naming_the_parameter(module, args, name):
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN + 1),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    proc = subprocess.run([sys.executable, '-m', f'sage_sensors.{module}', '--ros-args', *args],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert 'ERROR:' in proc.stderr and name in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec('audio_common_msgs') is None,
                    reason='audio_common_msgs is not installed')
def test_audio_common_capture_is_republished_as_frames(ros_context):
    # lazy: audio_common_msgs is optional (the test skips without it)
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo

    node = MicrophoneNode(context=ros_context, parameter_overrides=[
        Parameter('backend', value='audio_common'),
        Parameter('audio_topic', value='/audio/audio_stamped')])
    talker = rclpy.create_node('audio_capture', context=ros_context)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    info_pub = talker.create_publisher(AudioInfo, 'audio/audio_info', latched)
    audio_pub = talker.create_publisher(AudioDataStamped, 'audio/audio_stamped', 10)
    info_pub.publish(AudioInfo(channels=1, sample_rate=48000, sample_format='S16LE',
                               bitrate=0, coding_format='wave'))
    got = []
    talker.create_subscription(AudioFrame, '/sage/audio/frames', got.append, SENSOR_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(talker)
    pcm = (np.full(1536, 0.25) * 32767).astype('<i2').tobytes()
    try:
        for i in range(60):
            msg = AudioDataStamped()
            msg.header.stamp.sec, msg.header.stamp.nanosec = 100, i * 32_000_000
            msg.audio.data = pcm
            audio_pub.publish(msg)
            spin_until(executor, lambda: False, 0.03)
    finally:
        node.close()
        node.destroy_node()
        talker.destroy_node()
        executor.shutdown()
    assert got and got[-1].sample_rate == 16000 and len(got[-1].data) == 1024
    pcm = np.frombuffer(bytes(got[-1].data), '<i2') / 32767
    assert pcm.mean() == pytest.approx(0.25, abs=0.01)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got]
    assert 100.0 < stamps[-1] < 102.0 and np.allclose(np.diff(stamps), 0.032, atol=1e-4)
