"""Streaming resampler: frequency, amplitude, alignment, anti-aliasing, block independence."""
import numpy as np
import pytest

from sage_sensors.resample import Resampler


def _tone(rate, freq, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


@pytest.mark.parametrize('src', [48000, 44100, 22050, 8000])
def test_a_1khz_tone_keeps_its_frequency_amplitude_and_timing(src):
    r = Resampler(src, 16000)
    y = r.process(_tone(src, 1000.0))
    assert len(y) == 16000
    t = np.arange(len(y)) / 16000 - r.delay_s          # output sample k = input time t
    ref = np.sin(2 * np.pi * 1000.0 * t)
    steady = slice(800, -50)
    assert np.max(np.abs(y[steady] - ref[steady])) < 1e-3


def test_block_size_does_not_change_the_output():
    x = np.random.default_rng(0).normal(0, 0.3, 44100).astype(np.float32)
    whole = Resampler(44100, 16000).process(x)
    r = Resampler(44100, 16000)
    sizes = [1, 7, 1411, 333, 4096]
    parts, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        parts.append(r.process(x[i:i + n]))
        i, k = i + n, k + 1
    assert np.allclose(np.concatenate(parts), whole, atol=1e-6)


def test_tones_above_the_output_nyquist_are_suppressed_by_60_db():
    y = Resampler(48000, 16000).process(_tone(48000, 10000.0))
    rms = np.sqrt(np.mean(y[500:] ** 2))
    assert 20 * np.log10(rms / np.sqrt(0.5)) < -60


def test_same_rate_is_a_passthrough():
    r = Resampler(16000, 16000)
    x = _tone(16000, 440.0, 0.1)
    assert r.passthrough and r.delay_s == 0.0
    assert np.array_equal(r.process(x), x)


def test_rejects_nonpositive_rates():
    with pytest.raises(ValueError):
        Resampler(0, 16000)
