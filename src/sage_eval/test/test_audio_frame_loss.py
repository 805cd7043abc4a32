"""A lost, repeated or jittered AudioFrame leaves every other window as the unbroken stream cut it.

A best-effort reader loses whole 32 ms frames when its node stalls (a live graph lost 2 of
1104 in `test_replay_live`). Appended as they came, the samples after a loss sat a frame
earlier than their stamps in every later window, so the live graph and the replay of the same
recording scored different audio under the same stamps. Here, on a real recorded conversation
fed in AudioFrame blocks as the microphone node sends them, each window that does not hold the
lost frame must have the same samples (level and codes) as without the loss.
"""
from __future__ import annotations

import numpy as np
import pytest

from sage_common.params import resolve
from sage_encoders import audio_encoder_params
from sage_encoders.audio_core import AudioEncoderCore
from sage_encoders.data import to_pcm
from sage_eval import media

FRAME = 512
SR = media.SAMPLE_RATE
T0 = 102.4                   # on the window hop grid (400 hops of 0.256 s)
LOST = 150                   # the frame index (4.8 s) that goes missing or comes twice


@pytest.fixture(scope='module')
def frames() -> list[tuple[float, np.ndarray]]:
    pcm = to_pcm(media.load_audio('conversation')[:SR * 10])
    return [(T0 + i / SR, pcm[i:i + FRAME]) for i in range(0, pcm.size - FRAME + 1, FRAME)]


def _run(frames, **over):
    core = AudioEncoderCore.from_params(resolve(audio_encoder_params.PARAMS, {
        'voice.enabled': False, 'irp.max_iterations': 0, **over}))
    out = {}
    for stamp, pcm in frames:
        out.update((round(r.stamp, 4), r) for r in core.push(pcm, stamp, SR))
    return core, out


def _holds_lost_frame(stamp: float) -> bool:
    lost = T0 + LOST * FRAME / SR
    return stamp <= lost < stamp + 16384 / SR


def test_a_lost_frame_is_filled_in_and_later_windows_keep_their_samples(frames):
    _, whole = _run(frames)
    core, lossy = _run(frames[:LOST] + frames[LOST + 1:])
    assert core.filled_samples == FRAME and core.gaps == 0 and core.late_samples == 0
    assert lossy.keys() == whole.keys()   # the same windows, at the same stamps
    untouched = [s for s in whole if not _holds_lost_frame(s)]
    assert len(untouched) >= len(whole) - 4 and any(s > T0 + 6.0 for s in untouched)
    for s in untouched:
        assert lossy[s].features['rms'] == whole[s].features['rms'], s
        assert np.array_equal(lossy[s].codes, whole[s].codes), s
    # The windows over the loss hold the previous frame twice: about the same level.
    for s in set(whole) - set(untouched):
        assert lossy[s].features['rms'] == pytest.approx(whole[s].features['rms'], rel=0.1)


def test_a_repeated_frame_adds_nothing(frames):
    _, whole = _run(frames)
    core, twice = _run(frames[:LOST + 1] + frames[LOST:])
    assert core.late_samples == FRAME and core.filled_samples == 0
    assert twice.keys() == whole.keys()
    for s, rec in whole.items():
        assert twice[s].features['rms'] == rec.features['rms'], s
        assert np.array_equal(twice[s].codes, rec.codes), s


def test_stamp_jitter_under_half_a_frame_is_not_a_loss(frames):
    """A source that stamps frames at arrival: its few ms of jitter are not lost samples."""
    _, whole = _run(frames)
    rng = np.random.default_rng(4)
    jittered = [(s + rng.uniform(-0.006, 0.006) * (i > 0), pcm)
                for i, (s, pcm) in enumerate(frames)]
    core, got = _run(jittered)
    assert core.filled_samples == 0 and core.late_samples == 0 and core.gaps == 0
    assert [rec.features['rms'] for rec in got.values()] == \
        [rec.features['rms'] for rec in whole.values()]
