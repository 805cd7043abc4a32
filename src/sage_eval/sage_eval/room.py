"""Room sound for evaluation scenes: coloured noise, mains hum and a fan, at set levels.

Levels are RMS in dBFS: 0 dB is an RMS of 1.0 on the [-1, 1] sample scale (a full-scale sine
is -3 dBFS). Pure numpy; everything random comes from the generator passed in.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
# Harmonics of the mains hum and their amplitude relative to the fundamental: a transformer's
# hum is rich in odd harmonics.
HUM_HARMONICS = ((1, 1.0), (2, 0.35), (3, 0.6), (5, 0.3), (7, 0.15))
# A fan: low-passed broadband noise plus its blade-pass tone (blades x rotations per second).
FAN_BLADE_HZ = 120.0
FAN_TONE_DB = -8.0  # blade tone level relative to the fan's broadband noise
FAN_CORNER_HZ = 800.0  # fan noise falls off above this


def db_to_amp(db: float) -> float:
    """Linear RMS for a level in dBFS."""
    return float(10.0 ** (db / 20.0))


def rms_db(x: np.ndarray) -> float:
    """RMS level of x in dBFS (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else -np.inf


def _scaled(x: np.ndarray, level_db: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x * (db_to_amp(level_db) / max(rms, 1e-12))).astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float, level_db: float
                   ) -> np.ndarray:
    """Noise with power spectrum 1/f^exponent (1 = pink, 2 = brown), scaled to level_db RMS.

    Args:
        rng: random source.
        n: samples.
        exponent: spectral slope (0 white, 1 pink, 2 brown).
        level_db: RMS level in dBFS.
    """
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    # Below 20 Hz a microphone's own high-pass removes the rest of the rumble.
    shape = 1.0 / np.maximum(f, 20.0) ** (exponent / 2.0)
    shape[f < 10.0] = 0.0
    return _scaled(np.fft.irfft(spec * shape, n), level_db)


def mains_hum(n: int, mains_hz: float, level_db: float, phase: float = 0.0) -> np.ndarray:
    """Mains hum: mains_hz and its harmonics (HUM_HARMONICS), scaled to level_db RMS."""
    t = np.arange(n) / SAMPLE_RATE
    x = sum(a * np.sin(2 * np.pi * k * mains_hz * t + k * phase) for k, a in HUM_HARMONICS)
    return _scaled(np.asarray(x), level_db)


def fan(rng: np.random.Generator, n: int, level_db: float) -> np.ndarray:
    """A running fan: low-passed noise plus a slowly wandering blade tone, at level_db RMS."""
    # lazy: keeps scipy out of this module's import
    from scipy.signal import butter, sosfilt
    sos = butter(2, FAN_CORNER_HZ, btype='lowpass', fs=SAMPLE_RATE, output='sos')
    noise = sosfilt(sos, coloured_noise(rng, n, 1.0, 0.0)).astype(np.float32)
    t = np.arange(n) / SAMPLE_RATE
    wander = 0.01 * np.sin(2 * np.pi * t / 7.0)  # motor speed varies by about 1 %
    tone = np.sin(2 * np.pi * FAN_BLADE_HZ * np.cumsum(1.0 + wander) / SAMPLE_RATE)
    noise = _scaled(noise, 0.0)
    return _scaled(noise + db_to_amp(FAN_TONE_DB) * np.sqrt(2.0) * tone, level_db)


def envelope(n: int, on_s: float, off_s: float, ramp_s: float) -> np.ndarray:
    """0 -> 1 over ramp_s from on_s, 1 until off_s, 1 -> 0 over ramp_s (raised cosine)."""
    t = np.arange(n) / SAMPLE_RATE
    up = np.clip((t - on_s) / ramp_s, 0.0, 1.0)
    down = np.clip((off_s + ramp_s - t) / ramp_s, 0.0, 1.0)
    return (np.sin(0.5 * np.pi * np.minimum(up, down)) ** 2).astype(np.float32)


def faded(x: np.ndarray, fade_s: float = 0.01) -> np.ndarray:
    """x with raised-cosine fades at both ends (no click where a cut starts or ends)."""
    k = min(int(fade_s * SAMPLE_RATE), x.size // 2)
    if k == 0:
        return x.astype(np.float32)
    ramp = np.sin(0.5 * np.pi * np.arange(k) / k) ** 2
    y = x.astype(np.float32).copy()
    y[:k] *= ramp
    y[-k:] *= ramp[::-1]
    return y


def active_rms(x: np.ndarray, frame: int = 512, top: float = 0.5) -> float:
    """RMS over the loudest `top` fraction of frames (speech level without its pauses)."""
    n = x.size // frame
    if n == 0:
        return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
    energy = np.sort(np.mean(np.square(x[:n * frame].reshape(n, frame)), axis=1))[::-1]
    return float(np.sqrt(np.mean(energy[:max(1, int(n * top))])))


def at_peak(x: np.ndarray, peak_db: float) -> np.ndarray:
    """x scaled so its peak is at peak_db (dBFS)."""
    return (x * (db_to_amp(peak_db) / max(float(np.max(np.abs(x))), 1e-9))).astype(np.float32)


def at_active(x: np.ndarray, level_db: float) -> np.ndarray:
    """x scaled so its active level (`active_rms`) is level_db (dBFS)."""
    return (x * (db_to_amp(level_db) / max(active_rms(x), 1e-9))).astype(np.float32)
