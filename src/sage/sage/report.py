"""`sage report RUN_OR_BAG -o OUT`: an HTML page with PNG plots of a recorded run.

Input is a rosbag2 folder recorded from the live graph (/sage/salience, /sage/budget,
/sage/metabolic_state, /sage/memory/stored), or a run folder written by the launcher
(runs/<profile>-<stamp>/) holding such a bag in `bag/` or another sub-folder. No rclpy: the
bag is read with rosbags, the plots are drawn with matplotlib's Agg canvas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import html
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2.errors import ReaderError

from sage.bag_types import BagError, sage_typestore
from sage.report_events import events_html, plot_events, score_run
from sage.viz_core import (AXIS_COLORS, STATE_COLORS, UNKNOWN_STATE_COLOR, BudgetRecord,
                           StateRecord, StoredRecord, budget_from_msg, salience_record,
                           state_from_msg, stored_from_msg)
from sage_common.errors import SageError
from sage_common.preview_formats import IMAGE_SUFFIX
from sage_common.records import AXES, MODALITIES, SalienceRecord
from sage_common.vocabulary import absolute, Topic

# as a graph with no namespace records them
SALIENCE, BUDGET, STATE, STORED = (absolute(t) for t in (
    Topic.SALIENCE, Topic.BUDGET, Topic.METABOLIC_STATE, Topic.MEMORY_STORED))
TOPICS = {SALIENCE, BUDGET, STATE, STORED}
MAX_THUMBNAILS = 120


class ReportError(SageError):
    """The input holds no usable bag, or the report cannot be written."""


@dataclass
class RunData:
    """A run's graph outputs; every `t` is seconds since the bag's first message."""

    source: Path
    duration_s: float = 0.0
    salience: list[tuple[float, SalienceRecord]] = field(default_factory=list)
    budgets: list[tuple[float, BudgetRecord]] = field(default_factory=list)
    states: list[tuple[float, StateRecord]] = field(default_factory=list)
    stored: list[tuple[float, StoredRecord]] = field(default_factory=list)

    def modalities(self) -> list[str]:
        seen = {r.modality for _, r in self.salience} | {r.modality for _, r in self.stored}
        return [m for m in MODALITIES if m in seen] + sorted(seen - set(MODALITIES))


def find_bag(src: Path) -> Path:
    """The bag folder of a bag or run folder.

    Raises:
        ReportError: no folder with a metadata.yaml at src, src/bag or one level below.
    """
    src = Path(src)
    if (src / 'metadata.yaml').is_file():
        return src
    if (src / 'bag' / 'metadata.yaml').is_file():
        return src / 'bag'
    if src.is_dir():
        found = sorted(p.parent for p in src.glob('*/metadata.yaml'))
        if found:
            return found[0]
    raise ReportError(f'{src}: no rosbag2 bag here (expected metadata.yaml in it, in bag/, '
                      'or in a sub-folder); record one with `sage bag record`')


def load_run(src: Path) -> RunData:
    """Read the SAGE topics of a bag (or a run folder's bag) into records.

    Raises:
        ReportError: no bag found, or it cannot be read.
    """
    bag = find_bag(src)
    data = RunData(source=bag)
    readers: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
        SALIENCE: (salience_record, data.salience),
        BUDGET: (budget_from_msg, data.budgets),
        STATE: (state_from_msg, data.states),
        STORED: (stored_from_msg, data.stored)}
    try:
        with AnyReader([bag], default_typestore=sage_typestore()) as reader:
            start = reader.start_time
            data.duration_s = max(reader.duration, 0) * 1e-9
            conns = [c for c in reader.connections if c.topic in TOPICS]
            for conn, stamp, raw in reader.messages(connections=conns):
                convert, into = readers[conn.topic]
                into.append(((stamp - start) * 1e-9, convert(reader.deserialize(raw,
                                                                                 conn.msgtype))))
    except (ReaderError, BagError, OSError, KeyError) as err:
        raise ReportError(f'cannot read {bag}: {err}') from err
    return data


# --- summaries --------------------------------------------------------------------------------

def summary_rows(data: RunData) -> list[dict[str, Any]]:
    """Per modality: inputs, attended, attention rate, stored and mean axis scores."""
    rows = []
    for modality in data.modalities():
        recs = [r for _, r in data.salience if r.modality == modality]
        stored = sum(1 for _, r in data.stored if r.modality == modality)
        row: dict[str, Any] = {'modality': modality, 'inputs': len(recs),
                               'attended': sum(r.attend for r in recs), 'stored': stored}
        row['attention_rate'] = row['attended'] / len(recs) if recs else 0.0
        for attr in (*AXES, 'salience'):
            row[attr] = float(np.mean([getattr(r, attr) for r in recs])) if recs else 0.0
        rows.append(row)
    return rows


def state_spans(data: RunData) -> list[tuple[float, float, str, str]]:
    """(start, end, state, reason) for each stretch of one metabolic state."""
    spans: list[tuple[float, float, str, str]] = []
    for t, rec in data.states:
        if spans and spans[-1][2] == rec.state:
            continue
        if spans:
            spans[-1] = (spans[-1][0], t, spans[-1][2], spans[-1][3])
        spans.append((t, data.duration_s, rec.state, rec.reason))
    return spans


# --- plots ------------------------------------------------------------------------------------

def _figure(rows: int, height: float = 2.2) -> Any:
    # lazy: keeps matplotlib out of this module's import
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, max(rows * height, 2.5)), layout='constrained')
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, axes


def plot_salience(data: RunData, path: Path) -> Path | None:
    """One panel per modality: the five axes, salience, threshold and attended inputs."""
    mods = [m for m in data.modalities() if any(r.modality == m for _, r in data.salience)]
    if not mods:
        return None
    fig, axes = _figure(len(mods))
    for ax, modality in zip(axes, mods):
        pts = [(t, r) for t, r in data.salience if r.modality == modality]
        t = np.array([p[0] for p in pts])
        for axis in AXES:
            ax.plot(t, [getattr(r, axis) for _, r in pts], lw=0.8, alpha=0.8,
                    color=AXIS_COLORS[axis][:3], label=axis)
        sal = np.array([r.salience for _, r in pts])
        ax.plot(t, sal, lw=1.8, color='black', label='salience')
        ax.plot(t, [r.threshold for _, r in pts], lw=1.0, ls='--', color='grey',
                label='threshold')
        attended = np.array([r.attend for _, r in pts], dtype=bool)
        ax.scatter(t[attended], sal[attended], s=10, color='crimson', zorder=3,
                   label='attended')
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(modality)
    axes[0].legend(loc='upper right', ncol=8, fontsize=7)
    axes[-1].set_xlabel('time since start [s]')
    fig.suptitle('Salience per modality and axis')
    fig.savefig(path, dpi=90)
    return path


def plot_decisions(data: RunData, path: Path) -> Path | None:
    """Attend and store decisions over time, one row per modality."""
    mods = data.modalities()
    if not mods:
        return None
    fig, (ax,) = _figure(1, height=0.6 + 0.5 * len(mods))
    for row, modality in enumerate(mods):
        att = [t for t, r in data.salience if r.modality == modality and r.attend]
        sto = [t for t, r in data.stored if r.modality == modality]
        ax.scatter(att, [row + 0.12] * len(att), marker='|', s=80, color='crimson',
                   label='attended' if row == 0 else None)
        ax.scatter(sto, [row - 0.12] * len(sto), marker='v', s=30, color='navy',
                   label='stored' if row == 0 else None)
    ax.set_yticks(range(len(mods)), mods)
    ax.set_ylim(-0.6, len(mods) - 0.4)
    ax.set_xlim(-0.02 * data.duration_s, max(data.duration_s * 1.02, 1e-3))
    ax.set_xlabel('time since start [s]')
    ax.legend(loc='upper right', fontsize=8)
    ax.set_title('Attend and store decisions')
    fig.savefig(path, dpi=90)
    return path


def plot_atp(data: RunData, path: Path) -> Path | None:
    """ATP allocated (solid) and used (dashed) per plugin, and the tick budget."""
    if not data.budgets:
        return None
    fig, (ax,) = _figure(1, height=3.2)
    t = np.array([tb for tb, _ in data.budgets])
    ax.plot(t, [b.budget_total for _, b in data.budgets], color='black', lw=1.5,
            label='budget total')
    plugins = sorted({a.plugin for _, b in data.budgets for a in b.allocations})
    colors = [f'C{k}' for k in range(len(plugins))]
    for plugin, color in zip(plugins, colors):
        atp, used = [], []
        for _, b in data.budgets:
            alloc = next((a for a in b.allocations if a.plugin == plugin), None)
            atp.append(np.nan if alloc is None else alloc.atp)
            used.append(np.nan if alloc is None else alloc.atp_used)
        ax.plot(t, atp, color=color, lw=1.2, label=f'{plugin} atp')
        ax.plot(t, used, color=color, lw=1.0, ls='--', label=f'{plugin} used')
    ax.set_ylabel('ATP units')
    ax.set_xlabel('time since start [s]')
    ax.legend(loc='upper right', fontsize=7, ncol=2)
    ax.set_title('ATP per plugin')
    fig.savefig(path, dpi=90)
    return path


def plot_metabolic(data: RunData, path: Path) -> Path | None:
    """Coloured bands for the metabolic states, labelled with the reason of each entry."""
    spans = state_spans(data)
    if not spans:
        return None
    fig, (ax,) = _figure(1, height=1.6)
    seen: set[str] = set()
    for start, end, state, reason in spans:
        color = STATE_COLORS.get(state, UNKNOWN_STATE_COLOR)[:3]
        ax.axvspan(start, max(end, start + 1e-3), color=color, alpha=0.7,
                   label=state if state not in seen else None)
        seen.add(state)
        ax.text(start, 0.5, f' {state}: {reason}'[:60], fontsize=7, va='center',
                rotation=0, clip_on=True)
    ax.set_xlim(0, max(data.duration_s, spans[-1][0] + 1e-3))
    ax.set_yticks([])
    ax.set_xlabel('time since start [s]')
    ax.legend(loc='upper right', fontsize=7, ncol=len(seen))
    ax.set_title('Metabolic state')
    fig.savefig(path, dpi=90)
    return path


def write_thumbnails(data: RunData, folder: Path) -> list[tuple[Path, float, StoredRecord]]:
    """Save the image previews of stored experiences (the latest MAX_THUMBNAILS)."""
    with_preview = [(t, r) for t, r in data.stored
                    if r.preview_format in IMAGE_SUFFIX and r.preview]
    out = []
    if with_preview:
        folder.mkdir(parents=True, exist_ok=True)
    for k, (t, rec) in enumerate(with_preview[-MAX_THUMBNAILS:]):
        path = folder / (f'{k:03d}_{rec.modality}_{rec.uuid[:8] or "x"}'
                         f'{IMAGE_SUFFIX[rec.preview_format]}')
        path.write_bytes(rec.preview)
        out.append((path, t, rec))
    return out


# --- page -------------------------------------------------------------------------------------

def make_report(src: Path, out: Path, labels: Path | None = None) -> Path:
    """Write the HTML report of a bag or run folder.

    Args:
        src: a rosbag2 folder, or a run folder containing one (bag/ preferred).
        out: a folder (index.html goes inside), or an .html file (images go into
            <name>_files/ beside it).
        labels: labels JSON of the scene the run was fed (`sage_eval` scenes write it beside
            their bag); the page then shows each event, whether it was caught and by which
            axis. Default: `<bag>.labels.json` beside the bag, when there is one.

    Returns:
        Path of the HTML page.

    Raises:
        ReportError: no bag, or the bag holds none of the SAGE topics.
    """
    data = load_run(src)
    if not (data.salience or data.budgets or data.states or data.stored):
        raise ReportError(f'{data.source} holds none of {", ".join(sorted(TOPICS))}')
    out = Path(out)
    if out.suffix == '.html':
        page, assets = out, out.parent / f'{out.stem}_files'
    else:
        page, assets = out / 'index.html', out
    assets.mkdir(parents=True, exist_ok=True)
    plots = [p for p in (plot_salience(data, assets / 'salience.png'),
                         plot_decisions(data, assets / 'decisions.png'),
                         plot_atp(data, assets / 'atp.png'),
                         plot_metabolic(data, assets / 'metabolic.png')) if p is not None]
    thumbs = write_thumbnails(data, assets / 'thumbs')
    events = ''
    labels = labels or _labels_beside(data.source)
    if labels is not None:
        try:
            scene, scored = score_run(data.salience, labels)
        except SageError as err:
            raise ReportError(f'{labels}: {err}') from err
        plot = plot_events(data.salience, scene, scored, assets / 'events.png')
        events = events_html(scene, scored) + (
            f'<figure><img src="{html.escape(plot.relative_to(page.parent).as_posix())}" '
            'alt="events"></figure>' if plot is not None else '')
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(_html(data, plots, thumbs, page.parent, events), encoding='utf-8')
    return page


def _labels_beside(bag: Path) -> Path | None:
    # lazy: keeps cv2 out of this module's import
    from sage_eval.scenario import labels_path
    candidate = labels_path(bag)
    return candidate if candidate.is_file() else None


def _html(data: RunData, plots: list[Path], thumbs: list[tuple[Path, float, StoredRecord]],
          base: Path, events: str = '') -> str:
    def rel(p: Path) -> str:
        return html.escape(p.relative_to(base).as_posix())

    rows = summary_rows(data)
    head = ''.join(f'<th>{h}</th>' for h in ('modality', 'inputs', 'attended', 'attention',
                                               'stored', *AXES, 'salience'))
    body = ''.join(
        '<tr>' + f"<td>{html.escape(r['modality'])}</td><td>{r['inputs']}</td>"
        f"<td>{r['attended']}</td><td>{r['attention_rate']:.1%}</td><td>{r['stored']}</td>"
        + ''.join(f'<td>{r[a]:.3f}</td>' for a in (*AXES, 'salience')) + '</tr>'
        for r in rows)
    states = ''.join(f'<li>{start:.1f}–{end:.1f} s: <b>{html.escape(s)}</b> '
                     f'({html.escape(reason)})</li>'
                     for start, end, s, reason in state_spans(data))
    figures = ''.join(f'<figure><img src="{rel(p)}" alt="{p.stem}"></figure>' for p in plots)
    gallery = ''.join(
        f'<figure class="thumb"><img src="{rel(p)}" alt="{html.escape(rec.uuid)}">'
        f'<figcaption>{t:.1f} s {html.escape(rec.modality)} {rec.salience:.2f}'
        f'{(" " + html.escape(rec.text[:40])) if rec.text else ""}</figcaption></figure>'
        for p, t, rec in thumbs)
    title = f'SAGE report: {html.escape(data.source.name)}'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; }}
td {{ text-align: right; }} td:first-child {{ text-align: left; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 8px; }}
.thumb {{ margin: 0; width: 160px; }} .thumb img {{ width: 160px; }}
.thumb figcaption {{ font-size: 11px; }}
</style></head><body>
<h1>SAGE run report</h1>
<p>Source: <code>{html.escape(str(data.source))}</code>, {data.duration_s:.1f} s,
{len(data.salience)} scored inputs, {sum(r.attend for _, r in data.salience)} attended,
{len(data.stored)} stored, {len(data.budgets)} budget ticks.</p>
<h2>Summary</h2>
<table><tr>{head}</tr>{body}</table>
{events}
<h2>Plots</h2>
{figures}
<h2>Metabolic states</h2>
<ul>{states or '<li>no /sage/metabolic_state messages</li>'}</ul>
<h2>Stored experiences ({len(thumbs)} with previews)</h2>
<div class="thumbs">{gallery or '<p>no JPEG previews stored</p>'}</div>
</body></html>
"""
