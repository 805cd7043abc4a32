"""A recorded impact repeated until SNARC habituates to it, then another recorded impact: the
changed sound keeps its salience (habituation traces learn their radius from their repeats),
through the real audio encoder. Sounds from the registry packages sage_eval.media fetches; only
the room under them is generated."""
from __future__ import annotations

import numpy as np
import pytest

from sage_common.params import resolve
from sage_encoders import audio_encoder_params
from sage_encoders.audio_core import AudioEncoderCore
from sage_eval import media, room
from sage_eval.realistic import sound
from sage_eval.room import at_peak
from sage_snarc import modality_state, snarc_params
from sage_snarc.snarc_core import SnarcCore

SR = media.SAMPLE_RATE
WARMUP_S, GAP_S, REPEATS, PEAK_DB = 40.0, 5.0, 8, -10.0
DETECT_S = 1.0  # the salience bench's detection window after an event's start
PAIRS = [('punch', 'car_door'), ('punch', 'boom')]


def _scene(repeated: str, changed: str) -> tuple[np.ndarray, list[float], float]:
    """A room with a fan (-30 dBFS, as the realistic scenes' fan), `repeated` every GAP_S s
    after the warm-up, then `changed` as loud."""
    rng = np.random.default_rng(3)
    starts = [WARMUP_S + i * GAP_S for i in range(REPEATS + 1)]
    n = int((starts[-1] + 4.0) * SR)
    audio = (room.coloured_noise(rng, n, 1.5, -54.0) + room.mains_hum(n, 50.0, -56.0)
             + room.fan(rng, n, -30.0))
    for k, t in enumerate(starts):
        hit = at_peak(sound(changed if k == REPEATS else repeated), PEAK_DB)
        at = int(t * SR)
        audio[at:at + hit.size] += hit[:n - at]
    return audio, starts[:-1], starts[-1]


@pytest.fixture(scope='module')
def latents():
    """The audio encoder's windows of two scenes (a punch repeated, then a car door or a boom)."""
    out = {}
    for pair in PAIRS:
        audio, reps, changed = _scene(*pair)
        core = AudioEncoderCore.from_params(resolve(audio_encoder_params.PARAMS, {}))
        pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
        recs = []
        for i in range(0, pcm.size - 511, 512):
            recs += core.push(pcm[i:i + 512], 1000.0 + i / SR, SR, 0.0)
        out[pair] = (recs, [1000.0 + t for t in reps], 1000.0 + changed,
                     core.cfg.window_samples / SR)
    return out


def _peaks(recs, window_s: float, starts: list[float], values) -> list[tuple[float, bool]]:
    """Per event: the highest salience of the windows that end within its detection window,
    and whether one of them was attended."""
    scores = []
    snarc = SnarcCore.from_params(resolve(snarc_params.PARAMS, values))
    decided = [(r.stamp + window_s, snarc.score_latent(r)) for r in recs]
    for s in starts:
        near = [d for t, d in decided if s - 0.05 <= t <= s + DETECT_S]
        scores.append((max(d.salience for d in near), any(d.attend for d in near)))
    return scores


@pytest.mark.parametrize('pair', PAIRS)
def test_a_changed_impact_after_a_habituated_one_keeps_its_salience(latents, pair):
    recs, reps, changed, window_s = latents[pair]
    scores = _peaks(recs, window_s, reps + [changed], {})
    peaks = [p for p, _ in scores[:-1]]
    assert np.mean(peaks[-3:]) < 0.7 * np.mean(peaks[:2]), np.round(peaks, 2)  # habituated
    assert scores[-1][1], (pair, round(scores[-1][0], 2), np.round(peaks, 2))


def test_with_one_fixed_radius_the_car_door_was_the_punch_habituated(latents, monkeypatch):
    """The same scene scored as before radii were learnt: every trace matched within
    MATCH_DIST (then 0.45, with a near-miss band of 0.15), and a car door lies within it of a
    punch."""
    recs, reps, changed, window_s = latents[('punch', 'car_door')]
    learnt = _peaks(recs, window_s, reps + [changed], {})
    for name, value in (('RADIUS_SPREADS', 0.0), ('MATCH_DIST', 0.45), ('NEAR_MISS', 0.15)):
        monkeypatch.setattr(modality_state, name, value)
    fixed = _peaks(recs, window_s, reps + [changed], {})
    assert not fixed[-1][1] and learnt[-1][1]
    assert learnt[-1][0] > fixed[-1][0] + 0.1
