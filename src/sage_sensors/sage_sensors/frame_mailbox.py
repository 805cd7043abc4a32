"""Camera side of the frame mailbox: write frames to shared memory, FrameRef on DDS.

The mailbox (sage_cuda_mailbox) is imported only when the profile enables it, so the camera
runs where the compiled module is not built.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rclpy.node import Node
from sage_interfaces.msg import FrameRef

from sage_common.convert import set_stamp
from sage_common.health import Level
from sage_common.mailbox_params import default_segment, FRAME_REF_TOPIC
from sage_common.ros import SENSOR_QOS
from sage_sensors.errors import SensorError


class FrameMailbox:
    """Writes each frame once into an FTM segment and publishes its FrameRef."""

    def __init__(self, node: Node, segment: str, slots: int, max_bytes: int,
                 image_rate_hz: float) -> None:
        # lazy: keeps the compiled mailbox out of this module's import
        from sage_cuda_mailbox import FrameWriter, MailboxError
        self._errors = MailboxError
        try:
            self._writer = FrameWriter(segment, slots=slots, max_bytes=max_bytes)
        except MailboxError as err:
            raise SensorError(f"parameter 'mailbox.segment': cannot create '{segment}': "
                              f'{err}') from err
        self._node = node
        self._pub = node.create_publisher(FrameRef, FRAME_REF_TOPIC, SENSOR_QOS)
        self._image_period: float | None = None
        self.set_image_rate(image_rate_hz)
        self._next_image = -1.0

    def set_image_rate(self, hz: float) -> None:
        """Image messages per second beside the FrameRefs from the next frame on (0: none)."""
        self._image_period = 1.0 / hz if hz > 0 else None

    @classmethod
    def from_params(cls, node: Node, values: Mapping[str, Any]) -> FrameMailbox | None:
        """None when the profile keeps frames on the Image topic, or the mailbox module is
        not built here (then every frame goes as an Image, and /diagnostics says so)."""
        if not values['mailbox.enabled']:
            return None
        try:
            # lazy: keeps the compiled mailbox out of this module's import
            import sage_cuda_mailbox  # noqa: F401
        except ImportError as err:
            node.health.condition('mailbox', Level.WARN,
                                  f'mailbox.enabled but sage_cuda_mailbox is not built ({err}): '
                                  'every frame goes as an Image')
            node.get_logger().warning(f'sage_cuda_mailbox not built ({err}): frames as Images')
            return None
        max_bytes = int(values['width']) * int(values['height']) * 3
        segment = str(values['mailbox.segment']) or default_segment(
            node.context.get_domain_id(), node.get_namespace())
        return cls(node, segment, int(values['mailbox.slots']), max_bytes,
                   float(values['mailbox.image_rate_hz']))

    def publish(self, rgb: np.ndarray, stamp: float, frame_id: str) -> bool:
        """Write the frame and publish its FrameRef.

        Returns:
            True when an Image should be published too: its reduced rate is due, or the
            mailbox refused the frame (then the Image path carries it).
        """
        health = self._node.health
        try:
            desc = self._writer.write(rgb, stamp)
        except self._errors as err:
            health.count('mailbox_refused')
            health.problem(Level.WARN, f'mailbox refused a frame ({err}); sent as Image')
            return True
        ref = FrameRef(segment=desc.segment, slot=desc.slot, sequence=desc.sequence,
                       width=desc.width, height=desc.height, step=desc.step,
                       encoding=desc.encoding)
        set_stamp(ref.header, stamp)
        ref.header.frame_id = frame_id
        self._pub.publish(ref)
        health.count('frame_refs')
        if self._image_period is None or stamp < self._next_image:
            return False
        following = self._next_image + self._image_period
        # Keep the rate's phase unless we fell more than a period behind (first frame, pause).
        self._next_image = following if following > stamp else stamp + self._image_period
        return True

    def close(self) -> None:
        self._writer.close()
