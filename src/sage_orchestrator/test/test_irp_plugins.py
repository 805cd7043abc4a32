"""In-process IRP plugins under the shared contract (sage_common.irp), and the reports."""
from __future__ import annotations

import numpy as np

from sage_common.records import LatentRecord
from sage_orchestrator.irp import DECISION_FEATURE, decision_change, report_from_latent
from sage_orchestrator.plugins import (HopfieldRecall, QuadraticDenoise, RefineRunner,
                                       RefineSettings, WorkingMemoryRecall, run_refine)


def noisy_step(seed: int = 0, n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(np.arange(n) < n // 2, -1.0, 1.0) + 0.9 * rng.standard_normal(n)


def test_denoising_converges_with_every_step_lowering_energy():
    _, r = run_refine(QuadraticDenoise(noisy_step(), lr=0.15), 100.0, 'den')
    assert r.plugin == 'den' and r.halt_reason == 'converged' and r.converged
    assert 2 <= r.iterations < 50 and r.atp_spent == r.iterations
    assert r.energy_final < 0.5 * r.energy_initial
    falls = sum(b < a for a, b in zip(r.energies, r.energies[1:]))
    assert falls >= r.iterations - 2  # all but the convergence window
    # Smoothing fixes exactly the signs the noise flipped (11 % of them for this seed).
    y = noisy_step()
    assert r.decision_changed == np.mean((y > 0) != (np.arange(64) >= 32)) > 0.05


def test_refinement_never_spends_more_than_its_atp():
    _, r = run_refine(QuadraticDenoise(noisy_step(), lr=0.02), 3.5, 'den')
    assert (r.halt_reason, r.iterations, r.atp_spent) == ('budget', 3, 3.0)


def test_an_unstable_step_size_buys_nothing():
    _, r = run_refine(QuadraticDenoise(noisy_step(), lr=0.5), 100.0, 'den')
    assert r.energy_final == r.energy_initial and r.iterations >= 1
    assert r.decision_changed == 0.0


def test_recall_energy_is_non_negative_falls_and_settles_on_a_pattern():
    rng = np.random.default_rng(3)
    patterns = rng.standard_normal((16, 32))
    patterns /= np.linalg.norm(patterns, axis=1, keepdims=True)
    clear_net = HopfieldRecall(patterns, patterns[5] + 0.1 * rng.standard_normal(32))
    clear, r_clear = run_refine(clear_net, 20.0, 'recall')
    assert clear_net.decision(clear.state) == 5 and r_clear.decision_changed == 0.0
    blend_net = HopfieldRecall(patterns, 0.5 * patterns[5] + 0.5 * patterns[9])
    assert blend_net.decision(blend_net.init_state()) == -1  # ambiguous: nothing recalled
    blend, r_blend = run_refine(blend_net, 20.0, 'recall')
    assert blend_net.decision(blend.state) in (5, 9) and r_blend.decision_changed == 1.0
    for r in (r_clear, r_blend):
        assert min(r.energies) >= 0.0
        assert all(b <= a for a, b in zip(r.energies, r.energies[1:]))
        assert r.energy_final < r.energy_initial


def test_working_memory_recall_queries_the_newest_embedding_against_the_older_ones():
    rng = np.random.default_rng(1)
    wm = WorkingMemoryRecall('recall', capacity=8)
    assert wm.run(10.0, 0.0) is None
    base = rng.standard_normal((4, 16))
    for e in base:
        wm.observe(e)
        wm.run(10.0, 0.0)
    wm.observe(base[2] + 0.05 * rng.standard_normal(16))
    report = wm.run(10.0, 1.0)
    assert report is not None and report.plugin == 'recall'
    assert int(np.argmax(wm.last.state @ base.T)) == 2
    wm.observe(np.full(16, np.nan))  # ignored
    assert wm.run(10.0, 2.0) is None


def test_runner_refines_only_the_latest_input_once():
    runner = RefineRunner('den', QuadraticDenoise, RefineSettings(k=2))
    assert runner.run(10.0, 0.0) is None
    runner.submit(noisy_step(1))
    runner.submit(noisy_step(2))
    first = runner.run(10.0, 0.0)
    assert first is not None and first.plugin == 'den'
    assert np.array_equal(runner.last.state.shape, (64,))
    assert runner.run(10.0, 0.1) is None


def test_decision_change_counts_changed_elements():
    assert decision_change(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5
    assert decision_change(3, 3) == 0.0 and decision_change(3, -1) == 1.0
    assert decision_change(np.zeros(3), np.zeros(4)) == 1.0


def test_a_latent_carries_the_irp_report():
    rec = LatentRecord(stamp=1.0, modality='vision', input_seq=4, codes=None, codebook_size=0,
                       embedding=np.zeros(4, np.float32), features={DECISION_FEATURE: 0.12},
                       iterations=6, energy_initial=2.0, energy_final=0.5, converged=True,
                       halt_reason='converged', atp_spent=6.0)
    r = report_from_latent(rec, 'vision_encoder')
    assert (r.plugin, r.iterations, r.energy_initial, r.energy_final) == (
        'vision_encoder', 6, 2.0, 0.5)
    assert r.converged and r.halt_reason == 'converged' and r.atp_spent == 6.0
    assert r.energies is None and abs(r.decision_changed - 0.12) < 1e-6
