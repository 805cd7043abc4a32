"""The spectral gate in front of the voice detector: transparent when it has nothing to take,
takes a steady fan away, and does not learn a voice as the room."""
import numpy as np

from sage_encoders.denoise import GateConfig, SpectralGate, STEP

SR = 16000


def _stream(gate, x, hop=4096):
    return np.concatenate([gate.process(x[i:i + hop]) for i in range(0, x.size, hop)])


def test_with_nothing_to_subtract_the_output_is_the_input_256_samples_late():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 8 * 4096).astype(np.float32)
    y = _stream(SpectralGate(GateConfig(over=0.0, floor=0.1, tau_s=1.0, makeup_db=0.0)), x)
    assert y.size == x.size
    np.testing.assert_allclose(y[STEP:], x[:-STEP], atol=1e-5)


def test_a_steady_fan_is_taken_away_and_a_tone_over_it_kept():
    rng = np.random.default_rng(1)
    t = np.arange(20 * SR) / SR
    fan = np.convolve(rng.normal(0, 0.05, t.size), np.ones(8) / 8, 'same').astype(np.float32)
    gate = SpectralGate(GateConfig(makeup_db=0.0))
    out = []
    for i in range(0, t.size, 4096):
        out.append(gate.process(fan[i:i + 4096]))
        gate.learn(0.0)
    quiet = np.concatenate(out)[5 * SR:]
    # About 6 dB: what is left is the bins the noise itself lifts past `over` times its mean.
    assert 10 * np.log10(np.mean(quiet ** 2) / np.mean(fan[5 * SR:] ** 2)) < -5.0
    tone = (0.05 * np.sin(2 * np.pi * 440 * t[:SR])).astype(np.float32)
    kept = gate.process(fan[:SR] + tone)
    ref = tone[:kept.size - STEP]
    assert np.corrcoef(kept[STEP + 2048:], ref[2048:])[0, 1] > 0.9


def test_a_voice_is_not_learnt_as_the_room():
    rng = np.random.default_rng(2)
    gate = SpectralGate(GateConfig(tau_s=0.5))
    room = rng.normal(0, 0.01, 4096).astype(np.float32)
    gate.process(room)
    gate.learn(0.0)
    before = gate.noise.copy()
    for _ in range(20):  # 5 s of something 30 dB louder, heard as a voice
        gate.process(rng.normal(0, 0.3, 4096).astype(np.float32))
        gate.learn(0.9)
    np.testing.assert_allclose(gate.noise, before)
    gate.process(rng.normal(0, 0.3, 4096).astype(np.float32))
    gate.learn(0.0)  # the same sound, no voice in it: a louder room
    assert gate.noise.mean() > 2 * before.mean()


def test_makeup_gain_raises_what_is_left_but_never_past_full_scale():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.01, 4 * 4096).astype(np.float32)
    flat = dict(over=0.0, floor=1.0, tau_s=1.0)
    plain = _stream(SpectralGate(GateConfig(**flat, makeup_db=0.0)), x)
    raised = _stream(SpectralGate(GateConfig(**flat, makeup_db=20.0)), x)
    np.testing.assert_allclose(raised, 10.0 * plain, rtol=1e-4, atol=1e-6)
    loud = (0.5 * np.sin(2 * np.pi * 440 * np.arange(4 * 4096) / SR)).astype(np.float32)
    out = _stream(SpectralGate(GateConfig(**flat, makeup_db=20.0)), loud)
    assert np.max(np.abs(out)) <= 1.0 + 1e-6
    assert np.max(np.abs(out[4096:])) > 0.99  # scaled to full scale, not clipped or left
