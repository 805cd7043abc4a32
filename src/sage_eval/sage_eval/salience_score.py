"""Scoring a replay's decisions against scene labels, per event kind AND modality.

Unlike `sage_eval.scenario.score_decisions` (any attended input counts), an event counts as
detected only when an input of the event's OWN modality is attended in its detection window, so
attending everything of one modality cannot buy recall for another. Per event it also records
which axes fired at the detection (value >= AXIS_LEVEL on an attended input of that modality) and
whether the axis that should catch its kind did (`KIND_AXIS`). Works on the realistic scenes
(`sage_eval.realistic`) and on the synthetic ones (`sage_eval.scenario`): same labels format.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sage_eval.scenario import (ALARM_GAP_S, AUDIO_WINDOW_S, check_decisions_fit,
                                 DEFAULT_DETECT_S, DETECT_S, Event, load_labels, peak,
                                 read_decisions, ScenarioLabels)

AXES = ('surprise', 'novelty', 'arousal', 'reward', 'conflict')
# The axis that should catch each kind (realistic kinds, then the synthetic scenes' kinds).
KIND_AXIS = {
    'object_appears': 'novelty', 'lights_change': 'surprise', 'clap': 'arousal',
    'speech_in_silence': 'novelty', 'speech_after_noise': 'novelty', 'shake': 'arousal',
    'turn_still_image': 'conflict', 'repeat': 'arousal', 'changed': 'novelty',
    'novelty': 'novelty', 'surprise': 'surprise', 'arousal': 'arousal', 'conflict': 'conflict',
}
# An axis "fired" at a detection when it reached this on an attended input.
AXIS_LEVEL = 0.5
# Attends of the affected modality this long after a self effect are blamed on it.
SELF_WINDOW_S = 3.0
# Detection windows open this early (stamps are rounded to frames and audio hops).
EARLY_S = 0.05
# Conflict needs its lag; shakes and turns are scored like the synthetic conflict.
WINDOWS = {**DETECT_S, 'turn_still_image': DETECT_S.get('conflict', DEFAULT_DETECT_S)}


def placed(decisions: list[dict[str, Any]], audio_window_s: float = AUDIO_WINDOW_S
           ) -> list[dict[str, Any]]:
    """Decisions with 't': the stamp, or for audio the end of its window (when it exists)."""
    out = [{**d, 't': float(d['stamp']) + (audio_window_s if d['modality'] == 'audio' else 0.0)}
           for d in decisions]
    out.sort(key=lambda d: (d['t'], d['modality']))
    return out


def _window(e: Event) -> tuple[float, float]:
    return e.start - EARLY_S, e.start + WINDOWS.get(e.kind, DEFAULT_DETECT_S)


def _event_result(e: Event, attended: list[dict[str, Any]]) -> dict[str, Any]:
    lo, hi = _window(e)
    hits = [d for d in attended if d['modality'] == e.modality and lo <= d['t'] <= hi]
    axis = KIND_AXIS.get(e.kind, '')
    fired = sorted({a for d in hits for a in AXES if float(d.get(a, 0.0)) >= AXIS_LEVEL})
    return {'kind': e.kind, 'modality': e.modality, 'name': e.name, 'start': e.start,
            'detected': bool(hits), 'axis': axis, 'axis_fired': axis in fired,
            'fired': fired, 'latency_s': (max(0.0, hits[0]['t'] - e.start) if hits else None),
            'peaks': {a: max((float(d.get(a, 0.0)) for d in hits), default=0.0) for a in AXES}}


def _alarms(attended: list[dict[str, Any]], calm: list[tuple[float, float]], modality: str
            ) -> list[dict[str, Any]]:
    """Runs of attended inputs of one modality in calm time (gaps below ALARM_GAP_S join)."""
    out, last = [], -math.inf
    for d in attended:
        if d['modality'] == modality and any(a <= d['t'] < b for a, b in calm):
            if d['t'] - last > ALARM_GAP_S:
                out.append({'stamp': d['stamp'], 'salience': d['salience']})
            last = d['t']
    return out


def score_scene(decisions: list[dict[str, Any]] | Path, labels: ScenarioLabels | Path,
                audio_window_s: float = AUDIO_WINDOW_S) -> dict[str, Any]:
    """Score one scene's decisions per event kind and modality.

    Returns:
        JSON-able dict: 'events' (one row per target event: detected, axis_fired, fired,
        latency_s, peaks = each axis' highest value on the attended inputs that detected it),
        'by_kind' ('kind/modality' -> recall, axis_recall, mean latency, n), 'calm_minutes',
        'false_alarms' and 'false_alarms_per_min' per modality, 'self_effects' (attends of
        the affected modality within SELF_WINDOW_S of each of the robot's own steps),
        'habituation_drop' (1 - mean peak salience of the last three repeats / mean of the
        first two, the stimulus modality's peak within 1 s), 'repeat_attended' (per repeat:
        its modality attended in its detection window), 'habituated_at' (the first repeat
        after the first that was not attended; None: never) and 'repeat_rises' (repeats after
        that one attended again, i.e. salience back above the threshold; None: no repeats).

    Raises:
        ScenarioError: unreadable inputs or decisions that were not made from this scene.
    """
    if not isinstance(labels, ScenarioLabels):
        labels = load_labels(Path(labels))
    if not isinstance(decisions, list):
        decisions = read_decisions(Path(decisions))
    check_decisions_fit(decisions, labels)
    decs = placed(decisions, audio_window_s)
    attended = [d for d in decs if d['attend']]
    rows = [_event_result(e, attended) for e in labels.events if e.target]
    by_kind: dict[str, dict[str, Any]] = {}
    for r in rows:
        by_kind.setdefault(f"{r['kind']}/{r['modality']}", {'rows': []})['rows'].append(r)
    for entry in by_kind.values():
        rs = entry.pop('rows')
        lat = [r['latency_s'] for r in rs if r['latency_s'] is not None]
        entry.update(n=len(rs), recall=sum(r['detected'] for r in rs) / len(rs),
                     axis_recall=sum(r['axis_fired'] for r in rs) / len(rs),
                     latency_s=float(np.mean(lat)) if lat else None)
    calm_min = sum(b - a for a, b in labels.calm) / 60.0
    modalities = sorted({d['modality'] for d in decs})
    alarms = {m: _alarms(attended, labels.calm, m) for m in modalities}
    selfs = []
    for e in labels.events:
        if e.kind == 'self_effect':
            n = sum(1 for d in attended if d['modality'] == e.modality
                    and e.start - EARLY_S <= d['t'] <= e.start + SELF_WINDOW_S)
            selfs.append({'name': e.name, 'modality': e.modality, 'start': e.start,
                          'attended': n})
    reps = sorted((e for e in labels.events if e.kind == 'repeat'), key=lambda e: e.index)
    peaks = [peak(decs, e.modality, e.start - EARLY_S, e.start + DEFAULT_DETECT_S)
             for e in reps]
    drop = None
    if len(peaks) >= 5 and peaks[0] + peaks[1] > 0:
        drop = 1.0 - float(np.mean(peaks[-3:])) / float(np.mean(peaks[:2]))
    heard = [_event_result(e, attended)['detected'] for e in reps]
    habituated_at = next((i for i, h in enumerate(heard) if i > 0 and not h), None)
    rises = (None if not heard else 0 if habituated_at is None
             else sum(heard[habituated_at + 1:]))
    return {
        'seed': labels.seed, 'program': labels.program, 'inputs': len(decs),
        'attended': {m: sum(1 for d in attended if d['modality'] == m) for m in modalities},
        'events': rows, 'by_kind': dict(sorted(by_kind.items())), 'calm_minutes': calm_min,
        'false_alarms': {m: len(a) for m, a in alarms.items()},
        'false_alarms_per_min': {m: (len(a) / calm_min if calm_min > 0 else None)
                                 for m, a in alarms.items()},
        'alarms': {m: a[:20] for m, a in alarms.items()},
        'self_effects': selfs,
        'self_effect_attends': sum(s['attended'] for s in selfs),
        'repeat_peaks': peaks, 'habituation_drop': drop, 'repeat_attended': heard,
        'habituated_at': habituated_at, 'repeat_rises': rises,
    }


def _stats(values: list[float], worst: str) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {'mean': None, 'worst': None, 'n': 0}
    return {'mean': float(np.mean(vals)), 'worst': float(min(vals) if worst == 'min'
                                                         else max(vals)), 'n': len(vals)}


def _rises(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeats attended again after habituation, over the scenes that have repeats."""
    with_reps = [r for r in reports if r.get('repeat_rises') is not None]
    counts = [int(r['repeat_rises']) for r in with_reps]
    return {'total': sum(counts), 'worst': max(counts, default=None),
            'mean': float(np.mean(counts)) if counts else None, 'n': len(with_reps),
            'never_habituated': sum(1 for r in with_reps if r['habituated_at'] is None)}


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst seed over scene reports (worst = lowest recall, most alarms)."""
    kinds = sorted({k for r in reports for k in r['by_kind']})
    mods = sorted({m for r in reports for m in r['false_alarms_per_min']})
    by_kind = {}
    for k in kinds:
        per = [r['by_kind'][k] for r in reports if k in r['by_kind']]
        lat = [p['latency_s'] for p in per]
        by_kind[k] = {'recall': _stats([p['recall'] for p in per], 'min'),
                      'axis_recall': _stats([p['axis_recall'] for p in per], 'min'),
                      'latency_s': _stats(lat, 'max'), 'events': sum(p['n'] for p in per)}
    return {
        'seeds': [r['seed'] for r in reports],
        'by_kind': by_kind,
        'false_alarms_per_min': {m: _stats([r['false_alarms_per_min'].get(m) for r in reports],
                                           'max') for m in mods},
        'false_alarms_per_min_all': _stats(
            [sum(v for v in r['false_alarms_per_min'].values() if v is not None)
             for r in reports], 'max'),
        'habituation_drop': _stats([r['habituation_drop'] for r in reports], 'min'),
        'repeat_rises': _rises(reports),
        'self_effect_attends': _stats([float(r['self_effect_attends']) for r in reports],
                                      'max'),
        'calm_minutes': _stats([r['calm_minutes'] for r in reports], 'min'),
    }
