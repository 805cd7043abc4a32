"""The room as SNARC learns it: what a stream's signal features do while nothing happens.

A fan, an air handler whose level wanders by a few dB, a clock ticking once a second, a
camera's sensor noise and exposure drift, a motor's vibration on the IMU: none of them is news,
however loud. `Background` learns them per channel (audio: the newest hop's peak level, its
onset and each spectral band; vision: motion and brightness change; IMU: the strongest
acceleration and rotation of a window) from the inputs of the last `window_s` seconds, and
says how far an input stands out of them:

- the room's centre is each channel's median, its own spread 1.4826 MAD (robust to anything
  present less than half of the time);
- the room's regular excursions are its (1 - ROOM_SHARE) quantile: a sound present in a
  fifth of the inputs or more (a tick in one hop of four) is part of the room;
- an input stands out of the room in a channel by how far it lies above that quantile plus
  z spreads, where z is the normal quantile that the room alone exceeds in some channel of an
  input with probability `false_alarm` (shared out over the channels). That one number sets
  every threshold; nothing is said about which rooms exist.

Nothing restarts: a room that changes (a vent that starts or stops, a wandering level) is the
new room once it has filled half the window, and whatever was learnt keeps serving until then.
Pure numpy, driven by stamps only (deterministic).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

# A source present in at least this share of the inputs is part of the room: a clock ticking
# once a second lands in one audio hop (0.256 s) in four; a clap every 2 s, one in eight, is
# a repeated event (habituation's business).
ROOM_SHARE = 0.2
# The median absolute deviation of a normal distribution times this is its standard deviation.
MAD_TO_SIGMA = 1.4826
# Inputs in the window before the room is known (2 s of audio hops).
MIN_INPUTS = 8
# Inputs kept at most, whatever the rate (a 200 Hz IMU window stream over 10 s is 200).
MAX_INPUTS = 512


def bound_z(false_alarm: float, channels: int) -> float:
    """Spreads beyond the room's regular excursions that the room alone exceeds in one of
    `channels` channels with probability `false_alarm` (normal tails, shared out evenly)."""
    p = min(max(float(false_alarm), 1e-12), 0.5) / max(1, int(channels))
    return NormalDist().inv_cdf(1.0 - p)


class Background:
    """Per-channel learnt background of one stream of feature vectors (see module doc)."""

    def __init__(self, window_s: float, false_alarm: float, floors: Sequence[float]) -> None:
        """Create an empty background.

        Args:
            window_s: seconds of stamp time the room is learnt over.
            false_alarm: chance per input that the room alone stands out in some channel.
            floors: smallest spread per channel (a perfectly steady signal would make any
                flicker stand out); its length is the number of channels.
        """
        self.window_s = float(window_s)
        self.false_alarm = float(false_alarm)
        self.floors = np.asarray(floors, dtype=np.float64).reshape(-1)
        self.z = bound_z(self.false_alarm, self.floors.size)
        self._stamps: deque[float] = deque(maxlen=MAX_INPUTS)
        self._rows: deque[np.ndarray] = deque(maxlen=MAX_INPUTS)
        self._stats: tuple[np.ndarray, np.ndarray] | None = None  # (centre, bound)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def ready(self) -> bool:
        """True once MIN_INPUTS inputs are in the window."""
        return len(self._rows) >= MIN_INPUTS

    def _fits(self, x: np.ndarray) -> bool:
        return x.shape == self.floors.shape

    def _compute(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.ready:
            return None
        if self._stats is None:
            vals = np.stack(self._rows)
            n = vals.shape[0]
            i50 = (n - 1) // 2
            i_top = min(n - 1, int(round((1.0 - ROOM_SHARE) * (n - 1))))
            part = np.partition(vals, (i50, i_top), axis=0)
            centre, top = part[i50], part[i_top]
            mad = np.partition(np.abs(vals - centre), i50, axis=0)[i50]
            spread = np.maximum(MAD_TO_SIGMA * mad, self.floors)
            self._stats = centre, np.maximum(top, centre) + self.z * spread
        return self._stats

    def centre(self) -> np.ndarray | None:
        """Each channel's median over the window; None while warming up."""
        stats = self._compute()
        return None if stats is None else stats[0].copy()

    def bound(self) -> np.ndarray | None:
        """Per channel, the highest value the room itself reaches (at the false-alarm rate);
        None while warming up."""
        stats = self._compute()
        return None if stats is None else stats[1].copy()

    def excess(self, x: np.ndarray) -> np.ndarray | None:
        """How far x lies above the room's bound per channel (negative: within the room);
        None while warming up or when x has another number of channels."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        stats = self._compute()
        if stats is None or not self._fits(x):
            return None
        out: np.ndarray = x - stats[1]
        return out

    def update(self, stamp: float, x: np.ndarray) -> None:
        """Fold an input into the room; inputs older than window_s before it leave. A vector
        with another number of channels starts the window afresh (its floors stretched)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if not np.isfinite(x).all():
            return
        if not self._fits(x):
            self._stamps.clear()
            self._rows.clear()
            floor = float(self.floors.min()) if self.floors.size else 0.0
            self.floors = np.full(x.shape, floor)
            self.z = bound_z(self.false_alarm, x.size)
        self._stamps.append(float(stamp))
        self._rows.append(x.copy())
        while self._stamps and self._stamps[0] < stamp - self.window_s:
            self._stamps.popleft()
            self._rows.popleft()
        self._stats = None

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint: the window's stamps and rows, and the floors they go with."""
        rows = (np.stack(self._rows) if self._rows
                else np.zeros((0, self.floors.size), dtype=np.float64))
        return {'stamps': np.array(self._stamps, dtype=np.float64), 'rows': rows,
                'floors': self.floors.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint made by `state_dict` (one from before the learnt room, with no
        window in it, leaves the room to be learnt afresh)."""
        if 'rows' not in state:
            self._stamps.clear()
            self._rows.clear()
            self._stats = None
            return
        floors = np.asarray(state['floors'], dtype=np.float64).reshape(-1)
        rows = np.asarray(state['rows'], dtype=np.float64).reshape(-1, floors.size)
        stamps = np.asarray(state['stamps'], dtype=np.float64).reshape(-1)
        if stamps.shape[0] != rows.shape[0]:
            raise ValueError(f'{stamps.shape[0]} stamps for {rows.shape[0]} rows')
        self.floors = floors
        self.z = bound_z(self.false_alarm, floors.size)
        self._stamps.clear()
        self._rows.clear()
        self._stamps.extend(float(s) for s in stamps[-MAX_INPUTS:])
        self._rows.extend(r.copy() for r in rows[-MAX_INPUTS:])
        self._stats = None
