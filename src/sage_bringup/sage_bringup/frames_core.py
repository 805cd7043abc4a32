"""Sensor frames as static transforms (pure: no rclpy), from the frames node's parameters.

One source for both ways of starting the graph: the frames node is a node of the profile, so
`sage launch` and the launch files (launch/*.launch.py) both start it with the profile's values,
and it publishes `static_transforms(values)` on tf_static as tf2's static broadcaster does.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import math

from sage_bringup.frames_params import ANGLE_AXES, POSITION_AXES, SENSOR_FRAMES
from sage_common.params import ParamValue

# Relative: a namespace (/r1) moves it with the graph, so two robots' base_link never meet on
# one tf tree. Without a namespace it is the /tf_static every tf2 listener reads.
TF_STATIC_TOPIC = 'tf_static'
# Sensor backends that subscribe to the robot's own driver (its messages keep its frame ids).
DRIVER_BACKENDS = ('ros', 'audio_common')


@dataclass(frozen=True)
class StaticTransform:
    """child frame relative to parent: translation (m) and rotation (quaternion x, y, z, w)."""

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]
    rpy: tuple[float, float, float]


def quaternion_from_rpy(roll: float, pitch: float,
                        yaw: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of roll about X, then pitch about Y, then yaw about Z (fixed
    axes), the convention of tf2 and static_transform_publisher."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


def static_transforms(values: Mapping[str, ParamValue]) -> list[StaticTransform]:
    """One transform per sensor, base frame -> sensor frame, in SENSOR_FRAMES order."""
    base = str(values['base_frame'])
    out = []
    for sensor in SENSOR_FRAMES:
        xyz = tuple(float(str(values[f'{sensor}.{a}'])) for a in POSITION_AXES)
        rpy = tuple(float(str(values[f'{sensor}.{a}'])) for a in ANGLE_AXES)
        out.append(StaticTransform(parent=base, child=str(values[f'{sensor}.frame']),
                                   translation=(xyz[0], xyz[1], xyz[2]),
                                   rotation=quaternion_from_rpy(*rpy),
                                   rpy=(rpy[0], rpy[1], rpy[2])))
    return out



def frame_mismatches(values: Mapping[str, Mapping[str, ParamValue]]) -> list[str]:
    """Where a sensor's messages would name a frame the frames node does not publish.

    values: each node's parameters by node name. A sensor on a driver backend (camera and imu
    `ros`, microphone `audio_common`) passes on its driver's frame ids, so only the frames
    parameter names it (nothing to compare); a graph
    without the frames node or without that sensor has nothing to compare either.
    """
    frames = values.get('frames')
    if frames is None or not frames.get('enabled', True):
        return []
    problems = []
    for sensor in SENSOR_FRAMES:
        own = values.get(sensor)
        if own is None or own.get('backend') in DRIVER_BACKENDS or 'frame_id' not in own:
            continue
        if own['frame_id'] != frames[f'{sensor}.frame']:
            problems.append(f"{sensor}.frame_id is '{own['frame_id']}' but frames.{sensor}.frame "
                            f"is '{frames[f'{sensor}.frame']}': set both to the same name")
    return problems
