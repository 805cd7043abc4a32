"""Parameters of the frames node: the robot's base frame and each sensor's frame and pose.

Pure (the launcher checks profile values against them). A pose is the sensor frame relative
to the base frame, as static_transform_publisher takes it: x, y, z in metres, then roll,
pitch, yaw in radians (fixed axes X, Y, Z).
"""
from __future__ import annotations

from collections.abc import Mapping
import math

from sage_common.params import ParamSpec, ParamValue

# The sensors whose frames the profile places, with their default frame names (the sensor
# nodes' frame_id defaults: the names the messages carry).
SENSOR_FRAMES: dict[str, str] = {
    'camera': 'camera_optical_frame',
    'microphone': 'microphone',
    'imu': 'imu_link',
}
POSITION_AXES = ('x', 'y', 'z')
ANGLE_AXES = ('roll', 'pitch', 'yaw')
REACH_M = 10.0  # a sensor further than this from the base is a typo, not a robot


def _sensor_specs(sensor: str, frame: str) -> tuple[ParamSpec, ...]:
    where = f'the {sensor} frame relative to the base frame'
    return (
        ParamSpec(f'{sensor}.frame', frame,
                  f'{sensor} frame id (the one its messages carry: {sensor}.frame_id, or the '
                  f"driver's with a ros backend)"),
        *(ParamSpec(f'{sensor}.{axis}', 0.0, f'{axis} of {where} (m)', -REACH_M, REACH_M)
          for axis in POSITION_AXES),
        *(ParamSpec(f'{sensor}.{axis}', 0.0, f'{axis} of {where} (rad, fixed axes)',
                    -math.pi, math.pi) for axis in ANGLE_AXES),
    )


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('enabled', True, 'publish the sensor frames on tf_static (false: the robot '
              'description, e.g. robot_state_publisher, already does)'),
    ParamSpec('base_frame', 'base_link', "the robot's base frame: parent of every sensor frame "
              'and the frame of the viz markers'),
    *(spec for sensor, frame in SENSOR_FRAMES.items() for spec in _sensor_specs(sensor, frame)),
    ParamSpec('diagnostics_period_s', 1.0, '/diagnostics publish period', 0.1, 10.0,
              read_only=True),
)


def validate(values: Mapping[str, ParamValue]) -> list[str]:
    """Cross-field rules: every frame named, none twice (a tf tree is a tree)."""
    names = [str(values['base_frame']).strip()]
    names += [str(values[f'{s}.frame']).strip() for s in SENSOR_FRAMES]
    errors = [f"{key} must not be empty" for key, name
              in zip(['base_frame', *(f'{s}.frame' for s in SENSOR_FRAMES)], names) if not name]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        errors.append(f"frame {', '.join(twice)} is named twice: the base and each sensor need "
                      f'frames of their own')
    return errors
