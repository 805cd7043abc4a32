"""What `sage status` shows, as data: the screen's model (pure: fed with records, no rclpy, no
rendering).

The salience bookkeeping is sage_bringup.graph_stats.GraphStats (fed by
sage_bringup.monitor.GraphMonitor); StatusModel wraps it with what only the status screen needs:
the ATP budget, the metabolic state, the latest stored experiences and each node's
/diagnostics. sage.status_render draws it; sage.status listens to the graph and feeds it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
import os
import time

from sage_bringup.graph_stats import GraphStats, ModalityStats
from sage.viz_core import BudgetRecord, StateRecord, StoredRecord
from sage_common.records import SalienceRecord

LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
# Diagnostics keys a memory node may use for its row count (first found wins).
MEMORY_SIZE_KEYS = ('rows', 'memory_rows', 'experiences', 'stored_rows', 'size')
STALE_AFTER_S = 5.0


class WindowedStats(GraphStats):
    """GraphStats keeping a longer per-modality history, for "the last seconds" views.

    GraphStats keeps 64 recent scores per modality (about 2 s of vision at 30 Hz); the status
    screen needs up to `history` to cover its window.
    """

    def __init__(self, history: int = 1024) -> None:
        super().__init__()
        self.history = history
        for stats in self.modalities.values():
            stats.recent = deque(stats.recent, maxlen=history)

    def on_salience(self, rec: SalienceRecord) -> None:
        if rec.modality not in self.modalities:
            self.modalities[rec.modality] = ModalityStats(recent=deque(maxlen=self.history))
        super().on_salience(rec)


@dataclass(frozen=True)
class NodeHealth:
    """One node's latest /diagnostics status."""

    name: str
    level: str
    message: str
    values: dict[str, str]
    received: float


def node_rates(values: Mapping[str, str]) -> dict[str, float]:
    """A node's non-zero event rates from its /diagnostics values (drops and errors aside)."""
    return {k.removesuffix('_per_s'): float(v) for k, v in values.items()
            if k.endswith('_per_s') and _num(v) > 0 and not k.startswith(('drop', 'error'))}


def node_drops(values: Mapping[str, str]) -> int:
    """Everything a node counted as dropped."""
    return sum(int(_num(v)) for k, v in values.items() if 'drop' in k and not k.endswith('_per_s'))


def node_p50_ms(values: Mapping[str, str]) -> dict[str, float]:
    """A node's median latencies in milliseconds, by stage."""
    return {k.removesuffix('_p50_ms'): float(v) for k, v in values.items()
            if k.endswith('_p50_ms') and _num(v)}


class StatusModel:
    """Everything the status screen shows (pure: fed with records, no rclpy)."""

    def __init__(self, window_s: float = 10.0, stored_count: int = 5,
                 clock: Callable[[], float] = time.monotonic, domain: str | None = None) -> None:
        self.stats = WindowedStats()
        # the domain listened on, and where it came from (sage_bringup.environment's rule)
        self.domain = domain or os.environ.get('ROS_DOMAIN_ID', '0')
        self.window_s = window_s
        self.clock = clock
        self.started = clock()
        self.budget: BudgetRecord | None = None
        self.state: StateRecord | None = None
        self.stored: deque[StoredRecord] = deque(maxlen=stored_count)
        self.nodes: dict[str, NodeHealth] = {}
        self.messages = 0

    # inputs (GraphMonitor feeds self.stats directly for salience, stored count and state)

    def on_budget(self, rec: BudgetRecord) -> None:
        self.budget = rec
        self.messages += 1

    def on_state(self, rec: StateRecord) -> None:
        self.state = rec
        self.messages += 1

    def on_stored(self, rec: StoredRecord) -> None:
        self.stored.append(rec)
        self.messages += 1

    def on_diagnostic(self, name: str, level: int, message: str,
                      values: Mapping[str, str]) -> None:
        short = name.removeprefix('sage: ')
        self.nodes[short] = NodeHealth(short, LEVELS.get(int(level), str(level)), message,
                                       dict(values), self.clock())
        self.messages += 1

    @property
    def heard_anything(self) -> bool:
        return self.messages > 0 or self.stats.inputs_total > 0

    # summaries

    def window(self, modality: str) -> list[SalienceRecord]:
        """Scores of the last window_s seconds (by capture stamp) of one modality."""
        recent = list(self.stats.modalities[modality].recent)
        if not recent:
            return []
        newest = max(r.stamp for r in recent)
        return [r for r in recent if r.stamp >= newest - self.window_s]

    def memory_size(self) -> str:
        for node in self.nodes.values():
            if 'memory' in node.name:
                for key in MEMORY_SIZE_KEYS:
                    if key in node.values:
                        return node.values[key]
        return '?'

    def memory_notes(self) -> list[str]:
        """What the memory node asks the user to see to: a quarantined file, a read-only store."""
        notes = []
        for node in self.nodes.values():
            if 'memory' not in node.name:
                continue
            if node.values.get('read_only'):
                notes.append(f'memory is read-only ({node.values["read_only"]}): nothing new '
                             'is stored')
            for path in filter(None, node.values.get('quarantined', '').split('; ')):
                notes.append(f'quarantined corrupt database {path} (not in use)')
        return notes


def _num(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
