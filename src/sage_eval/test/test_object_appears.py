"""A small object that appears across a corner of SNARC's code blocks is news, through the real
vision encoder: a slow pan over real photos with sensor noise and JPEG, then a cut-out of
another real photo pasted into the world, centred where four code blocks meet. Side by side
blocks split its new codes four ways (each block a quarter new, like a pan); overlapping blocks
(`predictor.CODE_STRIDE` less than the block) hold it whole in one block. Photos from the
registry packages sage_eval.media reads; only the camera motion and noise are generated.
A smooth cut-out on a smooth floor leaves the codes as they were: its colour
(the encoder's colour_change feature) is what tells it; a grey one on grey, its brightness
against its surroundings (grey_change)."""
from __future__ import annotations

import numpy as np
import pytest

from sage_common.params import resolve
from sage_encoders import vision_encoder_params
from sage_encoders.vision_core import VisionEncoderCore
from sage_eval import media
from sage_eval.camera_model import cutout, expose, paste, resize_to_height, SensorNoise
from sage_snarc import modality_state, snarc_params
from sage_snarc.snarc_core import SnarcCore

FPS, SIZE, PAN_PX_S = 15.0, 224, 4.0
WARMUP_S, CALM_S, AFTER_S = 20.0, 25.0, 2.0  # statistics warm up, calm, then the object
DETECT_S = 1.0  # the salience bench's detection window after an event's start
OBJECT_PX = 56  # the realistic scenes' smallest: 7.5 code cells (8 px each at the encoder's 240)
# Where four 6-cell blocks meet (cell 12 of 30) in the 224 px frame.
CORNER_PX = round(12 * 8 * SIZE / 240)
CODES_ONLY = {'surprise.channels.vision': 'brightness,codes'}  # before colour_change
NO_GREY = {'surprise.channels.vision': 'brightness,codes,colour_change'}  # before grey_change
# Blocks side by side, as before the stride (constants read by ModalityState.create).
SIDE_BY_SIDE = {'CODE_STRIDE': 0, 'CODES_FLOOR': 0.05}


def _scene(world_names, obj, at):
    """The encoder's latents of a slow pan over `world_names` with a cut-out of photo `obj`
    pasted at `at` (px of the first frame) after CALM_S, and the stamp it appears.

    No refinement (0 ATP): SNARC scores a latent before refinement (its initial codes, their
    embedding, the error before refinement, the features), and the rocket's scene scored
    alike to the last bit with the profile's 2 ATP per frame, which took three times as long."""
    rng = np.random.default_rng(7)
    world = np.concatenate([resize_to_height(media.photo(n), SIZE) for n in world_names],
                           axis=1).astype(np.float32)
    patch, alpha = cutout(media.photo(obj), OBJECT_PX, rng)
    noise = SensorNoise(gain_dn_per_e=0.12, read_dn=1.5, jpeg_quality=80)
    core = VisionEncoderCore.from_params(resolve(vision_encoder_params.PARAMS, {}))
    appear = CALM_S
    recs, pasted = [], False
    for i in range(int((CALM_S + AFTER_S) * FPS)):
        t = i / FPS
        x0 = int(round(PAN_PX_S * t))
        if t >= appear and not pasted:
            paste(world, patch, alpha, x0 + at[0], at[1])
            pasted = True
        frame = expose(world[:SIZE, x0:x0 + SIZE], 1.0, noise, rng)
        recs.append(core.encode(frame, 1000.0 + t, i, atp=0.0))
    return recs, 1000.0 + appear


@pytest.fixture(scope='module')
def latents():
    """A rocket cut-out centred where four code blocks meet, over coffee and a clock."""
    at = CORNER_PX - OBJECT_PX // 2
    return _scene(('coffee', 'clock'), 'rocket', (at, at))


@pytest.fixture(scope='module')
def colour_latents():
    """A rocket cut-out (a smooth blue sky round it) on the grey floor of a garage: its codes
    are the floor's, its colour is not."""
    return _scene(('motorcycle_left', 'coffee'), 'rocket', (120, 150))


@pytest.fixture(scope='module')
def grey_latents():
    """A cut-out of the clock photo on the coins photo: grey on grey."""
    return _scene(('coins', 'clock'), 'clock', (120, 150))


def _decisions(recs, values):
    snarc = SnarcCore.from_params(resolve(snarc_params.PARAMS, values))
    return [snarc.score_latent(r) for r in recs]


def test_an_object_across_a_block_corner_is_attended_and_the_calm_pan_is_not(latents):
    recs, appear = latents
    out = _decisions(recs, {})
    calm = [d for d in out if 1000.0 + WARMUP_S <= d.stamp < appear]
    hit = [d for d in out if appear - 0.05 <= d.stamp <= appear + DETECT_S]
    assert not any(d.attend for d in calm), max(d.salience for d in calm)
    assert any(d.attend for d in hit), [round(d.salience, 2) for d in hit[:4]]
    assert max(d.surprise for d in hit) > 0.8


def test_side_by_side_blocks_split_the_same_object_and_miss_it(latents, monkeypatch):
    """The same latents scored on the codes with blocks side by side, as before the stride."""
    recs, appear = latents
    new = _decisions(recs, CODES_ONLY)
    for name, value in SIDE_BY_SIDE.items():
        monkeypatch.setattr(modality_state, name, value)
    old = _decisions(recs, CODES_ONLY)
    near = [k for k, d in enumerate(new) if appear - 0.05 <= d.stamp <= appear + DETECT_S]
    assert max(old[k].surprise for k in near) < max(new[k].surprise for k in near) - 0.3
    assert not any(old[k].attend for k in near)


def test_an_object_the_codes_miss_is_attended_for_its_colour(colour_latents):
    """Scored on the codes alone the object is missed; with the encoder's colour_change it is
    attended, and the calm pan (sensor noise, JPEG) still is not."""
    recs, appear = colour_latents
    with_colour = _decisions(recs, NO_GREY)
    codes_only = _decisions(recs, CODES_ONLY)
    near = [k for k, d in enumerate(with_colour) if appear - 0.05 <= d.stamp <= appear + DETECT_S]
    calm = [k for k, d in enumerate(with_colour) if 1000.0 + WARMUP_S <= d.stamp < appear]
    assert not any(codes_only[k].attend for k in near), max(codes_only[k].salience for k in near)
    assert any(with_colour[k].attend for k in near), [round(with_colour[k].salience, 2)
                                                      for k in near[:4]]
    assert not any(with_colour[k].attend for k in calm), max(with_colour[k].salience
                                                             for k in calm)
    change = [r.features['colour_change'] for r in recs]
    # The appearance stands out of every calm frame's colour change by a margin.
    assert max(change[k] for k in near) > 2.0 * max(change[k] for k in calm)


def test_a_grey_object_on_grey_is_attended_for_its_brightness_not_its_colour(grey_latents):
    """colour_change does not see a grey clock set down on grey coins (no more than the calm
    pan moves it); grey_change stands far out of every calm frame's, lifts the object's
    salience over what the codes and colour give, and the calm pan is still not attended."""
    recs, appear = grey_latents
    near = [k for k, r in enumerate(recs) if appear - 0.05 <= r.stamp <= appear + DETECT_S]
    calm = [k for k, r in enumerate(recs) if 1000.0 + WARMUP_S <= r.stamp < appear]
    colour = [r.features['colour_change'] for r in recs]
    grey = [r.features['grey_change'] for r in recs]
    assert max(colour[k] for k in near) <= max(colour[k] for k in calm)
    assert max(grey[k] for k in near) > 10.0 * max(grey[k] for k in calm)
    with_grey, without = _decisions(recs, {}), _decisions(recs, NO_GREY)
    assert any(with_grey[k].attend for k in near)
    assert max(with_grey[k].salience for k in near) > max(without[k].salience
                                                          for k in near) + 0.05
    assert not any(with_grey[k].attend for k in calm), max(with_grey[k].salience
                                                           for k in calm)
