"""Start-up and latency figures of /sage/salience, from recorded arrivals (pure; no rclpy).

`sage bench graph` records every Salience it receives as a SalienceArrival; these functions
turn them into time to first salience per modality (from the moment the graph was started)
and capture -> salience latency per modality. A Salience's header.stamp is the scored input's
capture stamp, and for audio that is the stamp of the window's FIRST sample (the encoder stamps
a window with its first sample, the microphone a frame with its first sample), so a ~1 s window
would read as ~1 s late: the audio latency is taken from the window's LAST sample instead.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np


class SalienceArrival(NamedTuple):
    """One Salience as the bench received it."""

    modality: str
    arrival: float  # wall time (s) the message reached the bench
    stamp: float  # header.stamp (s): capture stamp of the scored input
    input_seq: int = -1  # the encoder's per-modality input counter (0 = its first input)


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """n, p50, p95 and p99 of values ({'n': 0} when there are none)."""
    arr = np.asarray(list(values), dtype=float)
    if not arr.size:
        return {'n': 0}
    return {'n': int(arr.size), 'p50': float(np.percentile(arr, 50)),
            'p95': float(np.percentile(arr, 95)), 'p99': float(np.percentile(arr, 99))}


def first_salience_s(arrivals: Iterable[SalienceArrival], started: float) -> dict[str, float]:
    """Seconds from `started` (the graph's launch) to the first Salience of each modality."""
    return {m: a.arrival - started for m, a in sorted(_firsts(arrivals).items())}


def _firsts(arrivals: Iterable[SalienceArrival]) -> dict[str, SalienceArrival]:
    first: dict[str, SalienceArrival] = {}
    for a in arrivals:
        if a.modality not in first or a.arrival < first[a.modality].arrival:
            first[a.modality] = a
    return first


def first_salience_input(arrivals: Iterable[SalienceArrival], started: float,
                         offsets: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Where the first salience's time goes, per modality: from `started` to the capture of
    its input's first and newest sample ('first_sample_s', 'newest_sample_s'; they differ by
    the audio window), and from that newest sample to the Salience ('scored_after_s').

    A start-up that waits on the sensor (a process still importing, the microphone's first
    window) shows in the capture times; one that waits on encoding or scoring (a model load,
    a subscription matched late) in scored_after_s."""
    out: dict[str, dict[str, float]] = {}
    for m, a in sorted(_firsts(arrivals).items()):
        newest = a.stamp + offsets.get(m, 0.0)
        out[m] = {'first_sample_s': a.stamp - started, 'newest_sample_s': newest - started,
                  'scored_after_s': a.arrival - newest}
    return out


def first_salience_seq(arrivals: Iterable[SalienceArrival]) -> dict[str, int]:
    """input_seq of the first Salience received per modality.

    Above 0, the inputs before it were encoded but not seen here: the bench's subscription (or
    SNARC's) matched late, so a first-salience time includes that discovery delay.
    """
    return {m: a.input_seq for m, a in sorted(_firsts(arrivals).items())}


def last_sample_offsets(node_params: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Seconds from a Salience's stamp to the newest sample its input held, per modality.

    Audio: the audio encoder's window spans window_samples at sample_rate from its stamp, so
    its last sample is (window_samples - 1) / sample_rate later. Vision (one frame) and IMU
    (SNARC stamps an IMU window with its last sample) are 0, as is any modality not listed.

    Args:
        node_params: the profile's parameters per node name (needs 'audio_encoder' for audio).
    """
    audio = node_params.get('audio_encoder', {})
    if 'window_samples' not in audio or 'sample_rate' not in audio:
        return {}
    return {'audio': (int(audio['window_samples']) - 1) / float(audio['sample_rate'])}


def salience_latency_ms(arrivals: Iterable[SalienceArrival],
                        offsets: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Capture (newest sample) -> salience arrival latency percentiles (ms) per modality."""
    per: dict[str, list[float]] = {}
    for a in arrivals:
        captured = a.stamp + offsets.get(a.modality, 0.0)
        per.setdefault(a.modality, []).append((a.arrival - captured) * 1e3)
    return {m: percentiles(v) for m, v in sorted(per.items())}


def latency_by_refinement(arrivals: Iterable[SalienceArrival],
                          iterations: Mapping[tuple[str, float], int],
                          offsets: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """`salience_latency_ms` per modality, split by whether the encoder refined the input.

    A refined input waits for its refinement steps before SNARC sees it (on the nano profile
    a 5-ATP vision frame takes about five times an unrefined one), so the p95 of a modality is
    mostly that of its refined inputs; this says how much.

    Args:
        arrivals: the Salience arrivals.
        iterations: refinement steps per input, keyed by (modality, capture stamp rounded to
            0.1 ms), from the latents the bench saw; inputs missing here are left out.
        offsets: `last_sample_offsets`.
    """
    per: dict[str, dict[str, list[float]]] = {}
    for a in arrivals:
        n = iterations.get((a.modality, round(a.stamp, 4)))
        if n is None:
            continue
        captured = a.stamp + offsets.get(a.modality, 0.0)
        kind = 'refined' if n > 0 else 'unrefined'
        per.setdefault(a.modality, {}).setdefault(kind, []).append((a.arrival - captured) * 1e3)
    return {m: {k: percentiles(v) for k, v in sorted(kinds.items())}
            for m, kinds in sorted(per.items())}
