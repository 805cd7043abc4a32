"""Remote first, local fallback: the edge's language encoder when another host encodes text.

When the graph spans two hosts, the assist host's encoder answers each text; the edge's own
encoder only waits. A text whose latent has not come from elsewhere within `deadline_s` is
encoded here (the link is down, or the remote is slow). Trust in the remote is the running
share of texts it answered in time; while it is below `min_trust` the edge stops waiting and
encodes at once, and every `probe_every`-th text still waits, so a remote that is back is
noticed. Pure logic: the node feeds it arrivals and the clock.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RemoteFirst:
    deadline_s: float
    trust_rate: float = 0.2
    min_trust: float = 0.2
    probe_every: int = 5
    trust: float = 1.0
    counts: dict[str, int] = field(default_factory=lambda: {
        'remote_answered': 0, 'local_fallbacks': 0, 'remote_late': 0})
    _pending: OrderedDict[int, tuple[float, Any]] = field(default_factory=OrderedDict)
    _done: OrderedDict[int, None] = field(default_factory=OrderedDict)
    _early: OrderedDict[int, None] = field(default_factory=OrderedDict)
    _offered: int = 0

    def offer(self, key: int, item: Any, now: float) -> list[Any]:
        """A text arrived: returns what to encode now ([item] when the remote is not trusted
        and this is not a probe, else [] and it waits)."""
        self._offered += 1
        if self._early.pop(key, 0) is None:  # the remote answered before the text got here
            self.counts['remote_answered'] += 1
            self._learn(True)
            self._finish(key)
            return []
        if self.trust < self.min_trust and self._offered % max(1, self.probe_every):
            self._finish(key)
            self.counts['local_fallbacks'] += 1
            return [item]
        self._pending[key] = (now + self.deadline_s, item)
        return []

    def answered(self, key: int) -> None:
        """A latent for `key` came from another encoder."""
        if self._pending.pop(key, None) is not None:
            self.counts['remote_answered'] += 1
            self._learn(True)
            self._finish(key)
        elif key in self._done:
            self.counts['remote_late'] += 1  # encoded here already: the remote was late
        else:
            self._early[key] = None
            while len(self._early) > 1000:
                self._early.popitem(last=False)

    def due(self, now: float) -> list[Any]:
        """Texts the remote did not answer in time: encode them here."""
        out = []
        while self._pending:
            key, (deadline, item) = next(iter(self._pending.items()))
            if deadline > now:
                break
            del self._pending[key]
            self.counts['local_fallbacks'] += 1
            self._learn(False)
            self._finish(key)
            out.append(item)
        return out

    def _learn(self, ok: bool) -> None:
        self.trust += self.trust_rate * ((1.0 if ok else 0.0) - self.trust)

    def _finish(self, key: int) -> None:
        self._done[key] = None
        while len(self._done) > 1000:  # enough to recognise late answers
            self._done.popitem(last=False)
