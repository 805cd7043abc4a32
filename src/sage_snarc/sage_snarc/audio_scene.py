"""The room as SNARC hears it: its background level and spectrum, and what stands out of them.

A fan at -30 dBFS is loud but not news; a clap 30 dB above a quiet room is. Arousal is therefore
measured as a rise above the tracked background (the median level of the last `window` hops)
and as the rise of the most risen band above that band's background (a sound loud only where
the room is quiet barely moves the level), and sounds are told apart by their foreground
spectrum: how far each band of the newest hop rises above that band's background. The mean
code embedding sorts sounds into about two families; the foreground spectrum tells an impact
from a door or a voice, so habituation and novelty use it.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from sage_snarc.novelty import unit
from sage_snarc.robust import RobustStats, saturate

# Feature names of the encoder's spectral bands (sage_encoders.audio_core.hop_spectrum): the
# newest hop's levels around its loudest frame, and over its attack.
BAND_PREFIX = 'band_'
ATTACK_PREFIX = 'attack_'
# An attack: onset arousal at least this (0.7 of arousal.audio.onset_ref_db, a 14 dB rise over
# 32 ms at the default 20 dB): impacts and doors start so, a wandering air handler or the tail
# of a sound does not. (Vision has no such moment: every moving frame "starts".)
ATTACK = saturate(0.7)
# Hops (0.256 s each) whose median level is the room background (a fan that starts is
# background within half of it).
BACKGROUND_WINDOW = 120
# A change of room (`quieter`, `louder`; SNARC learns the room afresh). A fan or vent stopped:
# the level held ROOM_DROP_DB below the background for ROOM_DROP_HOPS hops (calm rooms' hops
# stayed within 2.2 dB below it, a stopping vent dropped about 9 dB), or ROOM_BAND_COUNT bands
# held ROOM_BAND_DROP_DB below theirs for ROOM_BAND_HOPS hops (a vent stopping under a louder
# fan: the level hardly moves, its high bands drop 10-16 dB; calm bands stay within about 5 dB;
# 8 hops outlast the pauses of a long conversation, whose voice is then the bands' background).
ROOM_DROP_DB = 4.0
ROOM_DROP_HOPS = 2
ROOM_BAND_DROP_DB = 6.0
ROOM_BAND_COUNT = 3
ROOM_BAND_HOPS = 8
# A vent or fan started: the level held ROOM_RISE_DB above the background for ROOM_RISE_HOPS
# hops (longer than a clap or a door) with bands that moved at most ROOM_RISE_FLUX_DB a hop
# (median over bands; a starting vent 1.0-1.6 dB, a voice that lasted as long 4-10 dB).
ROOM_RISE_DB = 6.0
ROOM_RISE_FLUX_DB = 2.5
ROOM_RISE_HOPS = 12


def bands_of(features: dict[str, float], prefix: str = BAND_PREFIX) -> np.ndarray | None:
    """The newest hop's band levels (dB) in band order, or None when the encoder sent none."""
    names = sorted(k for k in features if k.startswith(prefix))
    if not names:
        return None
    return np.array([features[k] for k in names], dtype=np.float64)


def band_shape(sound: np.ndarray) -> np.ndarray | None:
    """A foreground spectrum's shape across bands, not its loudness (a unit vector; None when
    flat): impacts rise in every band, and what tells one from another is where they rise
    most."""
    return unit((sound - sound.mean()).astype(np.float32))


class AudioBackground:
    """Median level and median band spectrum of the last `window` hops (the spectrum at each
    hop's loudest frame, and over its attack: each is measured against its own)."""

    def __init__(self, window: int, min_count: int = 4, drop_hops: int = 2,
                 band_hops: int = 8, rise_hops: int = 12) -> None:
        self.level = RobustStats(window, min_count=min_count)
        self._newest: deque[float] = deque(maxlen=max(1, int(drop_hops)))
        # Bands of the newest hops, minus their background when they came (None: no bands).
        self._newest_bands: deque[np.ndarray | None] = deque(maxlen=max(1, int(band_hops)))
        # Rise of the newest hops' level above the background when they came, and their bands.
        self._rising: deque[tuple[float, np.ndarray | None]] = deque(
            maxlen=max(2, int(rise_hops)))
        self._window = max(4, int(window))
        self._min_count = max(1, int(min_count))
        self._bands: np.ndarray | None = None  # (window, n_bands) ring
        self._n = 0
        self._pos = 0
        self._median: np.ndarray | None = None
        self._attack: np.ndarray | None = None  # the attack spectrum's ring, same hops
        self._attack_median: np.ndarray | None = None

    def base(self, level: float, floor_db: float) -> float:
        """Level rises are measured from: the background, never below floor_db."""
        center = self.level.center_scale()[0] if self.level.ready else level
        return max(center, floor_db)

    def _deviation(self, bands: np.ndarray | None) -> np.ndarray | None:
        """dB by which each band lies above (+) or below (-) its background; None while
        warming up or without bands."""
        med = self._median
        if bands is None or med is None or med.shape != bands.shape \
                or self._n < self._min_count:
            return None
        return bands - med

    def _above(self, values: np.ndarray | None, med: np.ndarray | None) -> np.ndarray | None:
        """dB by which each band stands above its background median `med` (>= 0; None: no
        bands). While the room is learnt (at the start, after it changed) nothing stands out
        of it yet: 0 (judged by the encoder's embedding instead, a window's novelty was that
        of a room just heard for the first time)."""
        if values is None:
            return None
        if med is None or med.shape != values.shape or self._n < self._min_count:
            return np.zeros_like(values)
        return np.maximum(values - med, 0.0)

    def foreground(self, bands: np.ndarray | None) -> np.ndarray | None:
        """`_above` for a hop's spectrum at its loudest frame, against the room's."""
        return self._above(bands, self._median)

    def attack_foreground(self, attack: np.ndarray | None) -> np.ndarray | None:
        """`_above` for a hop's attack spectrum, against the room's attack spectra."""
        return self._above(attack, self._attack_median)

    def quieter(self, level: float, drop_db: float, bands: np.ndarray | None = None,
                band_drop_db: float = 0.0, band_count: int = 1) -> bool:
        """True when this hop and the `drop_hops` - 1 before it all lie more than drop_db
        below the background, or this hop and the `band_hops` - 1 before it all have at least
        `band_count` bands more than band_drop_db below those bands' background: a source of
        the room's own noise (a fan, a vent) stopped. The bands see a vent stop under a louder
        fan, which the level hardly does; they also fall in a pause of a long conversation
        (its voice is their background then), so they must stay down for longer.

        A sound only adds to the room, so no sound makes its level or a band drop; a lasting
        drop is the room changing (0 dB or less: never by that rule)."""
        self._newest.append(level)
        self._newest_bands.append(self._deviation(bands))
        if drop_db > 0.0 and self.level.ready and len(self._newest) == self._newest.maxlen \
                and max(self._newest) < self.level.center_scale()[0] - drop_db:
            return True
        return band_drop_db > 0.0 and len(self._newest_bands) == self._newest_bands.maxlen \
            and all(d is not None and int(np.sum(d < -band_drop_db)) >= band_count
                    for d in self._newest_bands)

    def louder(self, level: float, bands: np.ndarray | None, rise_db: float,
               flux_db: float) -> bool:
        """True when this hop and the `rise_hops` - 1 before it all lie more than rise_db
        above the background level while their bands moved little from hop to hop (the
        median over bands of the mean hop-to-hop change at most flux_db): a steady source of
        noise (a vent, a fan) started, the rising twin of `quieter`.

        Sounds do make a room louder, so the rise must last and be steady: a voice or music
        that lasts as long moves its bands far more from hop to hop (4-10 dB in tuning
        scenes, a starting vent 1.0-1.6 dB, its ramp included). Needs the bands (0 dB or
        less: never)."""
        rise = level - self.level.center_scale()[0] if self.level.ready else -np.inf
        self._rising.append((rise, bands))
        if rise_db <= 0.0 or bands is None or len(self._rising) < self._rising.maxlen \
                or any(r <= rise_db or b is None or b.shape != bands.shape
                       for r, b in self._rising):
            return False
        spectra = np.array([b for _, b in self._rising])
        flux = np.mean(np.abs(np.diff(spectra, axis=0)), axis=0)
        return float(np.median(flux)) <= flux_db

    def restart(self) -> None:
        """Learn the background level and spectrum afresh from the next hops (the room
        changed): measured from the old ones, the new room would stand out or sink for half
        a window."""
        self.level = RobustStats(self._window, min_count=self._min_count)
        self._bands = self._attack = None
        self._n = self._pos = 0
        self._median = self._attack_median = None
        self._newest.clear()
        self._newest_bands.clear()
        self._rising.clear()

    def update(self, level: float, bands: np.ndarray | None,
               attack: np.ndarray | None = None) -> None:
        """Fold the newest hop into the background (an encoder that sends no attack
        spectrum: its loudest frame's stands in)."""
        self.level.update(level)
        if bands is None:
            return
        if self._bands is None or self._bands.shape[1] != bands.shape[0]:
            self._bands = np.zeros((self._window, bands.shape[0]), dtype=np.float64)
            self._attack = self._bands.copy()
            self._n = self._pos = 0
        self._bands[self._pos] = bands
        self._attack[self._pos] = (attack if attack is not None
                                   and attack.shape == bands.shape else bands)
        self._pos = (self._pos + 1) % self._window
        self._n += 1
        self._median = np.median(self._bands[:min(self._n, self._window)], axis=0)
        self._attack_median = np.median(self._attack[:min(self._n, self._window)], axis=0)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint."""
        return {'level': self.level.state_dict(),
                'bands': None if self._bands is None else self._bands.copy(),
                'attack': None if self._attack is None else self._attack.copy(),
                'n': self._n, 'pos': self._pos, 'newest': list(self._newest),
                'newest_bands': [None if d is None else d.copy() for d in self._newest_bands],
                'rising': [(r, None if b is None else b.copy()) for r, b in self._rising]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint made by `state_dict`."""
        self.level.load_state_dict(state['level'])
        bands = state['bands']
        self._bands = None if bands is None else np.asarray(bands, np.float64).copy()
        attack = state.get('attack', bands)  # from before attack spectra: the loudest frame's
        self._attack = None if attack is None else np.asarray(attack, np.float64).copy()
        self._n, self._pos = int(state['n']), int(state['pos'])
        # The hops a drop or rise must hold over (older checkpoints had none: start afresh).
        self._newest.clear()
        self._newest.extend(float(x) for x in state.get('newest', []))
        self._newest_bands.clear()
        self._newest_bands.extend(None if d is None else np.asarray(d, np.float64).copy()
                                  for d in state.get('newest_bands', []))
        self._rising.clear()
        self._rising.extend((float(r), None if b is None else np.asarray(b, np.float64).copy())
                            for r, b in state.get('rising', []))
        kept = slice(0, min(self._n, self._window))
        self._median = (None if self._bands is None or self._n == 0 else
                        np.median(self._bands[kept], axis=0))
        self._attack_median = (None if self._attack is None or self._n == 0 else
                               np.median(self._attack[kept], axis=0))
