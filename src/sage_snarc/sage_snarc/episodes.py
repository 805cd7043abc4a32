"""Habituation over episodes, and the combination of the axes into salience.

Noticed inputs of a modality closer than EPISODE_GAP_S are one episode: they share
the habituation trace of its onset, and only the onset counts as a repeat (`reinforce`).
A sound's sharp attack is not the episode going on but a new one, unless it is the episode's
own attack seen again in the next window (it fell across their hop boundary) and the
episode's trace recognises it: a car door slammed while a repeated punch still rings, or the
punch's next repeat while its ring keeps the episode open, each count on their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sage_snarc.audio_scene import ATTACK
from sage_snarc.habituation import RADIUS_MIN
from sage_snarc.modality_state import ModalityState
from sage_snarc.robust import clip01

# Noticed inputs closer than this (s) are one episode: the ~5 windows an audio event spans.
EPISODE_GAP_S = 1.2
# An attack shows in its window and at most the next (across their hop boundary): later than
# this many hops after one, an attack is another one (1.5: the next window, with slack).
ATTACK_HOPS = 1.5
# How far novelty exempts an input from habituation (factor 1 - (1 - f)(1 - gate novelty^2)):
# a never-seen input is at most half habituated, however its onset resembles a repeat.
NOVELTY_GATE = 0.5
# A window's dominant part: its foreground's bands within this many dB of its loudest band (a
# quarter of its power), where a quieter sound in the same window is masked.
DOMINANT_DB = 6.0


class Heard(Protocol):
    """What habituation reads of an input besides its descriptor (snarc_core.Observation)."""

    @property
    def voice(self) -> float: ...
    @property
    def onset(self) -> float: ...
    @property
    def attack(self) -> np.ndarray | None: ...
    @property
    def sound(self) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Episode:
    """How habituated an input is: the trace it matched (-1: none), the factor applied to its
    stimulus part, and whether it continues the modality's open episode."""

    trace: int
    factor: float
    continuing: bool
    loud: float | None = None  # how far its foreground rises above the room (dB; None: no sound)
    # False when the trace knew the input by another reading than its descriptor: then the
    # input strengthens the trace but does not teach it (`reinforce`).
    by_descriptor: bool = True
    frame: np.ndarray | None = None  # its loudest frame's reading, which a trace it teaches keeps
    # The reading that habituated it most when it matched no trace: an onset's near miss of a
    # trace by it counts partly as that trace's repeat (`reinforce`).
    missed: Reading | None = None


@dataclass(frozen=True)
class Reading:
    """One way to recognise an input: a unit spectrum shape, whether a near miss counts (a
    reading that moves with the sound's phase in the window), and the largest radius it may
    match within (None: each trace's own)."""

    x: np.ndarray
    graded: bool = True
    max_dist: float | None = None
    frame: bool = False  # a loudest frame: also compared with the traces' frames


@dataclass(frozen=True)
class Combined:
    """The axes combined: the stimulus part's power sum (surprise, novelty, arousal), salience
    without habituation (raw) and with it."""

    stimulus_part: float
    raw: float
    salience: float


def _match(ms: ModalityState, readings: list[Reading], now: float, loud: float | None
           ) -> tuple[int, float, bool, Reading | None]:
    """The trace that habituates an input most by any of its readings, its factor, whether
    it was the first reading (the descriptor) or none that did, and the reading that did."""
    best: tuple[int, float, bool, Reading | None] = (-1, 1.0, True, None)
    for i, r in enumerate(readings):
        trace, factor = ms.habituation.match(r.x, now, loud, r.max_dist, r.frame)
        if trace < 0 and not r.graded:
            factor = 1.0  # its near misses are other sounds
        # A trace the input lies inside wins over a near miss that habituates as much.
        if factor < best[1] or (trace >= 0 > best[0] and factor <= best[1]):
            best = (trace, factor, i == 0 or trace < 0, r)
    return best


def _readings(ms: ModalityState, desc: np.ndarray | None, obs: Heard) -> list[Reading]:
    """The ways to recognise an input with descriptor `desc` (none without one).

    A sound is recognised by its descriptor, by its attack alone, by its loudest frame alone
    or by that frame's dominant part. The descriptor blends attack and loudest frame, so it
    takes in whatever else the window holds: a beep over passing traffic, or a car door while
    a TV talks, blends the other sound into it (taken at the loudest frame when the attack is
    soft or the window sounds like a voice), while its attack stays its own; a beep whose
    attack catches a clock's tick blends the tick in, while its loudest frame is the beep's.
    The loudest frame is measured wherever the sound falls in the window, so a near miss of
    it is another sound, not a phase shift. A TV's phrase or a distant talk under a beep or a
    tick is in every spectrum of the window, but the beep or tick is its dominant part. That
    reading leaves the rest of the spectrum out, so it says which sound it is only as close to
    a trace as a repeat lands (RADIUS_MIN), not within a wide trace's learnt radius (a changed
    boom's dominant bands were a punch's and the boom was missed)."""
    if desc is None:
        return []
    sound = obs.sound
    dominant = None if sound is None or sound.size == 0 else \
        np.where(sound >= sound.max() - DOMINANT_DB, sound, 0.0)
    shapes = ((desc, True, None, False), (ms.reading(obs.attack), True, None, False),
              (ms.reading(sound), False, None, True),
              (ms.reading(dominant), False, RADIUS_MIN, False))
    return [Reading(x, graded, cap, frame) for x, graded, cap, frame in shapes if x is not None]


def habituation_of(ms: ModalityState, desc: np.ndarray | None, stamp: float, now: float,
                   novelty: float, obs: Heard) -> Episode:
    """The habituation of input `obs` with stimulus descriptor `desc` (None: no stimulus):
    of a sound, its voice onset, onset arousal, and foreground spectra (`Observation`).

    A sound is recognised by any of its readings (`_readings`)."""
    trace, factor, by_desc, missed = -1, 1.0, True, None
    hab, voice, onset, sound = ms.habituation, obs.voice, obs.onset, obs.sound
    # How loud it is (dB above the room): a far louder sound is not a quiet trace's repeat.
    loud = None if sound is None or sound.size == 0 else float(sound.max())
    readings = _readings(ms, desc, obs)
    continuing = ms.episode_trace >= 0 and ms.episode_last <= stamp <= ms.episode_last \
        + EPISODE_GAP_S
    if onset >= ATTACK:
        # A later attack than the episode's own is another sound's or the next repeat's (a
        # punch every 2 s whose ring stayed noticed for a second chained its repeats into one
        # episode, so they did not count and its habituation lapsed after a pause: busy
        # tuning seeds 300-319, repeats attended again 20 -> 15).
        again = stamp - ms.attack_last <= ATTACK_HOPS * ms.hop_s
        if continuing and readings and (not again or all(
                hab.beyond(ms.episode_trace, r.x, loud, r.max_dist, r.frame) for r in readings)):
            continuing = False
        ms.attack_last = stamp
    if continuing:
        # Later inputs of an episode share its trace; one that recognises a stronger
        # trace moves the episode there (an onset caught at an odd phase).
        trace = ms.episode_trace
        factor = hab.factor(trace, now)
        if readings:
            other, other_factor, other_by_desc, _ = _match(ms, readings, now, loud)
            if other >= 0 and other_factor < factor:
                trace, factor, by_desc = other, other_factor, other_by_desc
                ms.episode_trace = other
        # Within an episode the stimulus fades too, without counting as a repeat.
        factor = min(factor, 1.0 - hab.max_drop * ms.episode_h)
    elif readings:
        trace, factor, by_desc, by = _match(ms, readings, now, loud)
        missed = by if trace < 0 else None
    # Habituation needs familiarity: an input never seen before (novelty 1) cannot be a
    # repeat, however its onset resembles one.
    factor = 1.0 - (1.0 - factor) * (1.0 - NOVELTY_GATE * novelty ** 2)
    # Nor is a new utterance a repeat: the voice may be the last one, its message is not.
    factor = 1.0 - (1.0 - factor) * (1.0 - voice)
    frame = next((r.x for r in readings if r.frame), None)
    return Episode(trace, factor, continuing, loud, by_desc, frame, missed)


def combine(axes: np.ndarray, w: np.ndarray, power: float, factor: float) -> Combined:
    """Weighted power mean of the axes; habituation fades what the stimulus is (surprise,
    novelty, arousal), not what it is worth (reward) nor whether the senses agree about it
    (conflict)."""
    weighted = w * axes ** power
    stimulus_part = float(weighted[:3].sum())
    raw = clip01(float(weighted.sum()) ** (1.0 / power))
    habituated = stimulus_part * factor ** power + float(weighted[3:].sum())
    return Combined(stimulus_part, raw, clip01(habituated ** (1.0 / power)))


def reinforce(ms: ModalityState, ep: Episode, desc: np.ndarray | None, stamp: float,
              now: float, noticed: bool) -> None:
    """After an input's decision: a noticed stimulus part (salient before habituation) fades
    the open episode further, or a new one's onset reinforces (or starts) a trace (one repeat
    per episode).

    A faint input that matches a trace outside an episode (a clap from across a busy room) is
    a repeat too, or the sound's habituation would lapse between its loud repeats. It
    reinforces the trace at most once per EPISODE_GAP_S but opens no episode: the next sound
    within the gap is not taken for its continuation.
    """
    hab = ms.habituation
    # Recognised by another reading, the input strengthens the trace but does not teach it
    # what the sound looks like (its prototype, instances and radius stay the descriptor's).
    x = desc if ep.by_descriptor else None
    if not noticed:
        if not ep.continuing and ep.trace >= 0 and desc is not None \
                and now - hab.t[ep.trace] > EPISODE_GAP_S:
            hab.reinforce(x, ep.trace, now, ep.loud, ep.frame)
    elif ep.continuing:
        ms.episode_h += hab.rate * (1.0 - ms.episode_h)
        ms.episode_last = stamp
    elif desc is not None:
        # A near miss (a repeat caught at another phase, or a changed sound) starts a trace of
        # its own and counts partly as a repeat of the trace it missed: were it only the
        # former, a sound whose repeats alternate between two readings would split into two
        # traces that each habituate half as fast. (Worked out here, for the onsets that
        # count, not for every input that matched no trace.)
        if ep.missed is not None:
            r = ep.missed
            hab.generalise(*hab.near_miss_of(r.x, now, ep.loud, r.max_dist, r.frame), now)
        ms.episode_trace = hab.reinforce(x, ep.trace, now, ep.loud, ep.frame)
        ms.episode_h = hab.rate
        ms.episode_last = stamp
