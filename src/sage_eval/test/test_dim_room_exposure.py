"""A camera's auto-exposure step in a dim room is the room, not news, through the real vision
encoder and SNARC: a slow pan over real photos at a dim room's exposure (mean grey about 0.2,
a busy-room sensor's noise and JPEG), then the exposure steps by 3 %. The encoder scales each
frame to `exposure.target` before encoding, so the step does not move the codes; that holds
only while the gain it needs is within `exposure.max_gain`. Photos from the registry packages
sage_eval.media reads; only the camera motion, exposure and noise are generated."""
from __future__ import annotations

import numpy as np
import pytest

from sage_common.params import resolve
from sage_encoders import vision_encoder_params
from sage_encoders.vision_core import VisionEncoderCore
from sage_eval import media, scene_render
from sage_eval.camera_model import expose, resize_to_height, SensorNoise
from sage_snarc import snarc_params
from sage_snarc.snarc_core import SnarcCore

FPS, SIZE, PAN_PX_S = 15.0, 224, 4.0
WARMUP_S, CALM_S, AFTER_S = 20.0, 25.0, 2.0  # statistics warm up, calm, then the step
DIM_GREY = 0.15  # mean grey of a dim room: a third of exposure.target
STEP = scene_render.AE_STEP[1]  # the largest auto-exposure step the scenes make
NOISE = SensorNoise(gain_dn_per_e=0.45, read_dn=4.5, jpeg_quality=70)  # busy.py's middle


def _decisions(step: float, values: dict[str, float]) -> list:
    """SNARC's decisions on the encoder's latents of the dim pan, the exposure multiplied by
    1 + step from CALM_S on."""
    rng = np.random.default_rng(11)
    world = np.concatenate([resize_to_height(media.photo(n), SIZE) for n in ('coffee', 'clock')],
                           axis=1).astype(np.float32)
    gain = DIM_GREY * 255.0 / float(world[:, :SIZE].mean())
    core = VisionEncoderCore.from_params(resolve(vision_encoder_params.PARAMS, values))
    snarc = SnarcCore.from_params(resolve(snarc_params.PARAMS, {}))
    out = []
    for i in range(int((CALM_S + AFTER_S) * FPS)):
        t = i / FPS
        x0 = int(round(PAN_PX_S * t))
        g = gain * (1.0 + step) if t >= CALM_S else gain
        frame = expose(world[:, x0:x0 + SIZE], g, NOISE, rng)
        out.append(snarc.score_latent(core.encode(frame, 1000.0 + t, i, atp=0.0)))
    return out


@pytest.mark.parametrize('step', [STEP, -STEP])
def test_an_exposure_step_in_a_dim_room_is_not_attended(step):
    out = _decisions(step, {})
    after = [d for d in out if d.stamp >= 1000.0 + WARMUP_S]
    assert not any(d.attend for d in after), max(d.salience for d in after)
    at_step = next(d for d in out if d.stamp >= 1000.0 + CALM_S)
    assert at_step.novelty < 0.3, at_step


def test_with_the_gain_clamped_below_the_room_the_step_is_news():
    """The same step with `exposure.max_gain` at 2, under the 3 the room needs (the default
    before the busy rooms): the step goes through to the codes, and the frame is novel."""
    out = _decisions(STEP, {'exposure.max_gain': 2.0})
    at_step = next(d for d in out if d.stamp >= 1000.0 + CALM_S)
    assert at_step.novelty > 0.5, at_step
