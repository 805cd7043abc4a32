"""Conflict: disagreement between modalities aligned by stamp, over a window.

Each scored input leaves an activity in [0, 1] on its modality's timeline (vision: motion or
brightness change; audio: onset; IMU: rotation or linear acceleration). A pair "A>B" with
weight w says "when A is active, B should show it too" (the body rotates -> the image moves;
a loud onset -> something visible changes). At time t the pair's conflict is

    w * max(activity of A in [t - window, t - lag]) * (1 - max(activity of B in [t - window, t]))

where the lag gives B time to respond. An input of modality M gets the largest conflict of
the pairs M belongs to. A pair is disabled while either modality is not alive (no input in
the last liveness_s) or has no sample in its part of the window.
"""
from __future__ import annotations

from collections import deque
from typing import Any

# Audio latents are stamped at the start of their ~1 s window; their onset activity is placed
# this much later (s), at the newest hop.
AUDIO_OFFSET_S = 0.9


def parse_pairs(text: str) -> list[tuple[str, str, float]]:
    """Parse 'imu>vision:1.0,audio>vision:0.5' into (A, B, weight) triples.

    Raises:
        ValueError: on a malformed entry.
    """
    pairs = []
    for item in (p.strip() for p in text.split(',')):
        if not item:
            continue
        lhs, _, weight = item.partition(':')
        a, sep, b = lhs.partition('>')
        if not sep or not a.strip() or not b.strip():
            raise ValueError(f"conflict pair '{item}' is not 'A>B:weight'")
        pairs.append((a.strip(), b.strip(), float(weight) if weight else 1.0))
    return pairs


class ConflictWindow:
    """Activity timelines of all modalities and the pairwise conflict score."""

    def __init__(self, pairs: list[tuple[str, str, float]], window_s: float, lag_s: float,
                 liveness_s: float) -> None:
        self.pairs = list(pairs)
        self.window_s = float(window_s)
        self.lag_s = float(lag_s)
        self.liveness_s = float(liveness_s)
        self.timelines: dict[str, deque[tuple[float, float]]] = {}
        self.last_stamp: dict[str, float] = {}

    def push(self, modality: str, stamp: float, activity: float) -> None:
        """Record a modality's activity at a stamp (kept for one window, in stamp order)."""
        tl = self.timelines.setdefault(modality, deque())
        tl.append((stamp, activity))
        if len(tl) > 1 and tl[-2][0] > stamp:
            # Out-of-order sample: keep the timeline sorted (rare; the list is short).
            items = sorted(tl)
            tl.clear()
            tl.extend(items)
        self.last_stamp[modality] = max(stamp, self.last_stamp.get(modality, stamp))

    def prune(self, now: float) -> None:
        """Drop samples older than one window (plus 2 s for late, e.g. audio, scores)."""
        horizon = now - self.window_s - 2.0
        for tl in self.timelines.values():
            while tl and tl[0][0] < horizon:
                tl.popleft()

    def alive(self, modality: str, now: float) -> bool:
        """True if the modality produced an input within liveness_s of `now`."""
        last = self.last_stamp.get(modality)
        return last is not None and now - last <= self.liveness_s

    def _max_in(self, modality: str, lo: float, hi: float) -> float | None:
        best = None
        for stamp, act in self.timelines.get(modality, ()):
            if lo <= stamp <= hi and (best is None or act > best):
                best = act
        return best

    def score(self, modality: str, now: float) -> float:
        """Conflict in [0, 1] for an input of `modality` at time `now`."""
        best = 0.0
        for a, b, w in self.pairs:
            if modality not in (a, b):
                continue
            if not (self.alive(a, now) and self.alive(b, now)):
                continue
            act_a = self._max_in(a, now - self.window_s, now - self.lag_s)
            act_b = self._max_in(b, now - self.window_s, now)
            if act_a is None or act_b is None:
                continue
            best = max(best, w * act_a * (1.0 - act_b))
        return min(max(best, 0.0), 1.0)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint of liveness and the (short) timelines."""
        return {'last_stamp': dict(self.last_stamp),
                'timelines': {m: [list(p) for p in tl] for m, tl in self.timelines.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint."""
        self.last_stamp = {k: float(v) for k, v in state['last_stamp'].items()}
        self.timelines = {m: deque((float(s), float(a)) for s, a in tl)
                          for m, tl in state.get('timelines', {}).items()}
