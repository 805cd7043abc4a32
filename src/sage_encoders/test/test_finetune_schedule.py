"""Sleep's fine-tuning anneals its learning rate by whichever limit ends training first."""
from __future__ import annotations

import pytest

from sage_encoders.finetune import FinetuneConfig, learning_rate


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
