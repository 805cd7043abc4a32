"""What SAGE shows in rviz2: marker layouts and images, from plain records (no rclpy).

The viz node feeds this core with records converted from messages; the core keeps the latest
state and answers "which markers now" and "which images now". `sage status` and
`sage report` use the same records (the `*_from_msg` helpers read rclpy messages and rosbags
messages alike: they only read attributes).

Marker layout: a flat dashboard in the XY plane of `frame_id` (metres; x right, y up in
rviz's TopDownOrtho view, which config/sage.rviz opens with):
  salience  one row per modality (y = -row): the total salience bar with a threshold tick,
            then the five axis bars below it; bar length = score * BAR_LENGTH. Label on the left.
  atp       below the rows: per plugin its allocated (atp) and used (atp_used) bars.
  metabolic a disc coloured by state, and the state, reason and dwell as text (top).
  memory    the latest stored experiences as text lines (right).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from sage_common.preview_formats import IMAGE_FORMATS
from sage_common.previews import decode_image
from sage_common.records import AXES, MODALITIES, SalienceRecord, StateRecord
from sage_common.stamps import to_sec
from sage_common.vocabulary import (absolute, LATENT_TOPICS, PUZZLE_MODALITIES, MetabolicState,
                                    Topic)

# Every topic the running graph publishes (the DESIGN topic table plus the viz node's topics).
# config/sage.rviz and config/sage.perspective may only refer to these (tested), as resolved in
# a graph with no namespace.
GRAPH_TOPICS: tuple[str, ...] = tuple(absolute(t) for t in (
    Topic.CAMERA_IMAGE, Topic.CAMERA_INFO, Topic.CAMERA_FRAME_REF,
    Topic.AUDIO_FRAMES, Topic.IMU, Topic.TEXT_IN, *LATENT_TOPICS.values(),
    Topic.SALIENCE, Topic.REWARD, Topic.BUDGET, Topic.METABOLIC_STATE,
    Topic.MEMORY_STORED, Topic.DIAGNOSTICS,
    Topic.VIZ_MARKERS, *(Topic.viz_puzzle(m) for m in PUZZLE_MODALITIES),
    Topic.VIZ_SALIENCE_OVERLAY, *(Topic.viz_salience(m) for m in MODALITIES),
))
MARKER_TOPIC = Topic.VIZ_MARKERS
OVERLAY_TOPIC = Topic.VIZ_SALIENCE_OVERLAY
puzzle_topic = Topic.viz_puzzle
split_salience_topic = Topic.viz_salience


class MarkerKind(IntEnum):
    """Marker types used here (same values as visualization_msgs/Marker)."""

    CUBE = 1
    SPHERE = 2
    TEXT_VIEW_FACING = 9


Color = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]

AXIS_COLORS: dict[str, Color] = {
    'surprise': (0.95, 0.45, 0.10, 1.0), 'novelty': (0.20, 0.65, 0.95, 1.0),
    'arousal': (0.95, 0.20, 0.30, 1.0), 'reward': (0.25, 0.80, 0.35, 1.0),
    'conflict': (0.70, 0.40, 0.90, 1.0),
}
SALIENCE_COLOR: Color = (1.0, 0.85, 0.15, 1.0)
THRESHOLD_COLOR: Color = (1.0, 1.0, 1.0, 0.8)
TEXT_COLOR: Color = (1.0, 1.0, 1.0, 1.0)
STATE_COLORS: dict[str, Color] = {
    MetabolicState.WAKE: (0.30, 0.80, 0.30, 1.0), MetabolicState.FOCUS: (0.20, 0.50, 1.00, 1.0),
    MetabolicState.REST: (0.60, 0.60, 0.60, 1.0), MetabolicState.DREAM: (0.65, 0.35, 0.85, 1.0),
    MetabolicState.CRISIS: (1.00, 0.15, 0.15, 1.0),
}
UNKNOWN_STATE_COLOR: Color = (0.4, 0.4, 0.4, 1.0)
ATP_COLOR: Color = (0.25, 0.55, 0.95, 1.0)
ATP_USED_COLOR: Color = (0.95, 0.60, 0.15, 1.0)

BAR_LENGTH = 2.0     # metres for a score of 1.0
BAR_THICK = 0.2      # metres (y) of the total salience bar
AXIS_THICK = 0.1     # metres (y) of an axis bar
AXIS_PITCH = 0.12    # metres (y) between axis bars
ROW_PITCH = 1.0      # metres between modality rows
FLAT = 0.01          # metres (z): bars are flat plates
ATP_ORIGIN_Y = -4.3  # the ATP panel starts below the four modality rows
ATP_PITCH = 0.45     # metres between plugin rows
LABEL_X = -0.9
MEMORY_ORIGIN_X = 3.8
TEXT_SIZE = 0.18     # metres (rviz text height)
MIN_BAR = 0.01       # a zero bar stays a visible sliver


@dataclass(frozen=True)
class VizConfig:
    """The viz node's parameters as the core needs them (see sage.viz_params)."""

    frame_id: str = 'base_link'
    marker_lifetime_s: float = 1.0
    window_s: float = 1.0
    stored_count: int = 5
    cell_px: int = 8
    overlay_width: int = 320

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> VizConfig:
        return cls(frame_id=str(values['frame_id']),
                   marker_lifetime_s=float(values['marker_lifetime_s']),
                   window_s=float(values['window_s']),
                   stored_count=int(values['stored_count']), cell_px=int(values['cell_px']),
                   overlay_width=int(values['overlay_width']))


@dataclass(frozen=True)
class MarkerSpec:
    """One marker, independent of rclpy (the shell copies it into visualization_msgs)."""

    ns: str
    id: int
    kind: MarkerKind
    position: Vec3
    scale: Vec3
    color: Color
    text: str = ''
    lifetime_s: float = 1.0


# --- records of the other graph outputs (mirrors of the messages) ------------------------------

@dataclass(frozen=True)
class AllocationRecord:
    plugin: str
    modality: str
    trust: float
    salience: float
    share: float
    atp: float
    atp_used: float


@dataclass(frozen=True)
class BudgetRecord:
    stamp: float
    tick: int
    budget_total: float
    reserve: float
    metabolic_state: str
    allocations: tuple[AllocationRecord, ...]


@dataclass(frozen=True)
class StoredRecord:
    stamp: float
    uuid: str
    modality: str
    salience: float
    preview_format: str
    preview: bytes
    text: str


def budget_from_msg(msg: Any) -> BudgetRecord:
    """BudgetRecord from a sage_interfaces/AtpBudget (rclpy or rosbags message)."""
    allocs = tuple(AllocationRecord(a.plugin, a.modality, float(a.trust), float(a.salience),
                                    float(a.share), float(a.atp), float(a.atp_used))
                   for a in msg.allocations)
    return BudgetRecord(to_sec(msg.header.stamp), int(msg.tick), float(msg.budget_total),
                        float(msg.reserve), msg.metabolic_state, allocs)


def state_from_msg(msg: Any) -> StateRecord:
    """StateRecord from a sage_interfaces/MetabolicState."""
    return StateRecord(to_sec(msg.header.stamp), msg.state, msg.previous, msg.reason,
                       float(msg.dwell_s), float(msg.atp_reserve), msg.memory_pressure)


def stored_from_msg(msg: Any) -> StoredRecord:
    """StoredRecord from a sage_interfaces/Experience (the preview is kept as bytes)."""
    return StoredRecord(to_sec(msg.header.stamp), msg.uuid, msg.modality, float(msg.salience),
                        msg.preview_format, bytes(bytearray(msg.preview)), msg.text)


def salience_record(msg: Any) -> SalienceRecord:
    """SalienceRecord from a sage_interfaces/Salience (rclpy or rosbags message)."""
    return SalienceRecord(
        stamp=to_sec(msg.header.stamp), modality=msg.modality,
        input_seq=int(getattr(msg, 'input_seq', 0)), surprise=float(msg.surprise),
        novelty=float(msg.novelty), arousal=float(msg.arousal), reward=float(msg.reward),
        conflict=float(msg.conflict), salience=float(msg.salience),
        threshold=float(msg.threshold), attend=bool(msg.attend))


# --- the core ----------------------------------------------------------------------------------

@dataclass
class _ModalityWindow:
    """Recent salience records of one modality with their arrival times."""

    records: deque[tuple[float, SalienceRecord]] = field(default_factory=lambda: deque(
        maxlen=2048))

    def trim(self, now: float, window_s: float) -> None:
        while self.records and self.records[0][0] < now - window_s:
            self.records.popleft()


class VizCore:
    """Keeps the latest graph state and turns it into markers and images."""

    def __init__(self, config: VizConfig) -> None:
        self.config = config
        self._rows: dict[str, int] = {m: i for i, m in enumerate(MODALITIES)}
        self._windows: dict[str, _ModalityWindow] = {}
        self._latest: dict[str, SalienceRecord] = {}
        self._plugins: dict[str, int] = {}
        self.budget: BudgetRecord | None = None
        self.state: StateRecord | None = None
        self.stored: deque[StoredRecord] = deque(maxlen=20)
        self.grids: dict[str, tuple[np.ndarray, int]] = {}
        self.preview: bytes = b''

    # inputs ----------------------------------------------------------------------------------

    def on_salience(self, rec: SalienceRecord, now: float) -> None:
        """Add a score; `now` is the arrival time (monotonic seconds)."""
        self._rows.setdefault(rec.modality, len(self._rows))
        self._windows.setdefault(rec.modality, _ModalityWindow()).records.append((now, rec))
        self._latest[rec.modality] = rec

    def on_budget(self, rec: BudgetRecord) -> None:
        for alloc in rec.allocations:
            self._plugins.setdefault(alloc.plugin, len(self._plugins))
        self.budget = rec

    def on_state(self, rec: StateRecord) -> None:
        self.state = rec

    def on_stored(self, rec: StoredRecord) -> None:
        self.stored.append(rec)

    def on_grid(self, modality: str, codes: np.ndarray, codebook_size: int,
                preview_format: str = '', preview: bytes = b'') -> None:
        """Keep a modality's latest puzzle grid (H, W) and, for vision, its JPEG preview.

        Raises:
            ValueError: codes is not a 2-D grid or holds indices outside the codebook.
        """
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.size == 0:
            raise ValueError(f'{modality} puzzle grid must be 2-D and non-empty, '
                             f'got shape {codes.shape}')
        if codebook_size <= 0 or int(codes.max()) >= codebook_size:
            raise ValueError(f'{modality} puzzle code {int(codes.max())} outside codebook of '
                             f'size {codebook_size}')
        self.grids[modality] = (codes.astype(np.uint16, copy=False), int(codebook_size))
        if modality == 'vision' and preview_format in IMAGE_FORMATS and preview:
            self.preview = preview

    # summaries -------------------------------------------------------------------------------

    def window_means(self, now: float) -> dict[str, dict[str, float]]:
        """Per modality: window means of the axes, salience, threshold and attend rate.

        A modality with no score in the window keeps showing its latest score.
        """
        out: dict[str, dict[str, float]] = {}
        for modality, window in self._windows.items():
            window.trim(now, self.config.window_s)
            recs = [r for _, r in window.records] or [self._latest[modality]]
            means = {a: float(np.mean([getattr(r, a) for r in recs]))
                     for a in (*AXES, 'salience', 'threshold')}
            means['attend_rate'] = float(np.mean([r.attend for r in recs]))
            means['count'] = float(len(window.records))
            out[modality] = means
        return out

    # markers ---------------------------------------------------------------------------------

    def markers(self, now: float) -> list[MarkerSpec]:
        """Every marker for the current state (ids are unique per namespace)."""
        life = self.config.marker_lifetime_s
        out: list[MarkerSpec] = []
        out += self._salience_markers(now, life)
        out += self._atp_markers(life)
        out += self._state_markers(life)
        out += self._memory_markers(life)
        return out

    def _salience_markers(self, now: float, life: float) -> list[MarkerSpec]:
        out: list[MarkerSpec] = []
        means = self.window_means(now)
        for modality, m in means.items():
            row = self._rows[modality]
            y = -row * ROW_PITCH
            base = row * 10
            out.append(_bar('salience', base, y, m['salience'], BAR_THICK, SALIENCE_COLOR,
                            life))
            out.append(MarkerSpec('salience', base + 1, MarkerKind.CUBE,
                                  (float(np.clip(m['threshold'], 0, 1)) * BAR_LENGTH, y, FLAT),
                                  (0.03, BAR_THICK * 1.6, FLAT * 2), THRESHOLD_COLOR,
                                  lifetime_s=life))
            for j, axis in enumerate(AXES):
                out.append(_bar('salience', base + 2 + j,
                                y - BAR_THICK / 2 - AXIS_PITCH * (j + 0.5), m[axis],
                                AXIS_THICK, AXIS_COLORS[axis], life))
            out.append(MarkerSpec(
                'salience', base + 7, MarkerKind.TEXT_VIEW_FACING, (LABEL_X, y - 0.2, FLAT),
                (0.0, 0.0, TEXT_SIZE), TEXT_COLOR,
                f"{modality}\n{m['salience']:.2f}\nattend {m['attend_rate']:.0%}", life))
        if means:  # legend beside the axis bars of the top row
            y0 = -min(self._rows[m] for m in means) * ROW_PITCH - BAR_THICK / 2
            for j, axis in enumerate(AXES):
                out.append(MarkerSpec('salience_axes', j, MarkerKind.TEXT_VIEW_FACING,
                                      (BAR_LENGTH + 0.45, y0 - AXIS_PITCH * (j + 0.5), FLAT),
                                      (0.0, 0.0, AXIS_PITCH * 0.9), AXIS_COLORS[axis], axis,
                                      life))
        return out

    def _atp_markers(self, life: float) -> list[MarkerSpec]:
        budget = self.budget
        if budget is None:
            return []
        out = [MarkerSpec('atp', 0, MarkerKind.TEXT_VIEW_FACING, (BAR_LENGTH / 2,
                                                                  ATP_ORIGIN_Y + 0.45, FLAT),
                          (0.0, 0.0, TEXT_SIZE), TEXT_COLOR,
                          f'ATP {budget.budget_total:.1f} (reserve {budget.reserve:.1f}) '
                          f'{budget.metabolic_state} tick {budget.tick}', life)]
        # Bars are scaled to the largest allocation so the panel keeps its size.
        top = max([a.atp for a in budget.allocations] + [a.atp_used for a in budget.allocations]
                  + [1e-9])
        for alloc in budget.allocations:
            idx = self._plugins[alloc.plugin]
            y = ATP_ORIGIN_Y - idx * ATP_PITCH
            base = 10 + idx * 10
            out.append(_bar('atp', base, y, alloc.atp / top, BAR_THICK * 0.8, ATP_COLOR, life))
            out.append(_bar('atp', base + 1, y - BAR_THICK * 0.8, alloc.atp_used / top,
                            AXIS_THICK, ATP_USED_COLOR, life))
            out.append(MarkerSpec('atp', base + 2, MarkerKind.TEXT_VIEW_FACING,
                                  (LABEL_X, y - 0.05, FLAT), (0.0, 0.0, TEXT_SIZE * 0.7),
                                  TEXT_COLOR,
                                  f'{alloc.plugin}\n{alloc.atp:.1f}/{alloc.atp_used:.1f} '
                                  f'({alloc.share:.0%})', life))
        return out

    def _state_markers(self, life: float) -> list[MarkerSpec]:
        state = self.state
        if state is None:
            return []
        color = STATE_COLORS.get(state.state, UNKNOWN_STATE_COLOR)
        text = (f'{state.state} ({state.dwell_s:.0f} s)\n{state.reason}\n'
                f'reserve {state.atp_reserve:.0%}  memory {state.memory_pressure or "?"}')
        return [MarkerSpec('metabolic', 0, MarkerKind.SPHERE, (LABEL_X, 1.3, FLAT),
                           (0.5, 0.5, FLAT), color, lifetime_s=life),
                MarkerSpec('metabolic', 1, MarkerKind.TEXT_VIEW_FACING,
                           (BAR_LENGTH / 2, 1.3, FLAT), (0.0, 0.0, TEXT_SIZE), TEXT_COLOR, text,
                           life)]

    def _memory_markers(self, life: float) -> list[MarkerSpec]:
        count = self.config.stored_count
        latest = list(self.stored)[-count:][::-1] if count else []
        if not latest:
            return []
        out = [MarkerSpec('memory', 0, MarkerKind.TEXT_VIEW_FACING, (MEMORY_ORIGIN_X, 0.45, FLAT),
                          (0.0, 0.0, TEXT_SIZE), TEXT_COLOR, 'latest stored', life)]
        for k, rec in enumerate(latest):
            label = rec.text[:24] if rec.text else rec.uuid[:8]
            out.append(MarkerSpec(
                'memory', k + 1, MarkerKind.TEXT_VIEW_FACING,
                (MEMORY_ORIGIN_X, -k * 0.35, FLAT), (0.0, 0.0, TEXT_SIZE * 0.8),
                AXIS_COLORS['novelty'], f'{rec.modality} {rec.salience:.2f} {label}', life))
        return out

    # images ----------------------------------------------------------------------------------

    def puzzle_images(self) -> dict[str, np.ndarray]:
        """(H*cell, W*cell, 3) uint8 RGB per modality that has sent a puzzle grid."""
        return {m: puzzle_image(codes, size, self.config.cell_px)
                for m, (codes, size) in self.grids.items()}

    def overlay_image(self, now: float) -> np.ndarray | None:
        """The latest vision preview (or puzzle) with salience bars drawn over it."""
        base = decode_image(self.preview) if self.preview else None
        if base is None and 'vision' in self.grids:
            codes, size = self.grids['vision']
            base = puzzle_image(codes, size, 1)
        means = self.window_means(now)
        if base is None and not means:
            return None
        return salience_overlay(base, means, self.config.overlay_width)


def _bar(ns: str, mid: int, y: float, value: float, thick: float, color: Color,
         life: float) -> MarkerSpec:
    """A flat horizontal bar starting at x = 0, BAR_LENGTH long for value 1."""
    length = max(float(np.clip(value, 0.0, 1.0)) * BAR_LENGTH, MIN_BAR)
    return MarkerSpec(ns, mid, MarkerKind.CUBE, (length / 2, y, 0.0), (length, thick, FLAT),
                      color, lifetime_s=life)


def duplicate_ids(markers: Iterable[MarkerSpec]) -> list[tuple[str, int]]:
    """(ns, id) pairs used more than once (rviz would show only one of them)."""
    seen: set[tuple[str, int]] = set()
    dupes = []
    for m in markers:
        key = (m.ns, m.id)
        if key in seen:
            dupes.append(key)
        seen.add(key)
    return dupes


# --- pure image helpers (numpy; OpenCV only to decode JPEG and draw text) ---------------------

def palette(size: int) -> np.ndarray:
    """A fixed (size, 3) uint8 RGB palette: code k always gets the same colour.

    Hues step by the golden ratio so neighbouring codes differ visibly.
    """
    k = np.arange(size, dtype=np.float64)
    hue = (k * 0.618033988749895) % 1.0
    sat = 0.55 + 0.45 * ((k * 0.37) % 1.0)
    val = 0.65 + 0.35 * ((k * 0.73) % 1.0)
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    choices = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)]
    rgb = np.zeros((size, 3))
    for n, (r, g, b) in enumerate(choices):
        sel = i == n
        rgb[sel] = np.stack([r[sel], g[sel], b[sel]], axis=1)
    return (rgb * 255).round().astype(np.uint8)


def puzzle_image(codes: np.ndarray, codebook_size: int, cell_px: int) -> np.ndarray:
    """Colour a (H, W) grid of code indices, each cell cell_px square -> (H*c, W*c, 3) uint8."""
    pal = palette(max(int(codebook_size), 1))
    img = pal[np.clip(codes.astype(np.int64), 0, len(pal) - 1)]  # (H, W, 3)
    if cell_px > 1:
        img = np.repeat(np.repeat(img, cell_px, axis=0), cell_px, axis=1)
    return np.ascontiguousarray(img)


def salience_overlay(base: np.ndarray | None, means: Mapping[str, Mapping[str, float]],
                     width: int) -> np.ndarray:
    """Draw per-modality salience (five axis ticks, total bar, threshold) over an image.

    Args:
        base: (H, W, 3) uint8 RGB picture (the latest vision preview), or None for black.
        means: window_means() output: modality -> axis/salience/threshold/attend_rate.
        width: output width in pixels (height keeps the base's aspect, 3:4 without a base).

    Returns:
        (H, width, 3) uint8 RGB; the frame is green when vision is attended, grey otherwise.
    """
    # lazy: keeps cv2 out of this module's import
    import cv2
    height = int(round(width * 3 / 4)) if base is None else max(
        int(round(width * base.shape[0] / base.shape[1])), 60)
    img: np.ndarray
    if base is None:
        img = np.zeros((height, width, 3), np.uint8)
    else:
        resized = cv2.resize(base, (width, height), interpolation=cv2.INTER_NEAREST)
        img = (resized * 0.7).astype(np.uint8)  # dim the picture so the bars read well
    row_h = max(12, height // 10)
    top = height - row_h * len(means) - 4
    for r, (modality, m) in enumerate(means.items()):
        y = top + r * row_h
        bar_w = int((width - 90) * float(np.clip(m['salience'], 0, 1)))
        cv2.rectangle(img, (80, y + 2), (80 + bar_w, y + row_h - 2),
                      _rgb255(SALIENCE_COLOR), -1)
        thr_x = 80 + int((width - 90) * float(np.clip(m['threshold'], 0, 1)))
        cv2.line(img, (thr_x, y), (thr_x, y + row_h), (255, 255, 255), 1)
        for j, axis in enumerate(AXES):
            tick_h = int((row_h - 4) * float(np.clip(m[axis], 0, 1)))
            x = 52 + j * 5
            cv2.rectangle(img, (x, y + row_h - 2 - tick_h), (x + 3, y + row_h - 2),
                          _rgb255(AXIS_COLORS[axis]), -1)
        cv2.putText(img, modality[:6], (2, y + row_h - 3), cv2.FONT_HERSHEY_PLAIN,
                    max(row_h / 16, 0.6), (255, 255, 255), 1)
    attended = means.get('vision', {}).get('attend_rate', 0.0) > 0
    cv2.rectangle(img, (0, 0), (width - 1, height - 1),
                  (40, 220, 40) if attended else (90, 90, 90), 3)
    return np.ascontiguousarray(img)


def _rgb255(color: Color) -> tuple[int, int, int]:
    return tuple(int(round(c * 255)) for c in color[:3])  # type: ignore[return-value]
