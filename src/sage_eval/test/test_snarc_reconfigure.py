"""A parameter change at run time does not change what SNARC scores.

The orchestrator sets SNARC's threshold offsets whenever the metabolic state or the memory
pressure changes, and the node takes every change by building its core afresh from the old
one's state (`SnarcCore.reconfigured`). When that state missed an open utterance, a change in
the middle of a phrase made the phrase start again: four more windows at novelty 1.0, attended
live and not in the replay of the same recording (`test_replay_live`). Here a real recorded
conversation and real photos go through the real encoders, and a scorer reconfigured before
every input must score each one exactly as a scorer never reconfigured.
"""
from __future__ import annotations

import numpy as np
import pytest

from sage_common.params import resolve
from sage_encoders import audio_encoder_params, vision_encoder_params
from sage_encoders.audio_core import AudioEncoderCore
from sage_encoders.data import to_pcm
from sage_encoders.vision_core import VisionEncoderCore
from sage_eval import media
from sage_eval.camera_model import SensorNoise, expose, resize_to_height
from sage_snarc import snarc_params
from sage_snarc.snarc_core import SnarcCore

AXES = ('surprise', 'novelty', 'arousal', 'reward', 'conflict', 'salience', 'threshold',
        'attend')
T0 = 102.4   # on the audio hop grid
SIZE, FPS = 160, 5.0


def _latents():
    """Audio windows of 20 s of the conversation and a camera pan over two photos, in stamp
    order as SNARC receives them."""
    pcm = to_pcm(media.load_audio('conversation')[:media.SAMPLE_RATE * 20])
    hearing = AudioEncoderCore.from_params(resolve(audio_encoder_params.PARAMS, {}))
    out = []
    for i in range(0, pcm.size - 511, 512):
        out += hearing.push(pcm[i:i + 512], T0 + i / media.SAMPLE_RATE, media.SAMPLE_RATE, 2.0)
    rng = np.random.default_rng(5)
    world = np.concatenate([resize_to_height(media.photo(n), SIZE) for n in ('coins', 'rocket')],
                           axis=1).astype(np.float32)
    noise = SensorNoise(gain_dn_per_e=0.12, read_dn=1.5, jpeg_quality=80)
    seeing = VisionEncoderCore.from_params(resolve(vision_encoder_params.PARAMS, {}))
    for i in range(int(20 * FPS)):
        x0 = min(3 * i, world.shape[1] - SIZE)
        out.append(seeing.encode(expose(world[:SIZE, x0:x0 + SIZE], 1.0, noise, rng),
                                 T0 + i / FPS, i, atp=2.0))
    return sorted(out, key=lambda r: r.stamp)


def test_a_scorer_reconfigured_before_every_input_scores_as_one_never_reconfigured():
    pytest.importorskip('silero_vad', reason='silero-vad is installed by scripts/install.sh')
    values = resolve(snarc_params.PARAMS, {})
    steady = SnarcCore.from_params(values)
    changed = SnarcCore.from_params(values)
    onsets = 0
    for i, rec in enumerate(_latents()):
        # What the orchestrator does on a state or pressure change: new offsets (DREAM's here,
        # so the WAKE threshold and every score must stay as they are).
        changed = changed.reconfigured({**values, 'threshold.offset.dream': 0.1 + 0.01 * (i % 7)})
        a, b = steady.score_latent(rec), changed.score_latent(rec)
        assert [getattr(b, k) for k in AXES] == [getattr(a, k) for k in AXES], \
            (rec.modality, round(rec.stamp - T0, 3))
        onsets += rec.modality == 'audio' and a.novelty == 1.0
    assert onsets >= 3, 'the conversation opens utterances (voice onsets at novelty 1)'
    assert changed.issues == steady.issues
