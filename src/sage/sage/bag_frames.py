"""Every camera frame in a bag, also when the camera hands frames over by shared memory.

With the frame mailbox on, the camera writes each frame to shared memory, publishes a FrameRef
for it, and sends Image messages only at `mailbox.image_rate_hz` (for viewers). A FrameRef is
no use in a bag (it points into this machine's shared memory), so while `sage bag record`
runs, the camera is asked for an Image of every frame (`mailbox.image_rate_hz` at its
maximum) and given its own rate back when the recording ends. A recording's duration counts
from when every camera found so sends every frame (`pending`), so a bag of N seconds holds N
seconds of every frame however long the camera took to answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Any

from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter

from sage_common.mailbox_params import IMAGE_RATE

RATE_PARAM = IMAGE_RATE.name
EVERY_FRAME_HZ = float(IMAGE_RATE.max_value)  # its upper bound: above any camera's frame rate
RESTORE_TIMEOUT_S = 2.0


def _node_name(info: Any) -> str:
    ns = info.node_namespace.rstrip('/')
    return f'{ns}/{info.node_name}'


@dataclass
class _Camera:
    get: Any  # GetParameters client
    put: Any  # SetParameters client
    asked: bool = False          # its rate was asked for
    rate: float | None = None    # the rate it had (known once it answered)
    raised: bool = False         # asked for every frame
    settled: bool = False        # answered that request, or cannot be asked


@dataclass
class FullRateImages:
    """Raises the image rate of each camera publishing FrameRefs; `restore` undoes it.

    Requests go out from `poll` (called periodically from the recorder's executor) once the
    camera's parameter services are discovered: a request sent before that is lost."""

    node: Any
    say: Any  # callable(str)
    cameras: dict[str, _Camera] = field(default_factory=dict)

    def camera_found(self, publishers: list[Any]) -> None:
        """Note each FrameRef publisher (a camera); `poll` asks it."""
        for info in publishers:
            name = _node_name(info)
            if name not in self.cameras:
                self.cameras[name] = _Camera(
                    self.node.create_client(GetParameters, f'{name}/get_parameters'),
                    self.node.create_client(SetParameters, f'{name}/set_parameters'))
        self.poll()

    def poll(self) -> None:
        """Ask each camera whose services are up for its rate, then for every frame."""
        for name, cam in self.cameras.items():
            if not cam.asked and cam.get.service_is_ready():
                cam.asked = True
                future = cam.get.call_async(GetParameters.Request(names=[RATE_PARAM]))
                future.add_done_callback(lambda f, name=name: self._got_rate(name, f))
            elif cam.rate is not None and not cam.raised and cam.put.service_is_ready():
                cam.raised = True
                future = cam.put.call_async(_set_rate(EVERY_FRAME_HZ))
                future.add_done_callback(lambda f, cam=cam: setattr(cam, 'settled', True))
                self.say(f'[bag] {name} sends frames by shared memory: asked for an Image of '
                         f'every frame while recording (its {RATE_PARAM} {cam.rate:g} is given '
                         'back at the end)')

    def _got_rate(self, name: str, future: Any) -> None:
        values = getattr(future.result(), 'values', None)
        if not values or values[0].type != ParameterType.PARAMETER_DOUBLE:
            self.say(f'[bag] {name} sends frames by shared memory and has no {RATE_PARAM}: '
                     'the bag holds the images it sends')
            self.cameras[name].settled = True
            return
        self.cameras[name].rate = values[0].double_value
        self.poll()

    def pending(self) -> bool:
        """Whether a camera found has not yet answered the request for every frame."""
        return any(not cam.settled for cam in self.cameras.values())

    def restore(self, spin_once: Any) -> None:
        """Give each camera its own image rate back (spin_once(timeout) runs the executor)."""
        pending = {name: cam.put.call_async(_set_rate(cam.rate))
                   for name, cam in self.cameras.items() if cam.raised and cam.rate is not None}
        deadline = time.monotonic() + RESTORE_TIMEOUT_S
        while not all(f.done() for f in pending.values()) and time.monotonic() < deadline:
            spin_once(0.05)
        for name, future in pending.items():
            if not future.done():
                self.say(f'[bag] {name} did not answer: set {RATE_PARAM} back to '
                         f'{self.cameras[name].rate:g} yourself (sage param set)')


def _set_rate(hz: float) -> Any:
    return SetParameters.Request(parameters=[Parameter(RATE_PARAM, value=float(hz))
                                             .to_parameter_msg()])
