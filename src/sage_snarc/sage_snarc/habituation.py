"""Habituation: a stimulus that keeps coming back loses salience; a changed one does not.

Each modality keeps up to `max_traces` traces (a stimulus descriptor, a strength h in [0, 1]
and when it was last reinforced); see `ModalityState.descriptor` in modality_state for what the
descriptor is per modality. An input matches the closest trace if their chord distance is
within the trace's radius. The stimulus part of salience is multiplied by
1 - max_drop * max_i h_i k(d_i), where k is 1 within the radius and falls off beyond it as a
Gaussian (a near miss counts partly; near_miss 0 = not at all), and h decays back to 0 with time
constant recovery_s (spontaneous recovery).

The radius is match_dist, or with `spreads` > 0 what the trace's own repeats taught it. A trace
then also keeps its latest `exemplars` instances, its distance to an input is the nearest of its
prototype and those, and each instance that reinforces it records how far it landed from the
nearest instance before it. Once two such gaps are known, the radius is `spreads` times their
`quantile`, between min_match_dist and max_match_dist. A punch repeated eight times lands within
about 0.1 of an earlier punch, so a car door 0.4 away is another sound, not the punch
habituated; a new trace keeps match_dist, one whose instances vary more (a beep under
traffic) grows up to max_match_dist, over which only its prototype counts (an instance still
within match_dist). The near-miss width shrinks with the radius (near_miss at match_dist).

A trace also keeps its latest instances' loudest frames (`frames`): a sound's loudest frame does
not move with where the sound falls in the window the way its descriptor does, so a repeat
caught at another phase, beyond the radius by its descriptor, is still recognised by a frame
within min_match_dist of an earlier instance's frame.

A trace keeps its loudest instance's loudness (an audio foreground's rise over the room, dB):
an input more than LOUDER_DB louder than that matches none of it (`match`, `beyond`).

An episode is a run of noticed inputs of one modality less than `episode_gap_s` apart (the
windows an audio event spans, the frames of an object's arrival). It counts as one repeat: its
onset is matched by descriptor and reinforces (h <- h + rate (1 - h)) or starts (h = rate)
one trace; its later inputs share that trace (or a stronger one they recognise), so the windows
of a repeated sound fade together whatever part of it each holds, and they also fade within
the episode by an episode-local strength (kept by the core).

A sound's sharp attack beyond the open episode's trace (`beyond`) starts an episode of its own
(episodes.habituation_of): a changed sound within the gap is not the repeat fading on.

An onset that is a near miss of a trace (`near_miss_of`: outside its radius, within its
near-miss band) starts a trace of its own and also strengthens the missed one by its kernel's
share of a repeat (`generalise`): habituation spreads to a similar stimulus as far as it is
alike, so a sound whose repeats alternate between two readings does not split into two traces
that each habituate half as fast.

Habituation is to stimuli without consequences: a reward credited to a stimulus weakens its
traces (h <- h (1 - |r| e), `relieve`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sage_snarc.robust import chord

# SNARC's traces (ModalityState.create), per modality:
MAX_TRACES = 64
# Chord distance within which a descriptor is the same stimulus (0.35 = 20 degrees): a new
# trace's radius (at 0.45 with near_miss 0.15 a car door after eight booms in a fan's noise
# fell in the boom's near-miss band and was habituated).
MATCH_DIST = 0.35
NEAR_MISS = 0.05  # width just beyond the radius over which a stimulus partly counts as a repeat
# A trace's learnt radius: RADIUS_SPREADS times the RADIUS_QUANTILE of its instances' gaps, at
# least RADIUS_MIN (a repeat caught at another phase of the audio hop still matches), from its
# latest RADIUS_EXEMPLARS instances.
RADIUS_SPREADS = 2.0
RADIUS_QUANTILE = 0.8
RADIUS_MIN = 0.25
RADIUS_EXEMPLARS = 8
# The largest learnt radius (0.6 = 35 degrees). A room's own beep or tick under traffic or a TV
# lands up to 0.4-0.67 from its trace, as far as another sound: only its instances' spread can
# say it is one sound. Capped at MATCH_DIST, such a sound split into several weak traces and
# kept alarming (busy tuning seeds 300-309: false alarms 1.13 -> 0.97 per calm minute).
RADIUS_MAX = 0.6
# A stimulus more than this much louder (dB of its foreground over the room) than every
# instance of a trace is not that trace's stimulus repeated: a rise in intensity dishabituates.
# A punch 52 dB over the room fell within the wide radius of a clock's ticks under traffic and
# was habituated; at 6 dB the busy tuning seeds' false alarms rose.
LOUDER_DB = 10.0


def _nearest_kept(ring: np.ndarray, seen: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per trace, the chord distance from x to the nearest vector kept in its ring
    (ring: (k, n, dim), seen: how many each trace was given; inf when none)."""
    n = ring.shape[1]
    mask = np.arange(n)[None, :] < np.minimum(seen, n)[:, None]
    best = np.where(mask, ring @ x, -2.0).max(axis=1)
    return np.where(best > -2.0, chord(np.clip(best, -1.0, 1.0)), np.inf)


class Habituation:
    """Habituation traces of one modality."""

    def __init__(self, *, max_traces: int, rate: float, max_drop: float, recovery_s: float,
                 match_dist: float, near_miss: float | None = None,
                 merge: float = 0.2, spreads: float = 0.0, quantile: float = 0.8,
                 min_match_dist: float = 0.0, max_match_dist: float | None = None,
                 exemplars: int = 8) -> None:
        self.max_traces = max(1, int(max_traces))
        self.rate = float(rate)
        self.max_drop = float(max_drop)
        self.recovery_s = float(recovery_s)
        self.match_dist = float(match_dist)
        self.near_miss = self.match_dist / 3.0 if near_miss is None else float(near_miss)
        self.merge = float(merge)
        self.spreads = max(float(spreads), 0.0)  # 0: every trace's radius is match_dist
        self.quantile = min(max(float(quantile), 0.0), 1.0)
        self.min_match_dist = min(float(min_match_dist), self.match_dist)
        self.max_match_dist = max(self.match_dist if max_match_dist is None
                                  else float(max_match_dist), self.match_dist)
        self.n_ex = max(1, int(exemplars))
        self.ex: np.ndarray | None = None  # (k, n_ex, dim) latest instances of each trace
        self.ex_n = np.zeros(0, dtype=np.int64)  # instances seen per trace (ring position)
        # per trace: how far its latest 2 n_ex instances landed from the nearest one before
        # (NaN: none yet)
        self.gaps = np.zeros((0, 2 * self.n_ex), dtype=np.float64)
        self.r = np.zeros(0, dtype=np.float64)  # each trace's radius (see `radius`)
        self.vecs: np.ndarray | None = None  # (k, dim)
        self.h = np.zeros(0, dtype=np.float64)
        self.t = np.zeros(0, dtype=np.float64)
        self.loud = np.zeros(0, dtype=np.float64)  # loudest instance per trace (NaN: unknown)
        self.frames: np.ndarray | None = None  # (k, n_ex, dim) latest instances' loudest frames
        self.frames_n = np.zeros(0, dtype=np.int64)  # frames kept per trace (ring position)

    def _louder(self, loud: float | None) -> np.ndarray:
        """Traces whose every instance was LOUDER_DB quieter than an input of loudness `loud`."""
        if loud is None:
            return np.zeros(self.h.shape, dtype=bool)
        with np.errstate(invalid='ignore'):
            return loud > self.loud + LOUDER_DB

    def _distances(self, x: np.ndarray, frame: bool = False) -> np.ndarray:
        """Each trace's distance to x (frame: x is a loudest frame, also compared with the
        traces' frames, which count within min_match_dist)."""
        vecs = self.vecs
        if vecs is None or vecs.shape[0] == 0 or vecs.shape[1] != x.shape[0]:
            return np.empty(0)
        d = chord(vecs @ x)
        frames = self.frames
        if frame and frames is not None and frames.shape[:2] == (d.size, self.n_ex) \
                and frames.shape[2] == x.shape[0]:
            near = _nearest_kept(frames, self.frames_n, x)
            d = np.where(near <= self.min_match_dist, np.minimum(d, near), d)
        if self.ex is not None and self.spreads > 0.0:
            near = _nearest_kept(self.ex, self.ex_n, x)
            near = np.where(np.isfinite(near), near, d)
            # An instance counts within match_dist, only the prototype within a wider learnt
            # radius: eight scattered instances, each with a wide radius, would cover other
            # sounds (a ticking clock's trace took in a boom and a car door).
            d = np.minimum(d, near + np.maximum(self.radius() - self.match_dist, 0.0))
        return d

    def beyond(self, index: int, x: np.ndarray, loud: float | None = None,
               max_dist: float | None = None, frame: bool = False) -> bool:
        """Whether unit descriptor x (of loudness `loud`; frame: a loudest frame) lies outside
        trace `index`'s radius (at most max_dist) or is far louder than it (another stimulus)."""
        d = self._distances(x, frame)
        if not 0 <= index < d.size:
            return True
        return bool(d[index] > self._radius(max_dist)[index] or self._louder(loud)[index])

    def _radius(self, max_dist: float | None) -> np.ndarray:
        r = self.radius()
        return r if max_dist is None else np.minimum(r, max_dist)

    def radius(self) -> np.ndarray:
        """Match radius of every trace (chord distance)."""
        if self.spreads <= 0.0 or self.r.shape[0] != self.h.shape[0]:
            return np.full(self.h.shape[0], self.match_dist)
        return self.r

    def _learn_radius(self, j: int) -> None:
        g = self.gaps[j][np.isfinite(self.gaps[j])]
        self.r[j] = (self.match_dist if g.size < 2 else
                     min(max(self.spreads * float(np.quantile(g, self.quantile)),
                             self.min_match_dist), self.max_match_dist))

    def _remember(self, j: int, x: np.ndarray, fresh: bool) -> None:
        """Keep x among trace j's instances (fresh: the trace starts with it)."""
        if self.ex is None or self.ex.shape[2] != x.shape[0]:
            return
        if fresh:
            self.ex_n[j] = 0
            self.gaps[j] = np.nan
        elif self.ex_n[j] > 0:
            k = min(int(self.ex_n[j]), self.n_ex)
            gap = float(chord(np.clip(self.ex[j, :k] @ x, -1.0, 1.0)).min())
            self.gaps[j] = np.roll(self.gaps[j], -1)
            self.gaps[j, -1] = gap
        self._learn_radius(j)
        self.ex[j, int(self.ex_n[j]) % self.n_ex] = x
        self.ex_n[j] += 1

    def _remember_frame(self, j: int, frame: np.ndarray | None, fresh: bool) -> None:
        """Keep `frame` (an instance's loudest frame) among trace j's frames."""
        if self.vecs is None:
            return
        k = self.vecs.shape[0]
        if frame is None or (self.frames is not None and self.frames.shape[2] != frame.shape[0]):
            if fresh and self.frames is not None and j < self.frames_n.shape[0]:
                self.frames_n[j] = 0
            return
        if self.frames is None:
            self.frames = np.zeros((k, self.n_ex, frame.shape[0]), dtype=np.float32)
            self.frames_n = np.zeros(k, dtype=np.int64)
        if fresh:
            self.frames_n[j] = 0
        self.frames[j, int(self.frames_n[j]) % self.n_ex] = frame
        self.frames_n[j] += 1

    def _strength(self, now: float) -> np.ndarray:
        return self.h * np.exp(-np.maximum(now - self.t, 0.0) / self.recovery_s)

    def match(self, x: np.ndarray, now: float, loud: float | None = None,
              max_dist: float | None = None, frame: bool = False) -> tuple[int, float]:
        """Closest trace within its radius (at most max_dist) of unit descriptor x (frame: a
        loudest frame, `_distances`), and the salience factor.

        The factor is 1 - max_drop * max_i h_i k(d_i), with k = 1 within match_dist and
        exp(-0.5 ((d - match_dist) / near_miss)^2) beyond: a near miss (a sound caught at another
        phase of the audio window) is partly habituated instead of not at all.

        Returns:
            (trace index or -1, factor in [1 - max_drop, 1]).
        """
        d, r, kernel = self._kernel(x, loud, max_dist, frame)
        if d.size == 0:
            return -1, 1.0
        factor = 1.0 - self.max_drop * float(np.max(self._strength(now) * kernel))
        inside = np.flatnonzero(d <= r)
        if inside.size == 0:
            return -1, factor
        return int(inside[np.argmin(d[inside])]), factor

    def _kernel(self, x: np.ndarray, loud: float | None, max_dist: float | None,
                frame: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each trace's distance to x, radius, and how far x counts as its repeat (`match`)."""
        d = self._distances(x, frame)
        if d.size == 0:
            return d, d, d
        r = self._radius(max_dist)
        d = np.where(self._louder(loud), np.inf, d)
        excess = np.maximum(d - r, 0.0)
        if self.near_miss > 0.0 and self.match_dist > 0.0:
            width = np.maximum(self.near_miss * r / self.match_dist, 1e-9)
            return d, r, np.exp(-0.5 * (excess / width) ** 2)
        return d, r, (excess == 0.0).astype(np.float64)

    def near_miss_of(self, x: np.ndarray, now: float, loud: float | None = None,
                     max_dist: float | None = None, frame: bool = False) -> tuple[int, float]:
        """The trace x habituates most as a near miss (outside its radius) and how far x
        counts as its repeat (the kernel, in (0, 1): vanishing for another sound); (-1, 0)
        when no trace has x outside its radius."""
        d, r, kernel = self._kernel(x, loud, max_dist, frame)
        if d.size == 0:
            return -1, 0.0
        k = np.where(d > r, kernel, 0.0)
        j = int(np.argmax(self._strength(now) * k))
        return (j, float(k[j])) if k[j] > 0.0 else (-1, 0.0)

    def generalise(self, index: int, amount: float, now: float) -> None:
        """Strengthen trace `index` by a fraction `amount` of a repeat (a near miss of it):
        habituation spreads to similar stimuli as far as they are alike."""
        if 0 <= index < self.h.shape[0]:
            h_now = float(self._strength(now)[index])
            self.h[index] = h_now + self.rate * min(max(amount, 0.0), 1.0) * (1.0 - h_now)
            self.t[index] = now

    def factor(self, index: int, now: float) -> float:
        """Salience factor of trace `index` now (1 when there is no such trace)."""
        if index < 0 or index >= self.h.shape[0]:
            return 1.0
        return 1.0 - self.max_drop * float(self._strength(now)[index])

    def reinforce(self, x: np.ndarray | None, index: int, now: float,
                  loud: float | None = None, frame: np.ndarray | None = None) -> int:
        """Strengthen trace `index` (drifting it towards x), or start a trace for x; an
        instance that teaches it (x given) leaves its loudest frame `frame` too.

        Returns:
            The index of the reinforced or new trace (-1 when there was nothing to do).
        """
        if 0 <= index < self.h.shape[0] and self.vecs is not None:
            h_now = float(self._strength(now)[index])
            self.h[index] = h_now + self.rate * (1.0 - h_now)
            self.t[index] = now
            if loud is not None:
                self.loud[index] = np.fmax(self.loud[index], loud)
            if x is not None:
                self._remember(index, x, fresh=False)
                self._remember_frame(index, frame, fresh=False)
                # The trace drifts towards its instances (a prototype of the stimulus).
                v = (1.0 - self.merge) * self.vecs[index] + self.merge * x
                self.vecs[index] = v / max(float(np.linalg.norm(v)), 1e-12)
            return index
        if x is None:
            return -1
        if self.vecs is None or self.vecs.shape[1] != x.shape[0]:
            self.vecs = np.zeros((0, x.shape[0]), dtype=np.float32)
            self.h = np.zeros(0)
            self.t = np.zeros(0)
            self.ex = np.zeros((0, self.n_ex, x.shape[0]), dtype=np.float32)
            self.ex_n = np.zeros(0, dtype=np.int64)
            self.gaps = np.zeros((0, 2 * self.n_ex))
            self.r = np.zeros(0)
            self.loud = np.zeros(0)
            self.frames, self.frames_n = None, np.zeros(0, dtype=np.int64)
        fresh = np.nan if loud is None else float(loud)
        if self.vecs.shape[0] >= self.max_traces:
            # Forget the weakest trace (ties: the oldest, by index order).
            j = int(np.argmin(self._strength(now)))
            self.vecs[j] = x
            self.h[j] = self.rate
            self.t[j] = now
            self.loud[j] = fresh
            self._remember(j, x, fresh=True)
            self._remember_frame(j, frame, fresh=True)
            return j
        self.vecs = np.vstack([self.vecs, x[None, :].astype(np.float32)])
        self.h = np.append(self.h, self.rate)
        self.t = np.append(self.t, now)
        self.loud = np.append(self.loud, fresh)
        if self.ex is not None:
            self.ex = np.concatenate([self.ex, np.zeros((1,) + self.ex.shape[1:], np.float32)])
            self.ex_n = np.append(self.ex_n, 0)
            self.gaps = np.vstack([self.gaps, np.full((1, 2 * self.n_ex), np.nan)])
            self.r = np.append(self.r, self.match_dist)
            self._remember(self.vecs.shape[0] - 1, x, fresh=True)
        if self.frames is not None:
            self.frames = np.concatenate(
                [self.frames, np.zeros((1,) + self.frames.shape[1:], np.float32)])
            self.frames_n = np.append(self.frames_n, 0)
        self._remember_frame(self.vecs.shape[0] - 1, frame, fresh=True)
        return self.vecs.shape[0] - 1

    def relieve(self, x: np.ndarray, amount: float, now: float) -> None:
        """Weaken the traces matching x by a fraction `amount` (a stimulus had consequences)."""
        d = self._distances(x)
        if d.size == 0:
            return
        hit = d <= self.radius()
        if np.any(hit):
            self.h[hit] = self._strength(now)[hit] * (1.0 - min(max(amount, 0.0), 1.0))
            self.t[hit] = now

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint."""
        return {'vecs': None if self.vecs is None else self.vecs.copy(),
                'h': self.h.copy(), 't': self.t.copy(),
                'exemplars': None if self.ex is None else self.ex.copy(),
                'exemplars_seen': self.ex_n.copy(), 'gaps': self.gaps.copy(),
                'loud': self.loud.copy(),
                'frames': None if self.frames is None else self.frames.copy(),
                'frames_seen': self.frames_n.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        vecs = state['vecs']
        self.vecs = None if vecs is None else np.asarray(vecs, dtype=np.float32).copy()
        self.h = np.asarray(state['h'], dtype=np.float64).copy()
        self.t = np.asarray(state['t'], dtype=np.float64).copy()
        n = self.h.shape[0]
        loud = np.asarray(state.get('loud', np.full(n, np.nan)), dtype=np.float64)
        self.loud = loud.copy() if loud.shape == (n,) else np.full(n, np.nan)
        ex = state.get('exemplars')
        if ex is not None and np.asarray(ex).shape[:2] == (n, self.n_ex):
            self.ex = np.asarray(ex, dtype=np.float32).copy()
            self.ex_n = np.asarray(state['exemplars_seen'], dtype=np.int64).copy()
            self.gaps = np.asarray(state['gaps'], dtype=np.float64).copy()
        else:  # a checkpoint from before exemplars (or of another count): each trace's own
            self.ex = (None if self.vecs is None else
                       np.repeat(self.vecs[:, None, :], self.n_ex, axis=1).astype(np.float32))
            self.ex_n = np.ones(n, dtype=np.int64)
            self.gaps = np.full((n, 2 * self.n_ex), np.nan)
        frames = state.get('frames')
        if frames is not None and np.asarray(frames).shape[:2] == (n, self.n_ex):
            self.frames = np.asarray(frames, dtype=np.float32).copy()
            self.frames_n = np.asarray(state['frames_seen'], dtype=np.int64).copy()
        else:  # a checkpoint from before frames: the next instances bring them
            self.frames, self.frames_n = None, np.zeros(n, dtype=np.int64)
        self.r = np.full(n, self.match_dist)
        for j in range(n):
            self._learn_radius(j)
