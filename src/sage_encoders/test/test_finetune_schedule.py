"""Sleep's fine-tuning anneals its learning rate by whichever limit ends training first,
holds inputs back for validation in whole bursts, and varies the light and side of the day's
vision crops when asked."""
from __future__ import annotations

import pytest

import numpy as np

from sage_encoders.finetune import CROP, FinetuneConfig, learning_rate, sampler, split_holdout
from sage_encoders.preprocess import scale_rgb


def test_the_rate_decays_to_a_tenth_over_the_steps_when_time_is_ample() -> None:
    cfg = FinetuneConfig(max_steps=2000, lr=5e-4)
    assert learning_rate(cfg, 1, 0.1, 300.0) == pytest.approx(5e-4, rel=1e-3)
    assert learning_rate(cfg, 1000, 10.0, 300.0) == pytest.approx(0.55 * 5e-4)
    assert learning_rate(cfg, 2000, 20.0, 300.0) == pytest.approx(5e-5)


def test_a_time_budget_that_ends_first_anneals_the_rate_by_its_end() -> None:
    # A slow computer: 300 s buy 600 of the 2000 steps; the last of them runs at a tenth.
    cfg = FinetuneConfig(max_steps=2000, lr=5e-4)
    assert learning_rate(cfg, 300, 150.0, 300.0) == pytest.approx(0.55 * 5e-4)
    assert learning_rate(cfg, 600, 300.0, 300.0) == pytest.approx(5e-5)
    assert learning_rate(cfg, 601, 301.0, 300.0) == pytest.approx(5e-5)  # never below
    # Without a time window, the steps alone set the schedule (as before).
    assert learning_rate(cfg, 600, 300.0, 0.0) > 4e-4


def test_inputs_are_held_back_in_whole_bursts_never_beside_their_neighbours() -> None:
    # Four events, each stored with its context: inputs 0.07 s apart, events minutes apart.
    starts = (10.0, 200.0, 400.0, 650.0)
    stamps = [t + 0.07 * j for t in starts for j in range(5)]
    burst = [i // 5 for i in range(len(stamps))]
    for seed in range(20):
        train, held = split_holdout(stamps, 0.2, seed, gap_s=2.0)
        assert sorted([*train, *held]) == list(range(20)) and len(held) == 5
        # No held-back input has a training input of its own burst beside it.
        assert not {burst[i] for i in held} & {burst[i] for i in train}
    # Single inputs at random (gap 0) split bursts: a held-back frame's neighbour trains.
    mixed = 0
    for seed in range(20):
        train, held = split_holdout(stamps, 0.2, seed, gap_s=0.0)
        assert len(held) == 4
        mixed += bool({burst[i] for i in held} & {burst[i] for i in train})
    assert mixed == 20
    # A burst bigger than the share is not held back whole; with no burst that fits, the
    # newest inputs are.
    stamps = [0.1 * j for j in range(30)] + [100.0, 200.0, 300.0]
    train, held = split_holdout(stamps, 0.1, 0, gap_s=2.0)  # share 3: the three lone ones
    assert sorted(held) == [30, 31, 32]
    train, held = split_holdout([0.1 * j for j in range(30)] + [100.0 + 0.1 * j
                                                                for j in range(30)],
                                0.1, 0, gap_s=2.0)
    assert list(held) == list(range(54, 60))
    # One burst only: its newest inputs; at least one input is left to train on.
    train, held = split_holdout([1.0, 1.1, 1.2, 1.3, 1.4], 0.4, 0, gap_s=2.0)
    assert list(held) == [3, 4] and list(train) == [0, 1, 2]
    train, held = split_holdout([1.0, 100.0], 0.9, 0, gap_s=2.0)
    assert len(train) == len(held) == 1
    with pytest.raises(ValueError):
        split_holdout(np.array([1.0]), 0.2, 0)


def _ramp_frame() -> np.ndarray:
    """A CROP-sided frame brighter to the right, with a saturated column at the right edge."""
    x = np.linspace(20, 200, CROP, dtype=np.float32)
    frame = np.repeat(np.repeat(x[None, :, None], CROP, 0), 3, 2).astype(np.uint8)
    frame[:, -1] = 255
    return frame


def test_vision_day_crops_keep_their_pixels_unless_light_or_side_is_varied() -> None:
    frame = _ramp_frame()
    plain = scale_rgb(frame)[0]
    rng = np.random.default_rng(0)
    batch = sampler('vision', [frame], None, 0.0, CROP)(rng)
    assert np.array_equal(batch, np.repeat(plain[None], len(batch), 0))
    # Mirrored: each crop is the frame or its exact mirror image, both kinds occur.
    sample = sampler('vision', [frame], None, 0.0, CROP, flip=True)
    crops = np.concatenate([sample(rng) for _ in range(4)])
    mirrored = [np.array_equal(c, plain[:, :, ::-1]) for c in crops]
    assert all(m or np.array_equal(c, plain) for m, c in zip(mirrored, crops))
    assert 16 <= sum(mirrored) <= 48


def test_a_gain_jitter_scales_each_vision_crop_by_its_own_gain_within_range() -> None:
    frame = _ramp_frame()
    sample = sampler('vision', [frame], None, 0.0, CROP, gain_jitter=0.3)
    crops = np.concatenate([sample(np.random.default_rng(1)) for _ in range(4)])
    pixels = (crops + 1.0) * 127.5  # back to 8-bit levels
    lit = frame[:, 1:-1].astype(np.float32)  # unsaturated in the frame
    # Least-squares gain of each crop over the unsaturated pixels (8-bit rounding aside).
    gains = np.array([float((p[0, :, 1:-1] * lit[:, :, 0]).sum() / (lit[:, :, 0] ** 2).sum())
                      for p in pixels])
    assert gains.min() >= 0.69 and gains.max() <= 1.31
    assert gains.min() < 0.85 and gains.max() > 1.15 and len(np.unique(gains.round(3))) > 8
    # Each crop is the frame times its gain, clipped to 8 bits (within rounding); this covers
    # the saturated column too, which would wrap around without the clip.
    for p, g in zip(pixels, gains):
        want = np.clip(frame.astype(np.float32) * g, 0, 255).transpose(2, 0, 1)
        assert np.abs(p - want).max() <= 2.0
