"""`sage status` drawn (rich): the full screen, the compact one, plain text.

The full screen needs about 120 columns and 50 rows. On a small terminal (80x24 and up) the
compact screen shows the same facts in fewer rows and columns: every section is one borderless
table or line, the ATP budget joins the node rows (a plugin is an encoder node), and the rows
are counted so the screen never runs past the terminal's bottom: when nodes do not all fit,
the worst are kept and the rest are counted on one line; recent experiences take whatever rows
are left. What is drawn is sage.status_model.StatusModel.
"""
from __future__ import annotations

import io
import time

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sage.status_model import (NodeHealth, STALE_AFTER_S, StatusModel, node_drops, node_p50_ms,
                               node_rates)
from sage.viz_core import AllocationRecord
from sage_common.records import AXES, SalienceRecord
from sage_common.vocabulary import MetabolicState

SPARK = '▁▂▃▄▅▆▇█'
LEVEL_STYLES = {'OK': 'green', 'WARN': 'yellow', 'ERROR': 'bold red', 'STALE': 'dim'}
STATE_STYLES = {MetabolicState.WAKE: 'green', MetabolicState.FOCUS: 'bold cyan',
                MetabolicState.REST: 'white', MetabolicState.DREAM: 'magenta',
                MetabolicState.CRISIS: 'bold red'}
# Below this width the full tables would truncate their columns: the compact screen is used.
FULL_MIN_WIDTH = 120


def sparkline(values: list[float], width: int) -> str:
    """Values in [0, 1] as block characters, resampled to at most `width` columns."""
    if not values:
        return ''
    if len(values) > width:
        step = len(values) / width
        values = [max(values[int(i * step):max(int((i + 1) * step), int(i * step) + 1)])
                  for i in range(width)]
    return ''.join(SPARK[min(int(max(v, 0.0) * len(SPARK)), len(SPARK) - 1)] for v in values)


def bar(value: float, top: float, width: int) -> str:
    """A text bar of `width` cells filled in proportion value/top."""
    filled = 0 if top <= 0 else int(round(width * min(max(value / top, 0.0), 1.0)))
    return '█' * filled + '·' * (width - filled)


def rendered_rows(renderable: RenderableType, width: int) -> int:
    """Terminal rows a renderable takes at a width."""
    console = Console(width=width, file=io.StringIO(), force_terminal=False, color_system=None)
    return len(console.render_lines(renderable, pad=False))


def render(model: StatusModel, size: tuple[int, int] | None = None) -> RenderableType:
    """The screen as one rich renderable; for a terminal of `size` (columns, rows) the full
    screen when it fits, else the compact one."""
    full = full_screen(model)
    if size is None:
        return full
    width, height = size
    if width >= FULL_MIN_WIDTH and rendered_rows(full, width) <= height:
        return full
    return compact_screen(model, width, height)


def render_text(model: StatusModel, width: int = 140) -> str:
    """The screen as plain text (tests, logs, non-terminal output)."""
    console = Console(width=width, file=None, record=True, force_terminal=False,
                      color_system=None)
    with console.capture() as capture:
        console.print(render(model))
    return capture.get()


# --- the full screen --------------------------------------------------------------------------

def full_screen(model: StatusModel) -> RenderableType:
    """Every section as a titled table or panel (about 120 columns, 50 rows)."""
    return Group(_full_header(model), _salience_table(model), _budget_table(model),
                 _state_panel(model), _nodes_table(model), _memory_table(model))


def _full_header(model: StatusModel) -> Text:
    s = model.stats
    up = model.clock() - model.started
    text = Text(f'SAGE status  domain {model.domain}  '
                f'listening {up:.0f} s  inputs {s.inputs_total}  '
                f'attended {s.attention_rate:.1%}  stored {s.stored_total}', style='bold')
    if not model.heard_anything:
        text.append('  (no messages yet: is the graph running on this ROS_DOMAIN_ID?)',
                    style='yellow')
    return text


def _salience_table(model: StatusModel) -> Table:
    table = Table(title=f'Salience (last {model.window_s:.0f} s)', title_justify='left',
                  expand=False)
    for col in ('modality', 'in/s', 'attend', 'stored', *(a[:4] for a in AXES), 'sal',
                'thr', 'salience trend'):
        table.add_column(col, justify='left' if col in ('modality', 'salience trend')
                         else 'right')
    for name, m in model.stats.modalities.items():
        recs = model.window(name)
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


def _budget_table(model: StatusModel) -> RenderableType:
    b = model.budget
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


def _state_panel(model: StatusModel) -> RenderableType:
    st = model.state
    if st is None:
        return Text('Metabolic state: unknown (nothing on /sage/metabolic_state yet)',
                    style='dim')
    text = Text()
    text.append(st.state or '?', style=STATE_STYLES.get(st.state, 'white'))
    text.append(f'  (from {st.previous or "-"}, {st.dwell_s:.1f} s)  reason: {st.reason}'
                f'  reserve {st.atp_reserve:.0%}  memory pressure '
                f'{st.memory_pressure or "?"}')
    return Panel(text, title='Metabolic state', title_align='left', expand=False)


def _nodes_table(model: StatusModel) -> RenderableType:
    if not model.nodes:
        return Text('Nodes: no /diagnostics yet', style='dim')
    table = Table(title='Nodes (/diagnostics)', title_justify='left')
    for col in ('node', 'level', 'rates /s', 'drops', 'errors', 'p50 ms', 'message'):
        table.add_column(col)
    now = model.clock()
    for name in sorted(model.nodes):
        n = model.nodes[name]
        level = 'STALE' if now - n.received > STALE_AFTER_S else n.level
        rates = ' '.join(f'{k}={v:.1f}' for k, v in node_rates(n.values).items())
        drops = node_drops(n.values)
        errors = n.values.get('errors', '0')
        p50 = ' '.join(f'{k}={v:.1f}' for k, v in node_p50_ms(n.values).items())
        table.add_row(name, Text(level, style=LEVEL_STYLES.get(level, '')), rates,
                      str(drops), errors, p50, n.message)
    return table


def _memory_table(model: StatusModel) -> RenderableType:
    table = Table(title=f'Memory  size {model.memory_size()}  stored while watching '
                        f'{model.stats.stored_total}', title_justify='left')
    for col in ('stamp', 'modality', 'salience', 'experience'):
        table.add_column(col)
    for rec in reversed(model.stored):
        table.add_row(time.strftime('%H:%M:%S', time.localtime(rec.stamp)), rec.modality,
                      f'{rec.salience:.2f}', rec.text[:40] if rec.text else rec.uuid[:12])
    notes = model.memory_notes()
    if notes:
        return Group(table, *(Text(f'NOTE: {n}', style='bold red') for n in notes))
    return table


# --- the compact screen (80x24 and up) --------------------------------------------------------

SEVERITY = {'ERROR': 0, 'STALE': 1, 'WARN': 2, 'OK': 3, '-': 4}
# rows every layout has: header, state, salience title + column header, nodes title + column
# header, memory line
FIXED_ROWS = 7
NODE_NAME_WIDTH = 24  # working_memory_recall, the longest plugin name, with room to spare


def _table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    """A borderless table, one space between columns; `right` columns are right-aligned.
    More columns may be added to it."""
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False,
                  header_style='bold', expand=False)
    for col in columns:
        table.add_column(col, justify='right' if col in right else 'left', no_wrap=True)
    return table


def _line(text: Text) -> Text:
    text.no_wrap = True
    text.overflow = 'ellipsis'
    return text


def _header(model: StatusModel, width: int) -> Text:
    s = model.stats
    up = model.clock() - model.started
    words = [f'domain {model.domain}', f'up {up:.0f} s', f'inputs {s.inputs_total}',
             f'attended {s.attention_rate:.1%}', f'stored {s.stored_total}']
    text = 'SAGE status  ' + '  '.join(words)
    if len(text) > width:  # the domain's source goes first: it is also printed at start
        words[0] = f'domain {model.domain.split()[0]}'
        text = 'SAGE  ' + '  '.join(words)
    return _line(Text(text, style='bold'))


def _hint(model: StatusModel) -> list[RenderableType]:
    """A line saying nothing arrived yet (only then: the other sections are empty)."""
    if model.heard_anything:
        return []
    return [Text(f'no messages yet: is the graph running on domain {model.domain}?',
                 style='yellow')]


def _state(model: StatusModel) -> Text:
    st = model.state
    if st is None:
        return _line(Text('State: unknown (nothing on /sage/metabolic_state yet)', style='dim'))
    text = Text(st.state or '?', style=STATE_STYLES.get(st.state, 'white'))
    text.append(f' (from {st.previous or "-"}, {st.dwell_s:.1f} s)  reserve {st.atp_reserve:.0%}'
                f'  memory {st.memory_pressure or "?"}: {st.reason}')
    return _line(text)


def _notes(model: StatusModel) -> list[Text]:
    """The memory node's notes (quarantined file, read-only store), whole: they wrap."""
    return [Text(f'NOTE: {n}', style='bold red', overflow='fold') for n in model.memory_notes()]


def _salience(model: StatusModel, width: int) -> list[RenderableType]:
    rows = []
    for name, m in model.stats.modalities.items():
        recs = model.window(name)
        if m.inputs and recs:
            rows.append((name, m, recs))
    if not rows:
        return [Text('Salience: no scores yet', style='dim')]
    axes = tuple(a[:4] for a in AXES)
    numeric = ('in/s', 'att', 'stored', *axes, 'sal', 'thr')
    table = _table('modality', *numeric, 'trend', right=numeric)
    # trend gets what the other columns leave: 8 + 4 + 4 + 6 + 5 * 4 + 4 + 4 plus separators
    trend = max(width - 50 - 12, 4)
    for name, m, recs in rows:
        span = max(recs[-1].stamp - recs[0].stamp, 1e-9)
        rate = (len(recs) - 1) / span if len(recs) > 1 else 0.0

        def mean(attr: str, recs: list = recs) -> str:
            return f'{sum(getattr(r, attr) for r in recs) / len(recs):.2f}'
        table.add_row(name, f'{rate:.1f}', f'{sum(r.attend for r in recs) / len(recs):.0%}',
                      str(m.stored), *(mean(a) for a in AXES),
                      Text(mean('salience'), style='bold'), mean('threshold'),
                      sparkline([r.salience for r in recs], trend))
    return [Text(f'Salience (last {model.window_s:.0f} s)', style='bold'), table]


def _node_rows(model: StatusModel) -> list[tuple[str, str, NodeHealth | None,
                                                 AllocationRecord | None]]:
    """(name, level, health, ATP allocation) for every node and every budget plugin."""
    now = model.clock()
    plugins = {a.plugin: a for a in model.budget.allocations} if model.budget else {}
    rows = []
    for name in sorted(set(model.nodes) | set(plugins)):
        health = model.nodes.get(name)
        level = '-' if health is None else (
            'STALE' if now - health.received > STALE_AFTER_S else health.level)
        rows.append((name, level, health, plugins.get(name)))
    return rows


def _nodes(model: StatusModel, width: int, max_rows: int) -> list[RenderableType]:
    rows = _node_rows(model)
    if not rows:
        return [Text('Nodes: no /diagnostics yet', style='dim')]
    b = model.budget
    title = 'Nodes' + (f'  ATP total {b.budget_total:.1f}  reserve {b.reserve:.1f}  '
                       f'tick {b.tick} ({b.metabolic_state})' if b else '  ATP: no budget yet')
    hidden: dict[str, int] = {}
    if len(rows) > max_rows:  # keep the worst, count the others by level on one line
        ranked = sorted(rows, key=lambda r: (SEVERITY.get(r[1], 0), r[0]))
        keep = max(max_rows - 1, 1)
        for row in ranked[keep:]:
            hidden[row[1]] = hidden.get(row[1], 0) + 1
        rows = sorted(ranked[:keep], key=lambda r: r[0])
    columns = ('node', 'level', 'rate/s', 'drops', 'err', 'p50ms', 'atp', 'used', 'trust')
    cells = []
    for name, level, health, alloc in rows:
        values = health.values if health else {}
        rates, p50 = node_rates(values), node_p50_ms(values)
        cells.append((name, level, f'{max(rates.values()):.1f}' if rates else '-',
                      str(node_drops(values)) if health else '-',
                      values.get('errors', '0') if health else '-',
                      f'{next(iter(p50.values())):.1f}' if p50 else '-',
                      f'{alloc.atp:.2f}' if alloc else '-',
                      f'{alloc.atp_used:.2f}' if alloc else '-',
                      f'{alloc.trust:.2f}' if alloc else '-'))
    # Every figure keeps its full width; only the free-text message gives way.
    widths = [max(len(col), *(len(c[i]) for c in cells)) for i, col in enumerate(columns)]
    widths[0] = min(widths[0], NODE_NAME_WIDTH)
    table = _table(right=columns[2:])
    for col, w in zip(columns, widths):
        table.add_column(col, justify='right' if col in columns[2:] else 'left', no_wrap=True,
                         width=w)
    table.add_column('message', no_wrap=True, overflow='ellipsis',
                     width=max(width - sum(widths) - len(widths), len('message')))
    for row, (*_, health, _alloc) in zip(cells, rows):
        table.add_row(*row[:1], Text(row[1], style=LEVEL_STYLES.get(row[1], '')), *row[2:],
                      health.message if health else '')
    parts: list[RenderableType] = [_line(Text(title, style='bold')), table]
    if hidden:
        parts.append(_line(Text(f'  … {sum(hidden.values())} more nodes: ' + ', '.join(
            f'{n} {level}' for level, n in sorted(hidden.items())), style='dim')))
    return parts


def _memory(model: StatusModel, entries: int) -> list[RenderableType]:
    parts: list[RenderableType] = [_line(Text(
        f'Memory  size {model.memory_size()}  stored while watching {model.stats.stored_total}',
        style='bold'))]
    for rec in list(reversed(model.stored))[:max(entries, 0)]:
        parts.append(_line(Text(f'  {time.strftime("%H:%M:%S", time.localtime(rec.stamp))}  '
                                f'{rec.modality:8s} {rec.salience:.2f}  '
                                f'{rec.text[:40] if rec.text else rec.uuid[:12]}')))
    return parts


def compact_screen(model: StatusModel, width: int, height: int) -> RenderableType:
    """The status screen in at most `height` rows of `width` columns (80x24 and up)."""
    salience = _salience(model, width)
    modality_rows = salience[-1].row_count if isinstance(salience[-1], Table) else 0
    notes = _notes(model)
    node_count = len(_node_rows(model))
    spare = height - FIXED_ROWS - modality_rows - sum(rendered_rows(n, width) for n in notes)
    node_rows = min(node_count, max(spare, 1))
    spare -= node_rows
    blanks = 2 if spare >= 2 + min(len(model.stored), 1) else 0
    spare -= blanks
    blank = [Text('')] if blanks else []
    return Group(_header(model, width), *_hint(model), *notes, _state(model), *blank, *salience,
                 *blank, *_nodes(model, width, node_rows), *_memory(model, spare))
