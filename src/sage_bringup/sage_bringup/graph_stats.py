"""Running statistics of a live graph, fed from its topics (pure; used by launch and status)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sage_common.records import AXES, MODALITIES, SalienceRecord


@dataclass
class ModalityStats:
    inputs: int = 0
    attended: int = 0
    stored: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=64))

    def add(self, rec: SalienceRecord) -> None:
        self.inputs += 1
        self.attended += int(rec.attend)
        self.recent.append(rec)

    @property
    def attention_rate(self) -> float:
        return self.attended / self.inputs if self.inputs else 0.0

    def mean(self, attr: str) -> float:
        if not self.recent:
            return 0.0
        return sum(float(getattr(r, attr)) for r in self.recent) / len(self.recent)


class GraphStats:
    """Per-modality salience counts and recent scores, stored experiences, metabolic state."""

    def __init__(self) -> None:
        self.modalities: dict[str, ModalityStats] = {m: ModalityStats() for m in MODALITIES}
        self.stored_total = 0
        self.state = ''
        self.state_reason = ''
        self.budget: dict[str, float] = {}

    def on_salience(self, rec: SalienceRecord) -> None:
        self.modalities.setdefault(rec.modality, ModalityStats()).add(rec)

    def on_stored(self, modality: str) -> None:
        self.stored_total += 1
        self.modalities.setdefault(modality, ModalityStats()).stored += 1

    def on_state(self, state: str, reason: str) -> None:
        self.state, self.state_reason = state, reason

    @property
    def inputs_total(self) -> int:
        return sum(m.inputs for m in self.modalities.values())

    @property
    def attention_rate(self) -> float:
        total = self.inputs_total
        return sum(m.attended for m in self.modalities.values()) / total if total else 0.0

    def rows(self) -> list[list[str]]:
        """One row per modality that has seen input: name, counts, mean recent scores."""
        out = []
        for name, m in self.modalities.items():
            if not m.inputs:
                continue
            out.append([name, str(m.inputs), f'{m.attention_rate:.1%}', str(m.stored)]
                       + [f'{m.mean(a):.2f}' for a in AXES] + [f'{m.mean("salience"):.2f}'])
        return out

    HEADER = ['modality', 'inputs', 'attend', 'stored', *(a[:4] for a in AXES), 'sal']

    def line(self) -> str:
        """Compact one-line view for logs and non-terminal output."""
        parts = [f'{r[0]}: n={r[1]} sal={r[-1]} att={r[2]}' for r in self.rows()]
        state = f' | {self.state}' if self.state else ''
        return ' | '.join(parts) + f' | stored={self.stored_total}{state}'
