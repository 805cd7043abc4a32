"""`sage status`: a live terminal screen of the running graph (rich).

Shows salience per modality and axis over the last seconds, ATP bars per plugin, the metabolic
state and its last reason, rates/drops/latencies per node from /diagnostics, memory size and
the latest stored experiences.

The salience bookkeeping is sage_bringup.graph_stats.GraphStats
(fed by sage_bringup.monitor.GraphMonitor);
this module wraps it in StatusModel with what only the status screen needs, and extends
GraphMonitor with the budget and /diagnostics subscriptions.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import io
import os
import sys
import threading
import time
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sage_bringup.graph_stats import GraphStats, ModalityStats
from sage.viz_core import BudgetRecord, StateRecord, StoredRecord
from sage_common.records import AXES, SalienceRecord
from sage_common.vocabulary import MetabolicState, Topic

SPARK = '▁▂▃▄▅▆▇█'
LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
LEVEL_STYLES = {'OK': 'green', 'WARN': 'yellow', 'ERROR': 'bold red', 'STALE': 'dim'}
STATE_STYLES = {MetabolicState.WAKE: 'green', MetabolicState.FOCUS: 'bold cyan',
                MetabolicState.REST: 'white', MetabolicState.DREAM: 'magenta',
                MetabolicState.CRISIS: 'bold red'}
# Diagnostics keys a memory node may use for its row count (first found wins).
MEMORY_SIZE_KEYS = ('rows', 'memory_rows', 'experiences', 'stored_rows', 'size')
STALE_AFTER_S = 5.0
# Below this width the full tables would truncate their columns: the compact screen is used.
FULL_MIN_WIDTH = 120


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


def sparkline(values: list[float], width: int) -> str:
    """Values in [0, 1] as block characters, resampled to at most `width` columns."""
    if not values:
        return ''
    if len(values) > width:
        step = len(values) / width
        values = [max(values[int(i * step):max(int((i + 1) * step), int(i * step) + 1)])
                  for i in range(width)]
    return ''.join(SPARK[min(int(max(v, 0.0) * len(SPARK)), len(SPARK) - 1)] for v in values)


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


def bar(value: float, top: float, width: int) -> str:
    """A text bar of `width` cells filled in proportion value/top."""
    filled = 0 if top <= 0 else int(round(width * min(max(value / top, 0.0), 1.0)))
    return '█' * filled + '·' * (width - filled)


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

    # rendering

    def render(self, size: tuple[int, int] | None = None) -> RenderableType:
        """The screen as one rich renderable; for a terminal of `size` (columns, rows) the
        full screen when it fits, else the compact one (sage.status_compact)."""
        full = self._full()
        if size is None:
            return full
        width, height = size
        if width >= FULL_MIN_WIDTH and rendered_rows(full, width) <= height:
            return full
        from sage.status_compact import compact_screen
        return compact_screen(self, width, height)

    def _full(self) -> RenderableType:
        parts: list[RenderableType] = [self._header(), self._salience_table()]
        parts.append(self._budget_table())
        parts.append(self._state_panel())
        parts.append(self._nodes_table())
        parts.append(self._memory_table())
        return Group(*parts)

    def _header(self) -> Text:
        s = self.stats
        up = self.clock() - self.started
        text = Text(f'SAGE status  domain {self.domain}  '
                    f'listening {up:.0f} s  inputs {s.inputs_total}  '
                    f'attended {s.attention_rate:.1%}  stored {s.stored_total}', style='bold')
        if not self.heard_anything:
            text.append('  (no messages yet: is the graph running on this ROS_DOMAIN_ID?)',
                        style='yellow')
        return text

    def _salience_table(self) -> Table:
        table = Table(title=f'Salience (last {self.window_s:.0f} s)', title_justify='left',
                      expand=False)
        for col in ('modality', 'in/s', 'attend', 'stored', *(a[:4] for a in AXES), 'sal',
                    'thr', 'salience trend'):
            table.add_column(col, justify='left' if col in ('modality', 'salience trend')
                             else 'right')
        for name, m in self.stats.modalities.items():
            recs = self.window(name)
            if not m.inputs or not recs:
                continue
            span = max(recs[-1].stamp - recs[0].stamp, 1e-9)
            rate = (len(recs) - 1) / span if len(recs) > 1 else 0.0
            att = sum(r.attend for r in recs) / len(recs)

            def mean(attr: str, recs: list[SalienceRecord] = recs) -> str:
                return f'{sum(getattr(r, attr) for r in recs) / len(recs):.2f}'
            table.add_row(name, f'{rate:.1f}', f'{att:.0%}', str(m.stored),
                          *(mean(a) for a in AXES),
                          Text(mean('salience'), style='bold'), mean('threshold'),
                          sparkline([r.salience for r in recs], 40))
        return table

    def _budget_table(self) -> RenderableType:
        b = self.budget
        if b is None:
            return Text('ATP: no budget yet', style='dim')
        table = Table(title=f'ATP  total {b.budget_total:.1f}  reserve {b.reserve:.1f}  '
                            f'tick {b.tick}  ({b.metabolic_state})', title_justify='left')
        for col in ('plugin', 'modality', 'trust', 'share', 'atp', 'used', 'allocation'):
            table.add_column(col, justify='left' if col in ('plugin', 'modality', 'allocation')
                             else 'right')
        top = max([a.atp for a in b.allocations] + [1e-9])
        for a in b.allocations:
            table.add_row(a.plugin, a.modality or '-', f'{a.trust:.2f}', f'{a.share:.0%}',
                          f'{a.atp:.2f}', f'{a.atp_used:.2f}',
                          Text(bar(a.atp, top, 24), style='blue'))
        return table

    def _state_panel(self) -> RenderableType:
        st = self.state
        if st is None:
            return Text('Metabolic state: unknown (nothing on /sage/metabolic_state yet)',
                        style='dim')
        text = Text()
        text.append(st.state or '?', style=STATE_STYLES.get(st.state, 'white'))
        text.append(f'  (from {st.previous or "-"}, {st.dwell_s:.1f} s)  reason: {st.reason}'
                    f'  reserve {st.atp_reserve:.0%}  memory pressure '
                    f'{st.memory_pressure or "?"}')
        return Panel(text, title='Metabolic state', title_align='left', expand=False)

    def _nodes_table(self) -> RenderableType:
        if not self.nodes:
            return Text('Nodes: no /diagnostics yet', style='dim')
        table = Table(title='Nodes (/diagnostics)', title_justify='left')
        for col in ('node', 'level', 'rates /s', 'drops', 'errors', 'p50 ms', 'message'):
            table.add_column(col)
        now = self.clock()
        for name in sorted(self.nodes):
            n = self.nodes[name]
            level = 'STALE' if now - n.received > STALE_AFTER_S else n.level
            rates = ' '.join(f'{k}={v:.1f}' for k, v in node_rates(n.values).items())
            drops = node_drops(n.values)
            errors = n.values.get('errors', '0')
            p50 = ' '.join(f'{k}={v:.1f}' for k, v in node_p50_ms(n.values).items())
            table.add_row(name, Text(level, style=LEVEL_STYLES.get(level, '')), rates,
                          str(drops), errors, p50, n.message)
        return table

    def _memory_table(self) -> RenderableType:
        table = Table(title=f'Memory  size {self.memory_size()}  stored while watching '
                            f'{self.stats.stored_total}', title_justify='left')
        for col in ('stamp', 'modality', 'salience', 'experience'):
            table.add_column(col)
        for rec in reversed(self.stored):
            table.add_row(time.strftime('%H:%M:%S', time.localtime(rec.stamp)), rec.modality,
                          f'{rec.salience:.2f}', rec.text[:40] if rec.text else rec.uuid[:12])
        notes = self.memory_notes()
        if notes:
            return Group(table, *(Text(f'NOTE: {n}', style='bold red') for n in notes))
        return table


def _num(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def rendered_rows(renderable: RenderableType, width: int) -> int:
    """Terminal rows a renderable takes at a width."""
    console = Console(width=width, file=io.StringIO(), force_terminal=False, color_system=None)
    return len(console.render_lines(renderable, pad=False))


def render_text(model: StatusModel, width: int = 140) -> str:
    """The screen as plain text (tests, logs, non-terminal output)."""
    console = Console(width=width, file=None, record=True, force_terminal=False,
                      color_system=None)
    with console.capture() as capture:
        console.print(model.render())
    return capture.get()


# --- ROS side ---------------------------------------------------------------------------------

def _make_monitor(model: StatusModel, lock: threading.Lock, context: Any) -> Any:
    """A GraphMonitor extended with the budget, /diagnostics and richer stored/state data."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sage_interfaces.msg import AtpBudget

    from sage_bringup.monitor import GraphMonitor
    from sage.viz_core import budget_from_msg, state_from_msg, stored_from_msg
    from sage_common.ros import RELIABLE_QOS

    class StatusMonitor(GraphMonitor):
        def __init__(self) -> None:
            super().__init__(model.stats, lock, context=context)
            self.create_subscription(AtpBudget, Topic.BUDGET, self._on_budget, RELIABLE_QOS)
            self.create_subscription(DiagnosticArray, Topic.DIAGNOSTICS, self._on_diagnostics, 50)

        def _on_budget(self, msg: Any) -> None:
            with lock:
                model.on_budget(budget_from_msg(msg))

        def _on_stored(self, msg: Any) -> None:
            super()._on_stored(msg)
            with lock:
                model.on_stored(stored_from_msg(msg))

        def _on_state(self, msg: Any) -> None:
            super()._on_state(msg)
            with lock:
                model.on_state(state_from_msg(msg))

        def _on_diagnostics(self, msg: Any) -> None:
            with lock:
                for s in msg.status:
                    level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else s.level
                    model.on_diagnostic(s.name, int(level), s.message,
                                        {kv.key: kv.value for kv in s.values})

    return StatusMonitor()


class StatusListener:
    """Runs the status monitor node in a background thread with its own context."""

    def __init__(self, model: StatusModel) -> None:
        self.model = model
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self._context = rclpy.Context()
        kwargs: dict[str, Any] = {'context': self._context,
                                  # the launcher's monitor is also 'sage_monitor': rename ours
                                  'args': ['--ros-args', '-r', '__node:=sage_status']}
        try:
            from rclpy.signals import SignalHandlerOptions
            kwargs['signal_handler_options'] = SignalHandlerOptions.NO
        except ImportError:
            pass
        rclpy.init(**kwargs)
        self._node = _make_monitor(self.model, self.lock, self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - a shutdown race ends the thread quietly
            pass

    def render(self, size: tuple[int, int] | None = None) -> RenderableType:
        with self.lock:
            return self.model.render(size)

    def stop(self) -> None:
        import rclpy
        self._executor.shutdown(timeout_sec=1.0)
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._context)
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def run_status(duration: float | None = None, once: bool = False, out: TextIO = sys.stdout,
               window_s: float = 10.0, settings: Sequence[Any] = ()) -> int:
    """Watch the running graph and show the status screen.

    Args:
        duration: stop after this many seconds (None: until Ctrl-C). With once=True, how long
            to listen before printing (default 3 s).
        once: print one screen after listening instead of a live, refreshing screen.
        out: where the screen goes (a terminal gets colours and live refresh).
        window_s: the salience columns summarise this many recent seconds.
        settings: the DDS settings this process joined (sage_bringup.environment.Choice);
            the screen
            names the domain and where it came from.

    Returns:
        0 when the graph was heard, 1 when nothing arrived on any SAGE topic.
    """
    domain = next((f'{c.value} ({c.source})' for c in settings if c.key == 'ROS_DOMAIN_ID'),
                  None)
    model = StatusModel(window_s=window_s, domain=domain)
    listener = StatusListener(model)
    listener.start()
    console = Console(file=out, width=None if _is_tty(out) else 140,
                      force_terminal=_is_tty(out) or None)

    def size() -> tuple[int, int] | None:
        """A terminal's current size, read for every frame (the full screen goes to files)."""
        return (console.width, console.height) if _is_tty(out) else None
    try:
        if once:
            time.sleep(3.0 if duration is None else duration)
            console.print(listener.render(size()))
        else:
            from rich.live import Live
            end = None if duration is None else time.monotonic() + duration
            with Live(listener.render(size()), console=console, refresh_per_second=2,
                      transient=False) as live:
                while end is None or time.monotonic() < end:
                    time.sleep(0.5)
                    live.update(listener.render(size()))
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
    return 0 if model.heard_anything else 1


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
