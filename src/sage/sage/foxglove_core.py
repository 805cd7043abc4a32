"""What the Foxglove live view publishes, on which channel, how often (no rclpy).

The foxglove node's shell converts ROS messages into the records of sage_common.records and
sage.viz_core and hands them here; this core answers with the message of each channel: JSON
objects for SAGE's own data (each channel has a JSON schema, so Foxglove's Plot panel plots any
field by path, e.g. `/sage/viz/salience/vision.surprise`) and the Foxglove schemas for what
Foxglove draws itself: the camera as a CompressedImage (JPEG), the puzzle grids as RawImages
(rgb8, the viz node's colour map), the salience markers as a SceneUpdate (the viz node's marker
layout, VizCore.markers) and the log as Log messages.

Rate caps keep a fast stream (IMU salience, the camera) from costing the robot more than a
viewer needs; a channel nobody subscribes to costs nothing (the shell asks `wanted_sources`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
import math
import os
from typing import Any

from foxglove.messages import (Color, CompressedImage, CubePrimitive, Duration, Log, LogLevel,
                               Pose, Quaternion, RawImage, SceneEntity, SceneUpdate,
                               SpherePrimitive, TextPrimitive, Timestamp, Vector3)
import numpy as np

from sage.viz_core import (AllocationRecord, BudgetRecord, MarkerKind, MarkerSpec, StoredRecord,
                           VizConfig, VizCore)
from sage_common.records import AXES, MODALITIES, SalienceRecord, StateRecord
from sage_common.vocabulary import (PUZZLE_MODALITIES, STATE_NAMES, LiveView, MetabolicState,
                                    Topic)

DIAGNOSTIC_NAME_PREFIX = 'sage: '  # sage_common.ros.DiagnosticsPublisher's status names
MEMORY_NODE = 'memory'


class Kind(str, Enum):
    """How a channel's messages are encoded (the shell makes the matching SDK channel)."""

    JSON = 'json'
    COMPRESSED_IMAGE = 'foxglove.CompressedImage'
    RAW_IMAGE = 'foxglove.RawImage'
    SCENE = 'foxglove.SceneUpdate'
    LOG = 'foxglove.Log'


class Source(str, Enum):
    """The graph inputs the live view subscribes to (only while a channel needs them)."""

    CAMERA = 'camera'
    LATENTS = 'latents'
    SALIENCE = 'salience'
    BUDGET = 'budget'
    STATE = 'state'
    STORED = 'stored'
    DIAGNOSTICS = 'diagnostics'
    LOG = 'log'
    SLEEP = 'sleep'  # the Sleep action's feedback


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of the live view."""

    topic: str
    kind: Kind
    sources: tuple[Source, ...]
    schema: dict[str, Any] | None = None  # JSON schema of a Kind.JSON channel


@dataclass(frozen=True)
class LiveConfig:
    """The foxglove node's parameters as the core needs them (see sage.foxglove_params)."""

    camera_rate_hz: float = 10.0
    jpeg_quality: int = 75
    camera_max_width: int = 640
    salience_rate_hz: float = 30.0
    budget_rate_hz: float = 10.0
    cell_px: int = 8
    window_s: float = 1.0
    frame_id: str = 'base_link'
    scene_lifetime_s: float = 1.0
    log_level: str = 'info'

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> LiveConfig:
        # scene entities outlive two updates: no flicker, and a stopped graph's scene clears
        return cls(camera_rate_hz=float(values['camera_rate_hz']),
                   jpeg_quality=int(values['jpeg_quality']),
                   camera_max_width=int(values['camera_max_width']),
                   salience_rate_hz=float(values['salience_rate_hz']),
                   budget_rate_hz=float(values['budget_rate_hz']),
                   cell_px=int(values['cell_px']), window_s=float(values['window_s']),
                   frame_id=str(values['frame_id']),
                   scene_lifetime_s=2.0 / float(values['scene_rate_hz']),
                   log_level=str(values['log_level']))

    def viz(self) -> VizConfig:
        return VizConfig(frame_id=self.frame_id, marker_lifetime_s=self.scene_lifetime_s,
                         window_s=self.window_s, cell_px=self.cell_px)


# --- channels and their JSON schemas ----------------------------------------------------------

def _object(title: str, properties: dict[str, Any],
            optional: Iterable[str] = ()) -> dict[str, Any]:
    """An object schema whose properties are all sent, but those named `optional`."""
    left_out = set(optional)
    return {'title': title, 'type': 'object', 'properties': properties,
            'required': [k for k in properties if k not in left_out]}


NUMBER = {'type': 'number'}
INTEGER = {'type': 'integer'}
STRING = {'type': 'string'}
BOOLEAN = {'type': 'boolean'}

SALIENCE_SCHEMA = _object('sage.Salience', {
    'stamp': NUMBER, 'modality': STRING, 'input_seq': INTEGER,
    **{a: NUMBER for a in AXES}, 'salience': NUMBER, 'threshold': NUMBER, 'attend': BOOLEAN})
_ALLOCATION = _object('sage.AtpAllocation', {
    'plugin': STRING, 'modality': STRING, 'trust': NUMBER, 'salience': NUMBER, 'share': NUMBER,
    'atp': NUMBER, 'atp_used': NUMBER})
BUDGET_SCHEMA = _object('sage.AtpBudget', {
    'stamp': NUMBER, 'tick': INTEGER, 'budget_total': NUMBER, 'reserve': NUMBER,
    'metabolic_state': STRING, 'allocations': {'type': 'array', 'items': _ALLOCATION},
    # Named properties as well: Foxglove's schema reader walks `properties` only (an object
    # with just additionalProperties is refused, and the whole channel with it).
    'by_modality': {'type': 'object', 'properties': {m: _ALLOCATION for m in MODALITIES},
                    'additionalProperties': _ALLOCATION, 'required': []}})
STATE_SCHEMA = _object('sage.MetabolicState', {
    'stamp': NUMBER, 'state': STRING, 'state_index': INTEGER, 'previous': STRING,
    'reason': STRING, 'dwell_s': NUMBER, 'atp_reserve': NUMBER, 'memory_pressure': STRING})
_STORED = _object('sage.StoredExperience', {
    'stamp': NUMBER, 'uuid': STRING, 'modality': STRING, 'salience': NUMBER, 'text': STRING})
# One type per field (Foxglove's reader refuses type lists and anyOf): a value not known yet
# is left out of the message, not sent as null.
MEMORY_SCHEMA = _object('sage.MemorySummary', {
    'rows': INTEGER,
    'rows_by_kind': {'type': 'object', 'properties': {m: INTEGER for m in MODALITIES},
                     'additionalProperties': INTEGER, 'required': []},
    'stored_total': INTEGER, 'pending': INTEGER,
    'stored_seen': INTEGER, 'last_stored': _STORED,
    'sleeping': BOOLEAN, 'sleep_elapsed_s': NUMBER, 'state': STRING,
    'sleep_phase': STRING, 'sleep_modality': STRING, 'sleep_steps': INTEGER,
    'sleep_progress': NUMBER, 'sleep_time_left_s': NUMBER},
    optional=('rows', 'stored_total', 'pending', 'last_stored', 'sleep_progress',
              'sleep_time_left_s'))
_KEY_VALUE = _object('diagnostic_msgs/msg/KeyValue', {'key': STRING, 'value': STRING})
_TIME = _object('builtin_interfaces/msg/Time', {'sec': INTEGER, 'nanosec': INTEGER})
# The ROS message's shape, so Foxglove's Diagnostics panel reads it as a DiagnosticArray.
DIAGNOSTICS_SCHEMA = _object('diagnostic_msgs/msg/DiagnosticArray', {
    'header': _object('std_msgs/msg/Header', {'stamp': _TIME, 'frame_id': STRING}),
    'status': {'type': 'array', 'items': _object('diagnostic_msgs/msg/DiagnosticStatus', {
        'level': INTEGER, 'name': STRING, 'message': STRING, 'hardware_id': STRING,
        'values': {'type': 'array', 'items': _KEY_VALUE}})}})


def channel_name(topic: str) -> str:
    """A graph topic's channel: its name from the root (a relative graph name resolves under
    the node's namespace; the channels keep one name, so one layout fits every robot)."""
    return topic if topic.startswith('/') else '/' + topic


def salience_channel(modality: str) -> str:
    """The live view's salience channel of one modality (the viz node's split topic name)."""
    return channel_name(Topic.viz_salience(modality))


def puzzle_channel(modality: str) -> str:
    return channel_name(Topic.viz_puzzle(modality))


BUDGET_CHANNEL = channel_name(Topic.BUDGET)
STATE_CHANNEL = channel_name(Topic.METABOLIC_STATE)
DIAGNOSTICS_CHANNEL = channel_name(Topic.DIAGNOSTICS)


def channel_specs() -> tuple[ChannelSpec, ...]:
    """Every channel the live view advertises."""
    scene_sources = (Source.SALIENCE, Source.BUDGET, Source.STATE, Source.STORED)
    return (
        ChannelSpec(LiveView.CAMERA, Kind.COMPRESSED_IMAGE, (Source.CAMERA,)),
        *(ChannelSpec(puzzle_channel(m), Kind.RAW_IMAGE, (Source.LATENTS,))
          for m in PUZZLE_MODALITIES),
        *(ChannelSpec(salience_channel(m), Kind.JSON, (Source.SALIENCE,), SALIENCE_SCHEMA)
          for m in MODALITIES),
        ChannelSpec(BUDGET_CHANNEL, Kind.JSON, (Source.BUDGET,), BUDGET_SCHEMA),
        ChannelSpec(STATE_CHANNEL, Kind.JSON, (Source.STATE,), STATE_SCHEMA),
        ChannelSpec(LiveView.MEMORY, Kind.JSON, (Source.STORED, Source.DIAGNOSTICS,
                                                 Source.STATE, Source.SLEEP), MEMORY_SCHEMA),
        ChannelSpec(DIAGNOSTICS_CHANNEL, Kind.JSON, (Source.DIAGNOSTICS,), DIAGNOSTICS_SCHEMA),
        ChannelSpec(LiveView.SCENE, Kind.SCENE, scene_sources),
        ChannelSpec(LiveView.LOG, Kind.LOG, (Source.LOG,)),
    )


def wanted_sources(subscribed: Iterable[str]) -> set[Source]:
    """The inputs the channels with a subscriber need."""
    topics = set(subscribed)
    return {s for spec in channel_specs() if spec.topic in topics for s in spec.sources}


# --- records the shell converts messages into -------------------------------------------------

@dataclass(frozen=True)
class DiagnosticRecord:
    """One DiagnosticStatus (mirror of diagnostic_msgs/DiagnosticStatus)."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LogRecord:
    """One /rosout entry (mirror of rcl_interfaces/Log)."""

    stamp: float
    level: int  # rcl_interfaces/Log: 10 debug, 20 info, 30 warn, 40 error, 50 fatal
    name: str
    msg: str
    file: str
    line: int


ROS_LOG_LEVELS: dict[str, int] = {'debug': 10, 'info': 20, 'warn': 30, 'error': 40,
                                  'fatal': 50}
_FOXGLOVE_LEVELS = ((50, LogLevel.Fatal), (40, LogLevel.Error), (30, LogLevel.Warning),
                    (20, LogLevel.Info), (10, LogLevel.Debug))


class RateCap:
    """At most `rate_hz` events a second per key: True when an event may pass now."""

    def __init__(self, rate_hz: float) -> None:
        self.interval = 1.0 / rate_hz
        self._next: dict[str, float] = {}

    def allow(self, key: str, now: float) -> bool:
        due = self._next.get(key, -math.inf)
        if now < due:
            return False
        # the next slot counts from this one's due time, so a steady stream keeps the full
        # rate; after a pause it counts from now (no burst to catch up)
        self._next[key] = (due if due > now - self.interval else now) + self.interval
        return True


# --- conversions --------------------------------------------------------------------------------

def salience_json(rec: SalienceRecord) -> dict[str, Any]:
    return {'stamp': rec.stamp, 'modality': rec.modality, 'input_seq': rec.input_seq,
            **{a: float(getattr(rec, a)) for a in AXES}, 'salience': rec.salience,
            'threshold': rec.threshold, 'attend': rec.attend}


def _allocation_json(a: AllocationRecord) -> dict[str, Any]:
    return {'plugin': a.plugin, 'modality': a.modality, 'trust': a.trust,
            'salience': a.salience, 'share': a.share, 'atp': a.atp, 'atp_used': a.atp_used}


def budget_json(rec: BudgetRecord) -> dict[str, Any]:
    allocations = [_allocation_json(a) for a in rec.allocations]
    return {'stamp': rec.stamp, 'tick': rec.tick, 'budget_total': rec.budget_total,
            'reserve': rec.reserve, 'metabolic_state': rec.metabolic_state,
            'allocations': allocations,
            'by_modality': {a['modality']: a for a in allocations if a['modality']}}


def state_json(rec: StateRecord) -> dict[str, Any]:
    index = STATE_NAMES.index(rec.state) if rec.state in STATE_NAMES else -1
    return {'stamp': rec.stamp, 'state': rec.state, 'state_index': index,
            'previous': rec.previous, 'reason': rec.reason, 'dwell_s': rec.dwell_s,
            'atp_reserve': rec.atp_reserve, 'memory_pressure': rec.memory_pressure}


def diagnostics_json(stamp: float, statuses: Iterable[DiagnosticRecord]) -> dict[str, Any]:
    sec = int(math.floor(stamp))
    return {'header': {'stamp': {'sec': sec, 'nanosec': int((stamp - sec) * 1e9)},
                       'frame_id': ''},
            'status': [{'level': s.level, 'name': s.name, 'message': s.message,
                        'hardware_id': s.hardware_id,
                        'values': [{'key': k, 'value': v} for k, v in s.values]}
                       for s in statuses]}


def log_message(rec: LogRecord, least_level: str) -> Log | None:
    """A Foxglove Log of a /rosout entry, or None below `least_level`."""
    if rec.level < ROS_LOG_LEVELS[least_level]:
        return None
    level = next((lv for floor, lv in _FOXGLOVE_LEVELS if rec.level >= floor), LogLevel.Unknown)
    return Log(timestamp=Timestamp.from_epoch_secs(rec.stamp), level=level, message=rec.msg,
               name=rec.name, file=rec.file, line=rec.line)


def camera_jpeg(pixels: np.ndarray, encoding: str, max_width: int, quality: int) -> bytes:
    """JPEG of a camera frame (H, W, 3) rgb8/bgr8 or (H, W) mono8, scaled down to max_width.

    Raises:
        ValueError: another encoding or shape, or the encoder failed.
    """
    # lazy: keeps cv2 out of this module's import (the offline tools import the core)
    import cv2
    if encoding in ('rgb8', 'bgr8') and pixels.ndim == 3 and pixels.shape[2] == 3:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if encoding == 'rgb8' else pixels
    elif encoding == 'mono8' and pixels.ndim == 2:
        bgr = pixels
    else:
        raise ValueError(f'camera frame {encoding} {pixels.shape}: the live view takes rgb8, '
                         'bgr8 or mono8')
    if bgr.shape[1] > max_width:
        height = max(1, round(bgr.shape[0] * max_width / bgr.shape[1]))
        bgr = cv2.resize(bgr, (max_width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode('.jpg', bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError('JPEG encoding failed')
    return data.tobytes()


def compressed_image(jpeg: bytes, stamp: float, frame_id: str) -> CompressedImage:
    return CompressedImage(timestamp=Timestamp.from_epoch_secs(stamp), frame_id=frame_id,
                           data=jpeg, format='jpeg')


def raw_image(rgb: np.ndarray, stamp: float, frame_id: str) -> RawImage:
    return RawImage(timestamp=Timestamp.from_epoch_secs(stamp), frame_id=frame_id,
                    width=int(rgb.shape[1]), height=int(rgb.shape[0]), encoding='rgb8',
                    step=int(rgb.shape[1]) * 3, data=rgb.tobytes())


def _color(c: tuple[float, float, float, float]) -> Color:
    return Color(r=c[0], g=c[1], b=c[2], a=c[3])


def _pose(p: tuple[float, float, float]) -> Pose:
    return Pose(position=Vector3(x=p[0], y=p[1], z=p[2]),
                orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))


def scene_update(markers: Iterable[MarkerSpec], stamp: float, frame_id: str) -> SceneUpdate:
    """The viz markers as one SceneEntity per namespace (cubes, spheres and billboard texts)."""
    groups: dict[str, dict[str, list[Any]]] = {}
    lifetimes: dict[str, float] = {}
    for m in markers:
        parts = groups.setdefault(m.ns, {'cubes': [], 'spheres': [], 'texts': []})
        lifetimes[m.ns] = m.lifetime_s
        size = Vector3(x=m.scale[0], y=m.scale[1], z=m.scale[2])
        if m.kind == MarkerKind.CUBE:
            parts['cubes'].append(CubePrimitive(pose=_pose(m.position), size=size,
                                                color=_color(m.color)))
        elif m.kind == MarkerKind.SPHERE:
            parts['spheres'].append(SpherePrimitive(pose=_pose(m.position), size=size,
                                                    color=_color(m.color)))
        else:
            parts['texts'].append(TextPrimitive(pose=_pose(m.position), billboard=True,
                                                font_size=m.scale[2], scale_invariant=False,
                                                color=_color(m.color), text=m.text))
    when = Timestamp.from_epoch_secs(stamp)
    return SceneUpdate(entities=[
        SceneEntity(timestamp=when, frame_id=frame_id, id=ns,
                    lifetime=Duration.from_secs(lifetimes[ns]), cubes=p['cubes'],
                    spheres=p['spheres'], texts=p['texts'])
        for ns, p in groups.items()])


# --- memory summary ------------------------------------------------------------------------------

def _int(text: str | None) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class SleepFeedbackRecord:
    """The Sleep action's feedback (mirror of sage_interfaces/action/Sleep feedback), with
    when it arrived (monotonic seconds)."""

    phase: str
    modality: str
    steps: int
    progress: float
    time_left_s: float
    elapsed_s: float
    arrived: float


SLEEP_FEEDBACK_FRESH_S = 5.0  # the action sends feedback every 2 s at most while it runs
SLEEP_DONE = 'done'


class MemorySummary:
    """Rows, the last stored experience and sleep, from what the memory node publishes:
    /sage/memory/stored, its /diagnostics values (index_<kind> rows, stored, pending), the
    metabolic state (it sleeps in DREAM) and the Sleep action's feedback (phase, progress, time
    left; a sleep asked through the Sleep service, as the orchestrator's are, sends none: then
    the time in DREAM is all there is)."""

    def __init__(self) -> None:
        self.sleep: SleepFeedbackRecord | None = None
        self.rows_by_kind: dict[str, int] = {}
        self.stored_total: int | None = None
        self.pending: int | None = None
        self.stored_seen = 0
        self.last: StoredRecord | None = None
        self.state: StateRecord | None = None

    def on_stored(self, rec: StoredRecord) -> None:
        self.stored_seen += 1
        self.last = rec

    def on_state(self, rec: StateRecord) -> None:
        self.state = rec

    def on_sleep_feedback(self, rec: SleepFeedbackRecord) -> None:
        self.sleep = rec

    def on_diagnostic(self, status: DiagnosticRecord) -> None:
        if status.name != DIAGNOSTIC_NAME_PREFIX + MEMORY_NODE:
            return
        values = dict(status.values)
        rows = {k.removeprefix('index_'): _int(v) for k, v in values.items()
                if k.startswith('index_') and k != 'index_ready'}
        self.rows_by_kind = {k: v for k, v in rows.items() if v is not None}
        self.stored_total = _int(values.get('stored', '0'))
        self.pending = _int(values.get('pending'))

    def json(self, now: float) -> dict[str, Any]:
        """The summary at monotonic time `now` (sleep feedback older than a few seconds, or
        of a finished sleep, is no longer shown)."""
        last = self.last
        state = self.state
        fb = self.sleep
        if fb is not None and (now - fb.arrived > SLEEP_FEEDBACK_FRESH_S
                               or fb.phase == SLEEP_DONE):
            fb = None
        sleeping = fb is not None or (state is not None and state.state == MetabolicState.DREAM)
        elapsed = fb.elapsed_s if fb is not None else (
            state.dwell_s if sleeping and state is not None else 0.0)
        summary = {'rows': sum(self.rows_by_kind.values()) if self.rows_by_kind else None,
                'rows_by_kind': dict(self.rows_by_kind), 'stored_total': self.stored_total,
                'pending': self.pending, 'stored_seen': self.stored_seen,
                'last_stored': None if last is None else {
                    'stamp': last.stamp, 'uuid': last.uuid, 'modality': last.modality,
                    'salience': last.salience, 'text': last.text},
                'sleeping': sleeping, 'sleep_elapsed_s': elapsed,
                'state': state.state if state is not None else '',
                'sleep_phase': fb.phase if fb is not None else '',
                'sleep_modality': fb.modality if fb is not None else '',
                'sleep_steps': fb.steps if fb is not None else 0,
                'sleep_progress': fb.progress if fb is not None else None,
                'sleep_time_left_s': fb.time_left_s if fb is not None else None}
        return {k: v for k, v in summary.items() if v is not None}


# --- the core ------------------------------------------------------------------------------------

class LiveCore:
    """The latest graph state and the messages of each channel; rate caps applied."""

    def __init__(self, config: LiveConfig) -> None:
        self.config = config
        self.viz = VizCore(config.viz())
        self.memory = MemorySummary()
        self._salience_cap = RateCap(config.salience_rate_hz)
        self._budget_cap = RateCap(config.budget_rate_hz)
        self._camera_cap = RateCap(config.camera_rate_hz)

    def reconfigure(self, config: LiveConfig) -> None:
        self.config = config
        self.viz.config = config.viz()
        self._salience_cap = RateCap(config.salience_rate_hz)
        self._budget_cap = RateCap(config.budget_rate_hz)
        self._camera_cap = RateCap(config.camera_rate_hz)

    def on_salience(self, rec: SalienceRecord, now: float) -> dict[str, Any] | None:
        """Feeds the scene; the channel's JSON, or None when over the modality's rate cap."""
        self.viz.on_salience(rec, now)
        if not self._salience_cap.allow(rec.modality, now):
            return None
        return salience_json(rec)

    def on_budget(self, rec: BudgetRecord, now: float) -> dict[str, Any] | None:
        self.viz.on_budget(rec)
        return budget_json(rec) if self._budget_cap.allow('budget', now) else None

    def on_state(self, rec: StateRecord) -> dict[str, Any]:
        self.viz.on_state(rec)
        self.memory.on_state(rec)
        return state_json(rec)

    def on_stored(self, rec: StoredRecord) -> None:
        self.viz.on_stored(rec)
        self.memory.on_stored(rec)

    def on_diagnostics(self, stamp: float, statuses: list[DiagnosticRecord]) -> dict[str, Any]:
        for status in statuses:
            self.memory.on_diagnostic(status)
        return diagnostics_json(stamp, statuses)

    def camera_due(self, now: float) -> bool:
        """Whether a camera frame may be sent now (camera_rate_hz)."""
        return self._camera_cap.allow('camera', now)

    def scene(self, now: float, stamp: float) -> SceneUpdate:
        return scene_update(self.viz.markers(now), stamp, self.config.frame_id)

    def puzzle_images(self, stamp: float) -> dict[str, RawImage]:
        """Channel -> RawImage of each modality that has sent a puzzle grid."""
        return {puzzle_channel(m): raw_image(img, stamp, self.config.frame_id)
                for m, img in self.viz.puzzle_images().items()}


# --- where to listen, parameters -----------------------------------------------------------------

MULTI_HOST_ENV = 'SAGE_MULTI_HOST'  # sage_bringup.environment.graph_env sets it


def listen_host(host: str, environ: Mapping[str, str] | None = None) -> str:
    """The address to listen on: the parameter's, else every interface when the launcher
    opened the graph to the LAN (sage launch --multi-host), else this host only."""
    environ = os.environ if environ is None else environ
    if host:
        return host
    return '0.0.0.0' if environ.get(MULTI_HOST_ENV) == '1' else '127.0.0.1'  # noqa: S104


def param_key(node: str, name: str) -> str:
    """Foxglove's name for a node's parameter: '/camera.fps' (foxglove_bridge's form)."""
    return f"/{node.lstrip('/')}.{name}"


def split_param_key(key: str) -> tuple[str, str]:
    """('camera', 'fps') from '/camera.fps'; SAGE node names hold no dot, parameters may.

    Raises:
        ValueError: not of the form /node.parameter.
    """
    node, dot, name = key.lstrip('/').partition('.')
    if not key.startswith('/') or not dot or not node or not name:
        raise ValueError(f"'{key}' is not a parameter name of the form /node.parameter")
    return node, name


def coerce_like(current: Any, value: Any, key: str) -> Any:
    """A value from Foxglove in the type of the parameter's current value (a JSON 10 for a
    float parameter is 10.0; ROS refuses a change of type).

    Raises:
        ValueError: the value cannot take that type.
    """
    if value is None or current is None:
        return value
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ('true', 'false'):
            return value.lower() == 'true'
    elif isinstance(current, float) and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        return float(value)
    elif isinstance(current, int) and isinstance(value, (int, float)) \
            and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    elif isinstance(current, str) and isinstance(value, str):
        return value
    elif isinstance(current, (list, tuple, bytes)) and isinstance(value, (list, tuple, bytes)):
        return list(value) if not isinstance(current, bytes) else bytes(value)
    raise ValueError(f'{key}: {value!r} is not a {type(current).__name__} like its value '
                     f'{current!r}')
