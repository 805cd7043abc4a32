"""Camera node: publishes /sage/camera/image_raw (rgb8) and /sage/camera/camera_info.

Thin shell: parameters from camera_params, frames from camera_backends, a CaptureRunner
thread that publishes each frame stamped at capture. With the `ros` backend it subscribes to
the robot's camera driver (Image or CompressedImage, and its CameraInfo, passed on). `fps` may
change at run time (the orchestrator's metabolic states and memory-pressure caps set it): it
passes the same checks as at start and re-times capture, or restarts it where the backend
cannot re-time.
"""
from __future__ import annotations

import sys
from typing import Any

from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sage_common.convert import set_stamp
from sage_common.health import Level
from sage_common.ros import SENSOR_QOS, declare_params, run
from sage_common.stamps import to_sec
from sage_common.vocabulary import Topic

from sage_sensors.camera_backends import CameraFrame, make_camera, nominal_intrinsics
from sage_sensors.camera_params import PARAMS, validate
from sage_sensors.driver_topics import TopicTypeWatch, driver_qos
from sage_sensors.frame_mailbox import FrameMailbox
from sage_sensors.ros_camera import RosImageSource, raw_image, scale_intrinsics
from sage_sensors.shell import SensorNode

IMAGE_TOPIC = Topic.CAMERA_IMAGE
INFO_TOPIC = Topic.CAMERA_INFO
#: The driver message types the ros backend reads, as the graph names them.
IMAGE_TYPE, COMPRESSED_TYPE = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'


class CameraNode(SensorNode):
    """Publishes camera frames from the configured backend."""

    def __init__(self, **kwargs) -> None:
        super().__init__('camera', **kwargs)
        self._cfg = declare_params(self, PARAMS, validate, self._on_params)
        source = make_camera(self._cfg, self._cmap, self._stop, self.get_logger().info)
        self._image_pub = self.create_publisher(Image, IMAGE_TOPIC, SENSOR_QOS)
        self._mailbox = FrameMailbox.from_params(self, self._cfg)
        self._info_pub = self.create_publisher(CameraInfo, INFO_TOPIC, SENSOR_QOS)
        self._info = self._camera_info()
        self._driver_info: CameraInfo | None = None
        if isinstance(source, RosImageSource):
            self._subscribe_driver(source)
        self._start_capture(source, self._publish, make_camera)
        self.health.values['fps'] = f"{self._cfg['fps']:g}"
        self.get_logger().info(
            f"camera: {source.name} {self._cfg['width']}x{self._cfg['height']} "
            f"at {self._cfg['fps']} Hz -> {IMAGE_TOPIC}")

    def _on_params(self, values: dict[str, Any]) -> None:
        """An accepted parameter change (already checked): apply a new frame rate and the
        mailbox's image rate."""
        old, fps = float(self._cfg['fps']), float(values['fps'])
        self._cfg = values
        if self._mailbox is not None:
            self._mailbox.set_image_rate(float(values['mailbox.image_rate_hz']))
        if fps == old or self._runner is None:
            return
        in_place = self._runner.set_rate(fps)
        self.health.values['fps'] = f'{fps:g}'
        self.get_logger().info(f"camera: fps {old:g} -> {fps:g} "
                               f"({'re-timed' if in_place else 'restarting capture'})")

    def _camera_info(self) -> CameraInfo:
        w, h = int(self._cfg['width']), int(self._cfg['height'])
        k = nominal_intrinsics(w, h, float(self._cfg['hfov_deg']))
        info = CameraInfo(width=w, height=h, distortion_model='plumb_bob')
        info.header.frame_id = str(self._cfg['frame_id'])
        info.d = [0.0] * 5
        info.k = k
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def _subscribe_driver(self, source: RosImageSource) -> None:
        """ros backend: the driver's image topic (its type found on the graph unless told)
        and its CameraInfo."""
        topic, transport = str(self._cfg['topic']), str(self._cfg['transport'])
        feed = self._driver_feed()
        feed.watch(topic)
        source.on_bad = lambda message: self.health.problem(Level.WARN, message)
        qos = driver_qos(int(self._cfg['driver.depth']))

        def subscribe(type_name: str) -> None:
            compressed = type_name == COMPRESSED_TYPE

            def on_image(msg: Any) -> None:
                stamp = to_sec(msg.header.stamp)
                feed.message(topic, stamp)
                source.push(raw_image(msg, compressed, stamp if stamp > 0 else self._cmap.now()))
            self._driver_subs.append(self.create_subscription(
                CompressedImage if compressed else Image, topic, on_image, qos))
            self.get_logger().info(f'camera: reading {type_name} from {topic}')

        if transport == 'auto' and topic.rstrip('/').endswith('/compressed'):
            transport = 'compressed'
        if transport == 'auto':
            self._type_watch = TopicTypeWatch(self, topic, (IMAGE_TYPE, COMPRESSED_TYPE),
                                              subscribe, self.health)
        else:
            subscribe(COMPRESSED_TYPE if transport == 'compressed' else IMAGE_TYPE)
        info_topic = str(self._cfg['info_topic'])
        if info_topic:
            self._driver_subs.append(self.create_subscription(
                CameraInfo, info_topic, self._on_driver_info, driver_qos(2)))

    def _on_driver_info(self, msg: CameraInfo) -> None:
        """The driver's calibration, restated for the published size (K and P scaled)."""
        w, h = int(self._cfg['width']), int(self._cfg['height'])
        if msg.width <= 0 or msg.height <= 0:
            self.health.problem(Level.WARN, 'driver CameraInfo without a size: not passed on')
            return
        info = CameraInfo(width=w, height=h, distortion_model=msg.distortion_model)
        info.header.frame_id = msg.header.frame_id or self._info.header.frame_id
        info.d = list(msg.d)
        info.r = list(msg.r)
        info.k, info.p = scale_intrinsics(list(msg.k), list(msg.p), w / msg.width,
                                          h / msg.height)
        self._driver_info = info
        self.health.values['camera_info'] = f'driver ({msg.width}x{msg.height})'

    def _publish(self, frame: CameraFrame) -> None:
        info = self._driver_info or self._info
        frame_id = frame.frame_id or info.header.frame_id
        if self._mailbox is not None and not self._mailbox.publish(frame.rgb, frame.stamp,
                                                                   frame_id):
            return  # the frame went through the mailbox and no Image is due
        h, w = frame.rgb.shape[:2]
        msg = Image(height=h, width=w, encoding='rgb8', is_bigendian=0, step=w * 3)
        set_stamp(msg.header, frame.stamp)
        msg.header.frame_id = frame_id
        msg.data = frame.rgb.tobytes()      # bytes, never the ndarray (52 ms vs 0.04 ms)
        self._image_pub.publish(msg)
        info.header.stamp = msg.header.stamp
        self._info_pub.publish(info)
        self.health.count('published')
        self.health.latency('capture_to_publish', (self._cmap.now() - frame.stamp) * 1e3)

    def close(self) -> None:
        """Stop the capture thread and release the device and the mailbox."""
        super().close()
        if self._mailbox is not None:
            self._mailbox.close()


def main(args=None) -> int:
    return run(lambda: CameraNode(), args)


if __name__ == '__main__':
    sys.exit(main())
