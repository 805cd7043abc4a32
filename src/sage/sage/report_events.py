"""The labelled-scene part of `sage report`: each event, whether it was caught and by which axis.

Given the labels of the scene a run was fed (`sage_eval` scenes write `<bag>.labels.json`), the
run's recorded /sage/salience is scored with `sage_eval.salience_score` (an event counts only
when an input of its own modality is attended in its window) and shown as a table and as a
plot of each modality's salience with the events marked.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from sage_common.records import AXES, SalienceRecord


def decisions(salience: list[tuple[float, SalienceRecord]]) -> list[dict[str, Any]]:
    """The recorded salience as the scorer's decision rows."""
    return [{'stamp': r.stamp, 'modality': r.modality, 'salience': r.salience,
             'attend': bool(r.attend), **{a: getattr(r, a) for a in AXES}}
            for _, r in salience]


def score_run(salience: list[tuple[float, SalienceRecord]], labels_file: Path
              ) -> tuple[Any, dict[str, Any]]:
    """(labels, scene report) of a run against the labels of the scene it was fed.

    Raises:
        SageError (ScenarioError): unreadable labels, or salience not made from that scene.
    """
    # lazy: keeps cv2 and rosbags out of this module's import
    from sage_eval.salience_score import score_scene
    from sage_eval.scenario import load_labels
    labels = load_labels(Path(labels_file))
    return labels, score_scene(decisions(salience), labels)


def plot_events(salience: list[tuple[float, SalienceRecord]], labels: Any,
                report: dict[str, Any], path: Path) -> Path | None:
    """Salience per modality against scene time, each labelled event shaded (green: caught)."""
    # lazy: keeps matplotlib out of this module's import
    from matplotlib.figure import Figure
    rows = report['events']
    mods = [m for m in ('vision', 'audio', 'imu') if any(r['modality'] == m for r in rows)]
    if not mods:
        return None
    fig = Figure(figsize=(11, 2.2 * len(mods) + 0.5), layout='constrained')
    axes = fig.subplots(len(mods), 1, sharex=True, squeeze=False)[:, 0]
    for ax, m in zip(axes, mods):
        pts = [r for _, r in salience if r.modality == m]
        t = np.array([r.stamp - labels.start for r in pts])
        sal = np.array([r.salience for r in pts])
        ax.plot(t, sal, lw=1.0, color='black')
        ax.plot(t, [r.threshold for r in pts], lw=0.8, ls='--', color='grey')
        hit = np.array([r.attend for r in pts], dtype=bool)
        ax.scatter(t[hit], sal[hit], s=8, color='crimson', zorder=3)
        for e in (e for e in rows if e['modality'] == m):
            start = e['start'] - labels.start
            ax.axvspan(start, start + 1.0, color='tab:green' if e['detected'] else 'tab:red',
                       alpha=0.25)
            ax.text(start, 1.0, e['kind'], fontsize=7, rotation=90, va='top')
        ax.set_ylim(-0.02, 1.05)
        ax.set_ylabel(m)
    axes[-1].set_xlabel('scene time [s]')
    fig.suptitle('Labelled events (green: caught by their own modality, red: missed)')
    fig.savefig(path, dpi=90)
    return path


def events_html(labels: Any, report: dict[str, Any]) -> str:
    """The events table: kind, modality, time, caught, latency, the axis expected and fired."""
    head = ''.join(f'<th>{h}</th>' for h in ('t [s]', 'event', 'modality', 'caught',
                                               'latency [s]', 'expected axis', 'axes fired',
                                               *AXES))
    body = ''
    for e in report['events']:
        lat = '' if e['latency_s'] is None else f"{e['latency_s']:.2f}"
        body += ('<tr>' + f"<td>{e['start'] - labels.start:.1f}</td>"
                 f"<td>{html.escape(e['kind'])}: {html.escape(e['name'])}</td>"
                 f"<td>{html.escape(e['modality'])}</td>"
                 f"<td>{'yes' if e['detected'] else '<b>missed</b>'}</td><td>{lat}</td>"
                 f"<td>{html.escape(e['axis'])}</td>"
                 f"<td>{html.escape(', '.join(e['fired']) or '-')}</td>"
                 + ''.join(f"<td>{e['peaks'][a]:.2f}</td>" for a in AXES) + '</tr>')
    caught = sum(e['detected'] for e in report['events'])
    alarms = ', '.join(f'{m} {n}' for m, n in report['false_alarms'].items())
    selfs = report['self_effect_attends']
    return (f"<h2>Labelled events: {caught} of {len(report['events'])} caught</h2>"
            f'<p>Scene seed {labels.seed} ({html.escape(labels.program)}); '
            f"false alarms in {report['calm_minutes']:.1f} calm minutes: {alarms}; "
            f"attends caused by the robot's own steps: {selfs}. "
            'Axis columns: each axis\' peak on the attended inputs that caught the event.</p>'
            f'<table><tr>{head}</tr>{body}</table>')
