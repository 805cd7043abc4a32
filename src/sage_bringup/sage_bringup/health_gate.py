"""When the graph counts as up and healthy, for systemd's READY=1 and WATCHDOG=1.

Every SAGE node publishes /diagnostics at a fixed period from its executor, so a node whose
executor hangs (a deadlock, a SIGSTOP, a stuck callback) goes quiet on /diagnostics. The gate
is ready once every expected node has been heard, and healthy while every node was heard within
`stale_after_s`. Pure bookkeeping: callers pass the time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# DiagnosticsPublisher (sage_common.ros) names each status 'sage: <node name>'.
STATUS_PREFIX = 'sage: '


def node_of_status(name: str) -> str | None:
    """The node a DiagnosticStatus name belongs to, or None for other publishers."""
    return name[len(STATUS_PREFIX):] if name.startswith(STATUS_PREFIX) else None


@dataclass
class HealthGate:
    """Last time each expected node was heard; ready and healthy verdicts.

    Attributes:
        expected: node names that must be heard.
        stale_after_s: a node not heard for longer than this makes the graph unhealthy.
    """

    expected: frozenset[str]
    stale_after_s: float
    last_seen: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stale_after_s <= 0:
            raise ValueError(f'stale_after_s must be > 0, got {self.stale_after_s}')

    def heard(self, node: str, now: float) -> None:
        if node in self.expected:
            self.last_seen[node] = now

    def missing(self) -> list[str]:
        """Expected nodes never heard."""
        return sorted(self.expected - set(self.last_seen))

    def stale(self, now: float) -> list[str]:
        """Expected nodes not heard within stale_after_s (never heard included)."""
        return sorted(n for n in self.expected
                      if now - self.last_seen.get(n, float('-inf')) > self.stale_after_s)

    def ready(self) -> bool:
        return not self.missing()

    def healthy(self, now: float) -> bool:
        return not self.stale(now)
