"""`sage status` on a small terminal (80x24 and up): the same facts in fewer rows and columns.

The full screen (sage.status) needs about 120 columns and 50 rows. Here every section is one
borderless table or line, the ATP budget joins the node rows (a plugin is an encoder node),
and the rows are counted so the screen never runs past the terminal's bottom: when nodes do
not all fit, the worst are kept and the rest are counted on one line; recent experiences take
whatever rows are left.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sage.status import (LEVEL_STYLES, STALE_AFTER_S, STATE_STYLES, node_drops, node_p50_ms,
                         node_rates, rendered_rows, sparkline)
from sage.viz_core import AllocationRecord
from sage_common.records import AXES

if TYPE_CHECKING:
    from sage.status import NodeHealth, StatusModel

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
