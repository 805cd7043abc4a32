"""Parameters of the foxglove node, the live view (pure: the launcher checks profile values
against them)."""
from __future__ import annotations

from collections.abc import Mapping

from sage_common.params import ParamSpec, ParamValue

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('enabled', True,
              'serve the Foxglove live view (false: no server and no subscriptions; can be '
              'switched at run time)'),
    ParamSpec('host', '',
              "address the WebSocket server listens on ('' = 127.0.0.1, or every interface "
              'when the graph is open to the LAN: sage launch --multi-host)', read_only=True),
    ParamSpec('port', 8765, 'WebSocket port (0 = any free port, reported on /diagnostics)',
              0, 65535, read_only=True),
    ParamSpec('camera_rate_hz', 10.0, 'most camera frames a second sent as JPEG', 0.5, 30.0),
    ParamSpec('jpeg_quality', 75, 'JPEG quality of the camera channel', 10, 100),
    ParamSpec('camera_max_width', 640,
              'wider camera frames are scaled down to this width before JPEG encoding', 160,
              3840),
    ParamSpec('salience_rate_hz', 30.0,
              'most salience messages a second sent per modality (IMU scores come faster)',
              1.0, 500.0),
    ParamSpec('budget_rate_hz', 10.0, 'most ATP budget messages a second', 0.5, 100.0),
    ParamSpec('image_rate_hz', 2.0, 'puzzle grid images a second', 0.1, 15.0),
    ParamSpec('scene_rate_hz', 4.0, '3D scene (salience markers) updates a second', 0.2, 30.0),
    ParamSpec('memory_rate_hz', 1.0, 'memory summary messages a second', 0.1, 10.0),
    ParamSpec('cell_px', 8, 'pixels per puzzle cell in the puzzle images', 1, 32),
    ParamSpec('window_s', 1.0, 'scene bars show the mean salience over this many seconds',
              0.1, 60.0),
    ParamSpec('frame_id', 'base_link', "frame of the 3D scene: the robot's base frame "
              '(frames.base_frame)'),
    ParamSpec('log_level', 'info', 'least severe /rosout level forwarded to the log channel',
              choices=('debug', 'info', 'warn', 'error', 'fatal')),
    ParamSpec('message_backlog', 1024,
              'messages buffered per client; the oldest is dropped when a slow client falls '
              'behind', 16, 65536, read_only=True),
    ParamSpec('parameter_timeout_s', 2.0,
              "how long a parameter read or write from Foxglove waits for the nodes' answers",
              0.1, 30.0),
    ParamSpec('diagnostics_period_s', 1.0, '/diagnostics publish period', 0.1, 10.0,
              read_only=True),
)


def validate(values: Mapping[str, ParamValue]) -> list[str]:
    """Cross-field rules: the scene frame must be named."""
    if not str(values['frame_id']).strip():
        return ['frame_id must not be empty']
    return []
