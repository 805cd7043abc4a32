"""Microphone node: publishes /sage/audio/frames (sage_interfaces/AudioFrame, 16 kHz S16LE).

Thin shell: parameters from microphone_params, blocks from audio_backends, AudioPipeline for
mixing, resampling and framing, a CaptureRunner thread that publishes each frame as soon as
its last sample exists, stamped with the capture time of its first sample.
"""
from __future__ import annotations

import math
import sys

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from sage_common.convert import set_stamp
from sage_common.errors import SageError
from sage_common.health import Level
from sage_common.ros import SENSOR_QOS, declare_params, run
from sage_common.stamps import to_sec
from sage_common.vocabulary import Topic
from sage_interfaces.msg import AudioFrame

from sage_sensors.audio_backends import AudioCommonAudio, make_microphone
from sage_sensors.audio_core import AudioBlock, AudioPipeline
from sage_sensors.driver_topics import TopicTypeWatch, driver_qos
from sage_sensors.errors import SensorError
from sage_sensors.microphone_params import PARAMS, validate
from sage_sensors.ros_audio import decode_audio_stamped
from sage_sensors.shell import SensorNode
from sage_sensors.start_hold import StartHold

FRAMES_TOPIC = Topic.AUDIO_FRAMES
#: The audio_common types the backend reads, as the graph names them: the 4.x family, then the
#: Humble-era stamped and unstamped ones.
AUDIO_STAMPED = 'audio_common_msgs/msg/AudioStamped'
AUDIO_DATA_STAMPED = 'audio_common_msgs/msg/AudioDataStamped'
AUDIO_DATA = 'audio_common_msgs/msg/AudioData'


class MicrophoneNode(SensorNode):
    """Publishes fixed-size audio frames from the configured backend."""

    def __init__(self, **kwargs) -> None:
        super().__init__('microphone', **kwargs)
        self._cfg = declare_params(self, PARAMS, validate, self._on_change)
        self._pipeline = AudioPipeline(int(self._cfg['sample_rate']),
                                       int(self._cfg['frame_samples']),
                                       float(self._cfg['gain']))
        source = make_microphone(self._cfg, self._cmap, self._stop, self.get_logger().info)
        if isinstance(source, AudioCommonAudio):
            self._subscribe_audio_common(source)
        self._pub = self.create_publisher(AudioFrame, FRAMES_TOPIC, SENSOR_QOS)
        self._frame_id = str(self._cfg['frame_id'])
        self._hold: StartHold[AudioFrame] = StartHold(math.ceil(
            float(self._cfg['hold_s']) * int(self._cfg['sample_rate'])
            / int(self._cfg['frame_samples'])))
        self._start_capture(source, self._publish, make_microphone)
        self.get_logger().info(
            f"microphone: {source.name} -> {FRAMES_TOPIC} at {self._cfg['sample_rate']} Hz, "
            f"{self._cfg['frame_samples']} samples per frame")

    def _subscribe_audio_common(self, source: AudioCommonAudio) -> None:
        """audio_common backend: the capturer's topic in either message family (its type
        found on the graph unless audio_type says), and AudioInfo for the Humble-era one."""
        try:
            # lazy: audio_common_msgs is optional (the 'audio_common' backend only)
            import audio_common_msgs.msg as acm
        except ImportError as err:
            raise SensorError("parameter 'backend': audio_common needs audio_common_msgs, "
                              'which is not installed') from err
        topic, wanted = str(self._cfg['audio_topic']), str(self._cfg['audio_type'])
        feed = self._driver_feed()
        feed.watch(topic)
        qos = driver_qos(int(self._cfg['driver.depth']))

        def report(err: SageError) -> None:      # malformed input: report and keep running
            self.health.count('bad_messages')
            self.health.problem(Level.WARN, f'bad audio_common message on {topic}: {err}')

        def need_info() -> None:           # Humble era: the bytes mean nothing without it
            waiting = source.waiting_for_info if source.info is None else 0
            self.health.condition('audio_info', Level.WARN, (
                f"no AudioInfo on {self._cfg['info_topic']} yet: {waiting} messages not "
                'decoded') if waiting else '')

        def on_stamped(msg) -> None:       # 4.x: AudioStamped, the format in every message
            stamp = to_sec(msg.header.stamp)
            feed.message(topic, stamp)
            try:
                samples, rate = decode_audio_stamped(msg.audio)
                source.push_samples(samples, rate, stamp)
            except SageError as err:
                report(err)
            self.health.values['silence_filled_samples'] = str(source.filled)

        def on_data_stamped(msg) -> None:  # Humble era: AudioDataStamped + AudioInfo
            stamp = to_sec(msg.header.stamp)
            feed.message(topic, stamp)
            try:
                source.push(bytes(msg.audio.data), stamp)
            except SageError as err:
                report(err)
            self.health.values['silence_filled_samples'] = str(source.filled)
            need_info()

        def on_data(msg) -> None:          # Humble era, unstamped: arrival - duration
            feed.message(topic, 0.0)
            try:
                source.push(bytes(msg.data), 0.0)
            except SageError as err:
                report(err)
            need_info()

        families = {AUDIO_STAMPED: (acm.AudioStamped, on_stamped),
                    AUDIO_DATA_STAMPED: (acm.AudioDataStamped, on_data_stamped),
                    AUDIO_DATA: (acm.AudioData, on_data)}

        def subscribe(type_name: str) -> None:
            msg_type, callback = families[type_name]
            self._driver_subs.append(self.create_subscription(msg_type, topic, callback, qos))
            self.health.values['audio_common'] = type_name
            self.get_logger().info(f'microphone: reading {type_name} from {topic}')
            if type_name != AUDIO_STAMPED:
                self._subscribe_info(acm.AudioInfo, source)

        if wanted == 'auto':
            self._type_watch = TopicTypeWatch(self, topic, tuple(families), subscribe,
                                              self.health)
        else:
            subscribe(f'audio_common_msgs/msg/{wanted}')

    def _subscribe_info(self, info_type, source: AudioCommonAudio) -> None:
        info_topic = str(self._cfg['info_topic'])
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        # audio_capture latches AudioInfo in some versions and not in others: listen to both
        self._driver_subs += [self.create_subscription(info_type, info_topic, source.set_info, q)
                              for q in (latched, 10)]

    def _publish(self, block: AudioBlock) -> None:
        for frame in self._pipeline.push(block):
            msg = AudioFrame(sample_rate=frame.sample_rate, channels=1, encoding='S16LE')
            set_stamp(msg.header, frame.stamp)
            msg.header.frame_id = self._frame_id
            msg.data = frame.data
            for out in self._hold.take(msg, *self._readers()):
                self._pub.publish(out)
                self.health.count('published')
                self.health.latency('capture_to_publish',
                                    (self._cmap.now() - to_sec(out.header.stamp)) * 1e3)
            if not self._hold.released or self._hold.dropped:
                self.health.values['held_at_start_dropped'] = str(self._hold.dropped)
            self.health.values['peak'] = f'{frame.peak:.3f}'
        self.health.values['resyncs'] = str(self._pipeline.resyncs)

    def _readers(self) -> tuple[bool, bool]:
        """(the reader the hold waits for is matched, any reader is); no graph query once
        the hold is over."""
        if self._hold.released:
            return True, True
        anyone = self._pub.get_subscription_count() > 0
        wanted = str(self._cfg['hold_for'])
        if not wanted or not anyone:
            return anyone, anyone
        infos = self.get_subscriptions_info_by_topic(self._pub.topic_name)
        return any(i.node_name == wanted for i in infos), anyone

    def _on_change(self, values: dict) -> None:
        self._pipeline.gain = float(values['gain'])


def main(args=None) -> int:
    return run(lambda: MicrophoneNode(), args)


if __name__ == '__main__':
    sys.exit(main())
