"""Foxglove node: the live view of the graph for Foxglove / Lichtblick over a WebSocket.

Serves foxglove.websocket.v1 (the foxglove-sdk server) on 127.0.0.1:8765, or on every interface
when the graph is open to the LAN (sage launch --multi-host). Channels (sage.foxglove_core):
the camera as JPEG at a capped rate, the vision/audio puzzle grids, salience per modality, the
ATP budget, the metabolic state, a memory summary, /diagnostics, the salience markers as a 3D
scene and the nodes' log (/rosout). A graph topic is subscribed only while a channel that needs
it has a subscriber. Foxglove's Parameters panel reads and writes the graph nodes' parameters
through their own parameter services (sage.foxglove_graph_params). `enabled: false` stops the
server and every subscription. Reports clients, messages sent, rate-capped and dropped on
/diagnostics.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcl_interfaces.msg import Log as RosLog, ParameterEvent
from rclpy.node import Node
from rclpy.parameter import parameter_value_to_python
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sage_interfaces.action import Sleep
from sage_interfaces.msg import AtpBudget, Experience, Latent, MetabolicState, Salience
from sensor_msgs.msg import Image

from sage.foxglove_core import (BUDGET_CHANNEL, DIAGNOSTICS_CHANNEL, STATE_CHANNEL,
                                DiagnosticRecord, LiveConfig, LiveCore, LogRecord,
                                SleepFeedbackRecord, Source,
                                camera_jpeg, compressed_image, listen_host, log_message,
                                param_key, salience_channel, wanted_sources)
from sage.foxglove_graph_params import GraphParameters
from sage.foxglove_params import PARAMS, validate
from sage.foxglove_server import LiveServer
from sage.viz_core import budget_from_msg, salience_record, state_from_msg, stored_from_msg
from sage_common.health import Health, Level
from sage_common.ros import LATCHED_QOS, SENSOR_QOS, DiagnosticsPublisher, declare_params, run
from sage_common.stamps import to_sec
from sage_common.vocabulary import PUZZLE_MODALITIES, LiveView, Topic

# A viewer: best effort matches reliable and best-effort publishers alike; drops are harmless.
VIEW_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT,
                      history=HistoryPolicy.KEEP_LAST)
# /rosout keeps each node's last logs (transient local, 10 s lifespan): a viewer that opens
# the log sees what was said just before
LOG_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)
EVENTS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST)
PARAMETER_EVENTS = '/parameter_events'
# an action's feedback is a topic any node may read (rcl_action's naming)
SLEEP_FEEDBACK = f'{Topic.MEMORY_SLEEP_ACTION}/_action/feedback'
RETRY_S = 5.0        # a server that could not listen is tried again after this
RECONCILE_S = 0.5    # how soon a new subscriber gets its graph topics


class FoxgloveNode(Node):
    """Thin shell around LiveCore (what to send) and LiveServer (the SDK's server)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('foxglove', **kwargs)
        self.health = Health()
        self.values = declare_params(self, PARAMS, validate, self._on_params)
        self.core = LiveCore(LiveConfig.from_params(self.values))
        self.params = GraphParameters(self, float(self.values['parameter_timeout_s']),
                                      self._refused)
        self.server: LiveServer | None = None
        self._next_try = 0.0
        self._subs: dict[Source, list[Any]] = {}
        self._events_sub: Any = None
        self._viewers = (0, 0)  # clients, subscribed channels: logged when they change
        self._latest_latent: dict[str, bytes] = {}
        self._output_timers: list[Any] = []
        self.create_timer(RECONCILE_S, self._reconcile)
        self.create_timer(1.0, self._refresh_params)
        self._start_timers()
        self.diagnostics = DiagnosticsPublisher(self, self.health,
                                                float(self.values['diagnostics_period_s']))
        self._reconcile()

    def _start_timers(self) -> None:
        for timer in self._output_timers:
            self.destroy_timer(timer)
        self._output_timers = [
            self.create_timer(1.0 / float(self.values['image_rate_hz']), self._send_images),
            self.create_timer(1.0 / float(self.values['scene_rate_hz']), self._send_scene),
            self.create_timer(1.0 / float(self.values['memory_rate_hz']), self._send_memory)]

    def _on_params(self, values: dict[str, Any]) -> None:
        timers = any(values[k] != self.values[k]
                     for k in ('image_rate_hz', 'scene_rate_hz', 'memory_rate_hz'))
        self.values = values
        self.core.reconfigure(LiveConfig.from_params(values))
        self.params.timeout_s = float(values['parameter_timeout_s'])
        if timers:
            self._start_timers()
        self._next_try = 0.0  # `enabled` may have changed: act on it at the next reconcile

    # server and subscriptions ------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Start or stop the server as `enabled` says; subscribe to what the channels need."""
        if not self.values['enabled']:
            self._stop_server()
            self.health.condition('server', Level.OK, '')
            self.health.values['server'] = 'off (enabled: false)'
        elif self.server is None and time.monotonic() >= self._next_try:
            self._start_server()
        wanted = wanted_sources(self.server.subscribed()) if self.server else set()
        for source in set(self._subs) - wanted:
            for sub in self._subs.pop(source):
                self.destroy_subscription(sub)
        for source in wanted - set(self._subs):
            self._subs[source] = self._subscribe(source)
        params = self.server.parameter_subscriptions() if self.server else set()
        if params and self._events_sub is None:
            self._events_sub = self.create_subscription(ParameterEvent, PARAMETER_EVENTS,
                                                        self._on_parameter_event, EVENTS_QOS)
        elif not params and self._events_sub is not None:
            self.destroy_subscription(self._events_sub)
            self._events_sub = None
        if self.server is not None:
            clients, channels = self.server.clients(), len(self.server.subscribed())
            if (clients, channels) != self._viewers:
                self._viewers = (clients, channels)
                self.get_logger().info(f'live view: {clients} client(s) on {channels} channels')
            self.health.values.update(clients=str(clients), subscribed_channels=str(channels),
                                      graph_inputs=','.join(sorted(s.value for s in self._subs)))

    def _start_server(self) -> None:
        host = listen_host(str(self.values['host']))
        port = int(self.values['port'])
        try:
            self.server = LiveServer(host, port, int(self.values['message_backlog']),
                                     self.params, self._refused)
        except RuntimeError as err:
            self._next_try = time.monotonic() + RETRY_S
            text = f'live view not serving: {err} (trying again every {RETRY_S:.0f} s)'
            self.health.condition('server', Level.WARN, text)
            self.health.values['server'] = 'not listening'
            self.get_logger().warning(text, throttle_duration_sec=60.0)
            return
        self.health.condition('server', Level.OK, '')
        self.health.values.update(server='listening', host=host, port=str(self.server.port))
        self.get_logger().info(f'Foxglove live view on ws://{host}:{self.server.port} '
                               '(open it in Foxglove or Lichtblick: config/foxglove/'
                               'sage_layout.json)')

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            self._viewers = (0, 0)
            self.health.values.update(clients='0', subscribed_channels='0')

    def _subscribe(self, source: Source) -> list[Any]:
        if source == Source.CAMERA:
            return [self.create_subscription(Image, Topic.CAMERA_IMAGE, self._on_camera_raw,
                                             SENSOR_QOS, raw=True)]
        if source == Source.LATENTS:
            # at encoder rate, drawn at image_rate_hz: keep the latest serialized one only
            return [self.create_subscription(
                Latent, Topic.latent(m), lambda data, m=m: self._latest_latent.__setitem__(
                    m, data), VIEW_QOS, raw=True) for m in PUZZLE_MODALITIES]
        if source == Source.SALIENCE:
            return [self.create_subscription(Salience, Topic.SALIENCE, self._on_salience,
                                             VIEW_QOS)]
        if source == Source.BUDGET:
            return [self.create_subscription(AtpBudget, Topic.BUDGET, self._on_budget,
                                             VIEW_QOS)]
        if source == Source.STATE:
            return [self.create_subscription(MetabolicState, Topic.METABOLIC_STATE,
                                             self._on_state, LATCHED_QOS)]
        if source == Source.STORED:
            return [self.create_subscription(Experience, Topic.MEMORY_STORED, self._on_stored,
                                             VIEW_QOS)]
        if source == Source.DIAGNOSTICS:
            return [self.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS,
                                             self._on_diagnostics, VIEW_QOS)]
        if source == Source.SLEEP:
            return [self.create_subscription(Sleep.Impl.FeedbackMessage, SLEEP_FEEDBACK,
                                             self._on_sleep_feedback, EVENTS_QOS)]
        return [self.create_subscription(RosLog, LiveView.LOG, self._on_log, LOG_QOS)]

    def _send(self, topic: str, message: Any) -> None:
        server = self.server
        if server is None or message is None:
            return
        try:
            server.log(topic, message)
        except Exception as err:  # noqa: BLE001 - a closed channel, an SDK error: reported
            self._drop(f'{topic}: {err}')
            return
        self.health.count('sent')

    def _drop(self, message: str) -> None:
        self.health.count('dropped')
        self.health.problem(Level.WARN, message)
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def _refused(self, message: str) -> None:
        self.health.count('parameter_refusals')
        self.health.problem(Level.WARN, message)
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    # inputs ------------------------------------------------------------------------------------

    def _on_camera_raw(self, data: bytes) -> None:
        if not self.core.camera_due(time.monotonic()):
            self.health.count('rate_capped')
            return
        t0 = time.perf_counter()
        try:
            msg = deserialize_message(data, Image)
            channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}.get(msg.encoding)
            if channels is None:
                raise ValueError(f'encoding {msg.encoding} (the live view takes rgb8, bgr8 or '
                                 'mono8)')
            rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
            pixels = rows[:, :msg.width * channels].reshape(
                (msg.height, msg.width, channels) if channels == 3 else (msg.height, msg.width))
            jpeg = camera_jpeg(pixels, msg.encoding, int(self.values['camera_max_width']),
                               int(self.values['jpeg_quality']))
        except (ValueError, RuntimeError) as err:  # malformed frame: counted, reported
            self._drop(f'camera frame not sent: {err}')
            return
        self._send(LiveView.CAMERA, compressed_image(jpeg, to_sec(msg.header.stamp),
                                                     msg.header.frame_id))
        self.health.latency('camera_jpeg', (time.perf_counter() - t0) * 1e3)

    def _on_salience(self, msg: Salience) -> None:
        out = self.core.on_salience(salience_record(msg), time.monotonic())
        if out is None:
            self.health.count('rate_capped')
        elif not self._known(msg.modality):
            self._drop(f"salience of unknown modality '{msg.modality}' not sent")
        else:
            self._send(salience_channel(msg.modality), out)

    def _known(self, modality: str) -> bool:
        return self.server is not None and salience_channel(modality) in self.server.channels

    def _on_budget(self, msg: AtpBudget) -> None:
        out = self.core.on_budget(budget_from_msg(msg), time.monotonic())
        if out is None:
            self.health.count('rate_capped')
        self._send(BUDGET_CHANNEL, out)

    def _on_state(self, msg: MetabolicState) -> None:
        self._send(STATE_CHANNEL, self.core.on_state(state_from_msg(msg)))

    def _on_stored(self, msg: Experience) -> None:
        self.core.on_stored(stored_from_msg(msg))

    def _on_sleep_feedback(self, msg: Any) -> None:
        fb = msg.feedback
        self.core.memory.on_sleep_feedback(SleepFeedbackRecord(
            fb.phase, fb.modality, int(fb.steps), float(fb.progress), float(fb.time_left_s),
            float(fb.elapsed_s), time.monotonic()))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        statuses = [DiagnosticRecord(int.from_bytes(bytes(s.level), 'little')
                                     if isinstance(s.level, (bytes, bytearray)) else int(s.level),
                                     s.name, s.message, s.hardware_id,
                                     tuple((kv.key, kv.value) for kv in s.values))
                    for s in msg.status]
        self._send(DIAGNOSTICS_CHANNEL, self.core.on_diagnostics(to_sec(msg.header.stamp),
                                                                 statuses))

    def _on_log(self, msg: RosLog) -> None:
        rec = LogRecord(to_sec(msg.stamp), int.from_bytes(bytes(msg.level), 'little')
                        if isinstance(msg.level, (bytes, bytearray)) else int(msg.level),
                        msg.name, msg.msg, msg.file, int(msg.line))
        self._send(LiveView.LOG, log_message(rec, str(self.values['log_level'])))

    def _on_parameter_event(self, msg: ParameterEvent) -> None:
        server = self.server
        if server is None:
            return
        wanted = server.parameter_subscriptions()
        changed = [(param_key(msg.node, p.name), parameter_value_to_python(p.value))
                   for p in (*msg.new_parameters, *msg.changed_parameters)]
        changed = [(k, v) for k, v in changed if k in wanted]
        if changed:
            server.publish_parameters(changed)

    # timed outputs -------------------------------------------------------------------------------

    def _refresh_params(self) -> None:
        # parameter service clients only once a viewer is there: three per node otherwise
        # cost DDS endpoints for nothing
        if self.server is not None and self.server.clients():
            self.params.refresh()

    def _send_images(self) -> None:
        latest, self._latest_latent = self._latest_latent, {}
        for data in latest.values():
            try:
                msg = deserialize_message(data, Latent)
                if msg.grid_height and msg.grid_width:
                    codes = np.asarray(msg.codes, dtype=np.uint16).reshape(msg.grid_height,
                                                                           msg.grid_width)
                    self.core.viz.on_grid(msg.modality, codes, int(msg.codebook_size))
            except (ValueError, RuntimeError) as err:  # malformed grid: counted, reported
                self._drop(f'puzzle grid not shown: {err}')
        if self.server is None or Source.LATENTS not in self._subs:
            return
        for topic, image in self.core.puzzle_images(time.time()).items():
            self._send(topic, image)

    def _send_scene(self) -> None:
        if self.server is not None and LiveView.SCENE in self.server.subscribed():
            self._send(LiveView.SCENE, self.core.scene(time.monotonic(), time.time()))

    def _send_memory(self) -> None:
        if self.server is not None and LiveView.MEMORY in self.server.subscribed():
            self._send(LiveView.MEMORY, self.core.memory.json(time.monotonic()))

    def close(self) -> None:
        self._stop_server()


def main(args: list[str] | None = None) -> int:
    return run(lambda: FoxgloveNode(), args)


if __name__ == '__main__':
    sys.exit(main())
