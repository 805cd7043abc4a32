"""An input's latent before refinement is all SNARC needs: through the real encoders, on real
photos and a real recording, the early latent (`on_initial`, published on
/sage/<modality>/latent_initial) carries the refined latent's scored codes, embedding, features
and initial reconstruction error, and SNARC decides every input the same from it as from the
refined one; so salience need not wait for the refinement steps."""
from __future__ import annotations

import numpy as np
import pytest

from sage_common.irp import PENDING
from sage_common.params import resolve
from sage_encoders import audio_encoder_params, vision_encoder_params
from sage_encoders.audio_core import AudioEncoderCore
from sage_encoders.vision_core import VisionEncoderCore
from sage_eval import media
from sage_eval.camera_model import SensorNoise, expose, resize_to_height
from sage_snarc import snarc_params
from sage_snarc.snarc_core import SnarcCore

SIZE, FPS = 224, 15.0
AXES = ('surprise', 'novelty', 'arousal', 'reward', 'conflict', 'salience', 'threshold',
        'attend')


def _pairs(encode, n):
    """(early, refined) latents of n inputs; the early one handed over during encode."""
    out = []
    for i in range(n):
        early = []
        refined = encode(i, early.append)
        assert len(early) == 1, 'one early latent per input, before encode returns'
        out.append((early[0], refined))
    return out


def _check_same_input(early, refined):
    assert early.halt_reason == PENDING and early.iterations == 0 and early.atp_spent == 0.0
    assert (early.stamp, early.input_seq, early.modality) == \
        (refined.stamp, refined.input_seq, refined.modality)
    np.testing.assert_array_equal(early.scored_codes, refined.scored_codes)
    np.testing.assert_array_equal(early.embedding, refined.embedding)
    assert early.features == refined.features
    assert early.recon_error == pytest.approx(refined.energy_initial, rel=0, abs=0)
    assert early.model_version == refined.model_version
    assert early.encode_ms <= refined.encode_ms


def _same_decisions(pairs):
    a = SnarcCore.from_params(resolve(snarc_params.PARAMS, {}))
    b = SnarcCore.from_params(resolve(snarc_params.PARAMS, {}))
    for early, refined in pairs:
        x, y = a.score_latent(early), b.score_latent(refined)
        assert [getattr(x, k) for k in AXES] == [getattr(y, k) for k in AXES], early.input_seq


def test_the_early_vision_latent_is_scored_as_the_refined_one():
    rng = np.random.default_rng(3)
    world = np.concatenate([resize_to_height(media.photo(n), SIZE) for n in ('coins', 'rocket')],
                           axis=1).astype(np.float32)
    noise = SensorNoise(gain_dn_per_e=0.12, read_dn=1.5, jpeg_quality=80)
    core = VisionEncoderCore.from_params(resolve(vision_encoder_params.PARAMS, {}))

    def encode(i, sink):
        x0 = 6 * i  # a pan, so the codes move from frame to frame
        frame = expose(world[:SIZE, x0:x0 + SIZE], 1.0, noise, rng)
        return core.encode(frame, 1000.0 + i / FPS, i, atp=4.0, on_initial=sink)

    pairs = _pairs(encode, 40)
    for early, refined in pairs:
        _check_same_input(early, refined)
    # The refinement the early latent does not wait for did change codes.
    assert sum(r.iterations for _, r in pairs) == 4 * len(pairs)
    assert any((r.codes != r.codes_initial).any() for _, r in pairs)
    _same_decisions(pairs)


def test_the_early_audio_latents_are_scored_as_the_refined_ones():
    pytest.importorskip('silero_vad', reason='silero-vad is installed by scripts/install.sh')
    audio = media.load_audio('conversation')[:media.SAMPLE_RATE * 12]
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
    core = AudioEncoderCore.from_params(resolve(audio_encoder_params.PARAMS, {}))
    early: list = []
    refined: list = []
    for i in range(0, pcm.size - 511, 512):
        refined += core.push(pcm[i:i + 512], 100.0 + i / media.SAMPLE_RATE,
                             media.SAMPLE_RATE, 3.0, early.append)
    assert len(refined) >= 40 and len(early) == len(refined)
    pairs = list(zip(early, refined))
    for e, r in pairs:
        _check_same_input(e, r)
    assert sum(r.iterations for r in refined) > 0
    assert any(r.features.get('voice', 0.0) > 0.5 for r in refined)  # speech, not silence
    _same_decisions(pairs)
