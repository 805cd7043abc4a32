"""A recorded impact has one band shape wherever in the audio hop it starts, and another
recorded impact has another: the encoder's hop spectrum for telling sounds apart is taken over
the attack.

Taken over the hop's loudest frame and its neighbours, an impact that started early in the hop
showed its body, one that started late its attack, and one cut off by the window's end leaked
into every band: repeats of one sound spread up to 0.35 from their mean shape, and a car door
came within 0.23 of a punch's. Over the attack: up to 0.31, and no nearer than 0.35. Sounds
from the registry packages sage_eval.media fetches (pygame's car door, punch and boom;
OpenSFX's wind as air handling); the encoder's own front end and SNARC's own foreground and
shape."""
from __future__ import annotations

import itertools

import numpy as np

from sage_encoders.audio_core import hop_spectrum
from sage_encoders.preprocess import MelConfig, log_mel_db
from sage_eval import busy_sound, media
from sage_eval.realistic import sound
from sage_eval.room import at_peak
from sage_snarc.audio_scene import (ATTACK_PREFIX, BAND_PREFIX, AudioBackground, band_shape,
                                    bands_of)
from sage_snarc.habituation import MATCH_DIST
from sage_snarc.modality_state import MIN_RISE_DB
from sage_snarc.robust import chord

SR = media.SAMPLE_RATE
WINDOW, HOP = 16384, 4096
STARTS = 13                      # where in the newest hop the impact starts, evenly spread
SOUNDS = ('car_door', 'punch', 'boom')
ROOM_HOPS = 60                   # windows of the room alone that SNARC's background learns


def _bands(window: np.ndarray, mel: MelConfig, prefix: str = BAND_PREFIX) -> np.ndarray:
    """The newest hop's band levels as the audio encoder sends them (BAND_PREFIX: at its
    loudest frame, which SNARC learns the room from; ATTACK_PREFIX: over its attack)."""
    db = log_mel_db(window, mel)
    return bands_of(hop_spectrum(db, HOP // mel.hop, mel.n_fft // mel.hop - 1), prefix)


def _shapes() -> dict[str, list[np.ndarray]]:
    """Per sound, its band shape over the room at each start within the newest hop."""
    rng = np.random.default_rng(4)
    mel = MelConfig(sample_rate=SR, window_samples=WINDOW)
    n = WINDOW + (ROOM_HOPS + 2 * len(SOUNDS) * STARTS + 1) * HOP
    room = busy_sound.air_handling(n, rng, level_db=-32.0, depth_db=3.0).astype(np.float32)
    background = AudioBackground(window=ROOM_HOPS)
    for k in range(ROOM_HOPS):
        window = room[k * HOP:k * HOP + WINDOW]
        background.update(0.0, _bands(window, mel), _bands(window, mel, ATTACK_PREFIX))
    shapes: dict[str, list[np.ndarray]] = {}
    k = ROOM_HOPS
    for name in SOUNDS:
        hit = at_peak(sound(name), -10.0)
        for j in range(STARTS):
            at = k * HOP + WINDOW - HOP + j * HOP // STARTS  # in the newest hop of window k
            heard = room.copy()
            heard[at:at + hit.size] += hit[:n - at]
            # The first window whose foreground rises MIN_RISE_DB is the one SNARC takes the
            # sound's descriptor from (a sound that starts at the very end of a hop is too
            # little of itself there: the next window's newest hop holds its attack).
            for w in (k, k + 1):
                window = heard[w * HOP:w * HOP + WINDOW]
                if background.foreground(_bands(window, mel)).max() >= MIN_RISE_DB:
                    break
            attack = background.attack_foreground(_bands(window, mel, ATTACK_PREFIX))
            shapes.setdefault(name, []).append(band_shape(attack))
            k += 2
    return shapes


def _mean(shapes: list[np.ndarray]) -> np.ndarray:
    m = np.mean(shapes, axis=0)
    return m / np.linalg.norm(m)


def _distances(shapes: list[np.ndarray], to: np.ndarray) -> np.ndarray:
    return chord(np.clip(np.array(shapes) @ to, -1.0, 1.0))


def test_an_impact_has_one_shape_wherever_it_starts_and_another_impact_another():
    """A trace is the mean of its repeats' shapes (and its latest instances), matched within
    its radius: RADIUS_MIN to MATCH_DIST."""
    shapes = _shapes()
    spread = {s: float(_distances(shapes[s], _mean(shapes[s])).max()) for s in SOUNDS}
    gap = {(a, b): float(_distances(shapes[a], _mean(shapes[b])).min())
           for a, b in itertools.permutations(SOUNDS, 2)}
    # A repeat, wherever in the hop it starts, matches a new trace of its sound ...
    assert max(spread.values()) < MATCH_DIST, spread
    # ... and no instance of another impact comes as close to a sound as its own repeats.
    assert min(gap.values()) > max(spread.values()), (spread, gap)
