"""Frames (issue 52, item 4): the profile names the robot's base frame and each sensor's frame
and pose; the frames node publishes them on tf_static as tf2's static broadcaster does
(reliable, transient local: a listener that joins late still gets them); a --set or a runtime
parameter change moves a pose and the message follows; the viz markers sit in the base frame.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from sage_bringup.frames_core import quaternion_from_rpy, static_transforms, TF_STATIC_TOPIC
from sage_bringup.frames_params import SENSOR_FRAMES
from sage_bringup.profile import load_profile, ProfileError
from sage_common.errors import ParamError
from sage_common.ros import LATCHED_QOS

WAIT_S = 20.0  # discovery on a loaded 2-core machine


def _rotate(q: tuple[float, float, float, float], v: tuple[float, float, float]) -> np.ndarray:
    x, y, z, w = q
    m = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return m @ np.asarray(v)


def test_rpy_turns_about_fixed_axes_and_the_optical_frame_looks_forward():
    assert quaternion_from_rpy(0.0, 0.0, 0.0) == (0.0, 0.0, 0.0, 1.0)
    assert _rotate(quaternion_from_rpy(0.0, 0.0, math.pi / 2), (1, 0, 0)) \
        == pytest.approx([0, 1, 0], abs=1e-9)  # yaw: x turns to y
    assert _rotate(quaternion_from_rpy(math.pi / 2, 0.0, 0.0), (0, 1, 0)) \
        == pytest.approx([0, 0, 1], abs=1e-9)  # roll: y turns to z
    # The shipped camera pose is an optical frame: z (the view) along the base's x, x (image
    # right) along -y, y (image down) along -z.
    camera = static_transforms(load_profile('nano').node('frames').parameters)[0]
    assert camera.child == 'camera_optical_frame'
    for optical, base in (((0, 0, 1), [1, 0, 0]), ((1, 0, 0), [0, -1, 0]),
                          ((0, 1, 0), [0, 0, -1])):
        assert _rotate(camera.rotation, optical) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize('name', ['nano', 'thor', 'workstation'])
def test_each_profile_places_every_sensor_under_the_base_frame_the_markers_use(name):
    prof = load_profile(name)
    frames = prof.node('frames').parameters
    assert prof.node('viz').parameters['frame_id'] == frames['base_frame'] == 'base_link'
    assert prof.node('foxglove').parameters['frame_id'] == frames['base_frame']
    for sensor in SENSOR_FRAMES:  # the frame each sensor's messages carry is the one placed
        assert prof.node(sensor).parameters['frame_id'] == frames[f'{sensor}.frame']


def test_a_sensor_frame_no_transform_reaches_is_refused_before_anything_starts():
    with pytest.raises(ProfileError, match="camera.frame_id is 'cam' but frames.camera.frame "
                                           "is 'camera_optical_frame'"):
        load_profile('nano', ['camera.frame_id=cam'])
    # renamed on both sides, or on a driver backend (the driver's frame ids), it is accepted
    load_profile('nano', ['camera.frame_id=cam', 'frames.camera.frame=cam'])
    load_profile('nano', ['imu.frame_id=imu', 'imu.backend=ros'])
    with pytest.raises(ParamError, match='named twice'):
        load_profile('nano', ['frames.imu.frame=base_link'])
    with pytest.raises(ParamError, match="frames: parameter 'camera.z': 12.0 is above"):
        load_profile('nano', ['frames.camera.z=12'])


def test_frames_node_publishes_every_profile_frame_latched_and_follows_a_change(ros_domain):
    # lazy: keeps ROS messages out of the pure tests above
    from tf2_msgs.msg import TFMessage
    from sage_bringup.frames_node import FramesNode
    prof = load_profile('nano', ['frames.camera.x=0.3', 'frames.imu.yaw=1.0'])
    values = prof.node('frames').parameters
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    frames = FramesNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in values.items()])
    test = Node('frames_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(frames)
    executor.add_node(test)
    got: list = []

    def spin_until(cond) -> bool:
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end and not cond():
            executor.spin_once(timeout_sec=0.05)
        return cond()

    try:
        # subscribed after the node published: transient local hands over the message
        test.create_subscription(TFMessage, TF_STATIC_TOPIC, got.append, LATCHED_QOS)
        assert spin_until(lambda: got)
        first = {t.child_frame_id: t for t in got[-1].transforms}
        frames.set_parameters([Parameter('microphone.z', value=0.5)])  # as ros2 param set
        assert spin_until(lambda: len(got) >= 2)
        moved = {t.child_frame_id: t for t in got[-1].transforms}
        refused = frames.set_parameters([Parameter('camera.roll', value=4.0)])[0]
    finally:
        executor.shutdown()
        frames.destroy_node()
        test.destroy_node()
        rclpy.try_shutdown(context=context)

    assert set(first) == {'camera_optical_frame', 'microphone', 'imu_link'}
    for want in static_transforms(values):
        t = first[want.child]
        assert t.header.frame_id == 'base_link'
        tr, rot = t.transform.translation, t.transform.rotation
        assert (tr.x, tr.y, tr.z) == pytest.approx(want.translation)
        assert (rot.x, rot.y, rot.z, rot.w) == pytest.approx(want.rotation)
    assert first['camera_optical_frame'].transform.translation.x == pytest.approx(0.3)  # --set
    imu = first['imu_link'].transform.rotation  # yaw 1.0 rad about z
    assert (imu.z, imu.w) == pytest.approx((math.sin(0.5), math.cos(0.5)))
    assert moved['microphone'].transform.translation.z == pytest.approx(0.5)
    assert moved['camera_optical_frame'].transform.translation.x == pytest.approx(0.3)
    assert not refused.successful and 'camera.roll' in refused.reason
