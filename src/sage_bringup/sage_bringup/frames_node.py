"""Frames node: the profile's sensor frames and poses as static transforms on tf_static.

Publishes one tf2_msgs/TFMessage (base frame -> each sensor frame) with the QoS of tf2's
static broadcaster (reliable, transient local, depth 1: a late listener still gets it), again
whenever a frame parameter changes, and /diagnostics.
"""
from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from tf2_msgs.msg import TFMessage

from sage_bringup.frames_core import StaticTransform, TF_STATIC_TOPIC, static_transforms
from sage_bringup.frames_params import PARAMS, validate
from sage_common.health import Health
from sage_common.ros import LATCHED_QOS, DiagnosticsPublisher, declare_params, run


class FramesNode(Node):
    """Thin shell around frames_core: parameters in, one latched TFMessage out."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('frames', **kwargs)
        self.health = Health()
        self.values = declare_params(self, PARAMS, validate, self._on_params)
        self.pub = self.create_publisher(TFMessage, TF_STATIC_TOPIC, LATCHED_QOS)
        self.diagnostics = DiagnosticsPublisher(self, self.health,
                                                float(self.values['diagnostics_period_s']))
        self.publish()

    def _on_params(self, values: dict) -> None:
        self.values = values
        self.publish()

    def publish(self) -> None:
        """The current frames, stamped now (static transforms hold for all time). With
        enabled false an empty message replaces the last one for late listeners."""
        transforms = static_transforms(self.values) if self.values['enabled'] else []
        stamp = self.get_clock().now().to_msg()
        self.pub.publish(TFMessage(transforms=[self._msg(t, stamp) for t in transforms]))
        self.health.count('published')

    @staticmethod
    def _msg(transform: StaticTransform, stamp: Any) -> TransformStamped:
        msg = TransformStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = transform.parent
        msg.child_frame_id = transform.child
        t = msg.transform.translation
        t.x, t.y, t.z = transform.translation
        r = msg.transform.rotation
        r.x, r.y, r.z, r.w = transform.rotation
        return msg


def main(args: list[str] | None = None) -> int:
    return run(lambda: FramesNode(), args)


if __name__ == '__main__':
    sys.exit(main())
