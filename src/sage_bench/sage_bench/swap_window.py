"""What a model hot swap cost a running graph, from what a probe saw (pure; issue 18 item 5).

`sage bench graph --swap` promotes a new model version of each encoder in the middle of its
measured window. The swap window of a modality runs from the promotion to one second after the
encoder reported the new version on /diagnostics; the baseline is as long and ends at the
promotion. In both, for vision: camera frames the probe saw whose capture stamp never came
back in a vision latent (frames the encoder dropped: it keeps only the newest), and the
longest wait between two latents; for audio: gaps in the latents' input_seq and the longest
wait. Camera frames newer than the last latent are not counted (not encoded yet, not lost).
What the swap cost is the difference: latents the encoder delivered in the baseline and not in
the swap window (`latents_lost`), and for vision the frames it dropped beyond what it dropped
before at the same share (`frames_lost`: an encoder that already drops frames at 30 fps drops
as many during a swap without the swap costing them).

The orchestrator changes the camera rate with its state (WAKE 15, FOCUS 30, REST 5 fps on the
nano profile), and it may do so across the promotion: two windows whose camera rates differ by
more than RATE_TOLERANCE are not compared (`comparable` false, the rates say why).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sage_eval.attend_agreement import decision_key, sequence_gaps

AFTER_S = 1.0  # how long after the reported swap the window lasts
RATE_TOLERANCE = 0.2  # camera rates of the two windows this close (relative) are comparable

Arrival = tuple[float, float, int]  # (arrival wall time, capture stamp, input_seq)


def _in(rows: Sequence[Arrival], start: float, end: float) -> list[Arrival]:
    return [r for r in rows if start <= r[0] < end]


def _max_wait_ms(rows: Sequence[Arrival]) -> float | None:
    times = sorted(r[0] for r in rows)
    waits = [b - a for a, b in zip(times, times[1:])]
    return round(max(waits) * 1e3, 1) if waits else None


def _window(modality: str, start: float, end: float, camera: Sequence[Arrival],
            latents: Sequence[Arrival]) -> dict[str, Any]:
    mine = _in(latents, start, end)
    out: dict[str, Any] = {'seconds': round(end - start, 3), 'latents': len(mine),
                           'max_wait_ms': _max_wait_ms(mine)}
    if modality == 'vision':
        encoded = {decision_key('v', r[1]) for r in latents}
        newest = max((r[1] for r in latents), default=float('-inf'))
        frames = [r for r in _in(camera, start, end) if r[1] <= newest]
        out['camera_frames'] = len(frames)
        out['camera_hz'] = round(len(_in(camera, start, end)) / (end - start), 2) \
            if end > start else None
        out['not_encoded'] = sum(decision_key('v', r[1]) not in encoded for r in frames)
    else:
        out['seq_gaps'] = sequence_gaps(r[2] for r in mine)
    return out


def _vision_cost(during: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """Frames dropped beyond the baseline's share, when the two windows are comparable."""
    a, b = during.get('camera_hz'), before.get('camera_hz')
    comparable = bool(a and b and abs(a - b) <= RATE_TOLERANCE * max(a, b))
    out: dict[str, Any] = {'comparable': comparable}
    if comparable:
        share = before['not_encoded'] / before['camera_frames'] if before['camera_frames'] else 0
        out['frames_lost'] = max(0, round(during['not_encoded']
                                          - share * during['camera_frames']))
    return out


def swap_report(promoted: float, swapped: Mapping[str, float | None],
                camera: Sequence[Arrival], latents: Mapping[str, Sequence[Arrival]],
                version: str, load_ms: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Per modality: when the encoder reported `version`, the swap window and the baseline.

    Args:
        promoted: wall time the new versions were made live.
        swapped: per modality, wall time its encoder first reported the version (None: never).
        camera: camera frames the probe saw.
        latents: per modality, the latents the probe saw.
        version: the promoted version's name.
        load_ms: per modality, what the encoder reported its load and check took.
    """
    out: dict[str, Any] = {'version': version, 'modalities': {}}
    for m, rows in sorted(latents.items()):
        at = swapped.get(m)
        if at is None:
            out['modalities'][m] = {'swapped': False}
            continue
        end = at + AFTER_S
        length = end - promoted
        during = _window(m, promoted, end, camera, rows)
        before = _window(m, promoted - length, promoted, camera, rows)
        out['modalities'][m] = {
            'swapped': True, 'reported_after_s': round(at - promoted, 3),
            # inputs the swap cost: latents the encoder did not deliver against as long a
            # window before (negative: more than before)
            'latents_lost': before['latents'] - during['latents'],
            'load_ms': (load_ms or {}).get(m),
            'swap': during, 'baseline': before}
        if m == 'vision':
            out['modalities'][m].update(_vision_cost(during, before))
    return out
