"""Vision encoder node: /sage/camera/image_raw -> /sage/vision/latent."""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
import sys
from typing import Any

from sage_common.convert import latent_to_msg
from sage_common.health import Level
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sage_common.ros import RELIABLE_QOS, run, stamp_sec
from sage_common.stamps import cdr_header_stamp
from sage_common.mailbox_params import FRAME_REF_TOPIC
from sage_common.vocabulary import Topic
from sage_interfaces.msg import FrameRef, Latent
from sensor_msgs.msg import Image

from sage_encoders.errors import InputError
from sage_encoders.frame_source import FrameDropped, MailboxFrames
from sage_encoders.node_base import EncoderNodeBase
from sage_encoders.preprocess import rgb_from_buffer
from sage_encoders.refine_worker import SALIENCE_FIRST
from sage_encoders.vision_core import VisionEncoderCore
from sage_encoders.vision_encoder_params import PARAMS, validate


# Only the newest frame matters: a queue of older ones adds latency when encoding lags the
# camera (measured: ~300 ms behind capture with a depth of 5), and old FrameRefs point at slots
# the camera already reuses.
LATEST_ONLY_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                             history=HistoryPolicy.KEEP_LAST)
# Frames remembered as taken: more than the mailbox's slots, so a frame's Image, however late
# beside its FrameRef, is still recognised.
TAKEN_STAMPS = 16


class VisionEncoderNode(EncoderNodeBase):
    """Encodes camera frames into puzzle latents."""

    def __init__(self, name: str = 'vision_encoder', **node_kwargs: Any) -> None:
        super().__init__(name, PARAMS, validate, follow_models='vision', **node_kwargs)
        self.pub = self.create_publisher(Latent, Topic.VISION_LATENT, RELIABLE_QOS)
        self.early = self.initial_publisher('vision')
        self.refiner = self.refine_worker(self._publish_refined)
        self.frames: MailboxFrames | None = None
        # Stamps of the newest frames taken: with the mailbox on, a frame may come both ways
        # (the camera's reduced-rate Image of a frame it also wrote to shared memory); the
        # first to arrive is encoded, the other skipped.
        self.taken: deque[float] = deque(maxlen=TAKEN_STAMPS)
        if self.values['mailbox.enabled']:
            # The camera's frames arrive in shared memory; Image messages still come from
            # `sage bag play` or a graph whose camera keeps the mailbox off.
            try:
                self.frames = MailboxFrames(int(self.values['mailbox.lease_ms']))
            except ImportError as err:  # not built here: the camera sends Images then
                self.health.condition('mailbox', Level.WARN, 'mailbox.enabled but '
                                      f'sage_cuda_mailbox is not built ({err})')
        if self.frames is not None:
            self.create_subscription(FrameRef, FRAME_REF_TOPIC, self._on_frame_ref,
                                     LATEST_ONLY_QOS)
        # serialized: a frame already taken through the mailbox is skipped by its stamp alone
        self.create_subscription(Image, Topic.CAMERA_IMAGE, self._on_image_data,
                                 LATEST_ONLY_QOS, raw=True)
        self.serve_inputs('vision')

    def make_core(self, values: Mapping[str, Any]) -> VisionEncoderCore:
        return VisionEncoderCore.from_params(values, log=self.log_line)

    def _encode(self, rgb: Any, stamp: float) -> Any:
        """The frame encoded (no refiner), or begun (the refiner refines it; its steps wait
        meanwhile)."""
        if self.refiner is None:
            return self.core.encode(rgb, stamp, self.seq, self.account.available(),
                                    self.early)
        with SALIENCE_FIRST.busy():
            return self.core.begin(rgb, stamp, self.seq, self.early)

    def _first_time(self, stamp: float) -> bool:
        """True for a frame not taken yet; it is taken from now on."""
        if self.frames is None:
            return True
        if stamp in self.taken:
            self.health.count('frames_both_ways')
            return False
        self.taken.append(stamp)
        return True

    def _on_image_data(self, data: bytes) -> None:
        try:
            stamp = cdr_header_stamp(data)
            msg = deserialize_message(data, Image) if self._first_time(stamp) else None
        except Exception as err:  # noqa: BLE001 - any undecodable message is a bad input
            self.accept()
            self.report_error('image', InputError(f'undecodable Image message: {err}'))
            return
        if msg is not None:
            self._on_image(msg)

    def _on_image(self, msg: Image) -> None:
        if not self.accept():
            return

        def encode() -> Any:
            rgb = rgb_from_buffer(msg.data, msg.width, msg.height, msg.step, msg.encoding)
            return self._encode(rgb, stamp_sec(msg))

        self.frame_id = msg.header.frame_id
        self._publish(self.guarded('image', encode), msg.header.frame_id)

    def _on_frame_ref(self, msg: FrameRef) -> None:
        if not self._first_time(stamp_sec(msg)) or not self.accept():
            return

        def encode() -> Any:
            try:
                with self.frames.read(msg) as rgb:
                    return self._encode(rgb, stamp_sec(msg))
            except FrameDropped:
                self.health.count('stale_frames')  # we lag the camera: skip, not an error
                return None

        self.frame_id = msg.header.frame_id
        self._publish(self.guarded('frame_ref', encode), msg.header.frame_id)

    def _publish(self, out: Any, frame_id: str) -> None:
        if out is None:
            return
        self.seq += 1
        if self.refiner is not None:
            self.refiner.submit((out, frame_id))
        else:
            self._publish_refined(out, frame_id)

    def _publish_refined(self, rec: Any, frame_id: str) -> None:
        self.pub.publish(latent_to_msg(rec, frame_id))
        self.after_encode(rec)


def main(args: list[str] | None = None) -> int:
    """Entry point (sage launch / ros2 run)."""
    return run(lambda: VisionEncoderNode(), args)


if __name__ == '__main__':
    sys.exit(main())
