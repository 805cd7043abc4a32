"""The sounds of busy rooms, made from real recordings (`sage_eval.media`).

Each function returns `n` samples at 16 kHz at a set level (RMS dBFS, `room.rms_db`) and draws
everything random from the generator it is given. What is recorded and what is made here:

- air handling: a wind recording (Freesound, in openttd-opensfx) cut into grains and laid end
  to end with overlaps (a texture with the recording's spectrum that never repeats), low-passed
  like a duct, its level wandering by a few dB over about half a minute;
- machinery: a lift motor's recording, the same way, with its own wander;
- a wall clock: a camera shutter's mechanical click (sound-theme-freedesktop), once a second,
  tick and tock;
- beeps: a device's beep (openttd-opensfx) every few seconds, single or double;
- distant talk: the two-speaker conversation and the ARCTIC sentence, two streams at once,
  low-passed and reverberant (another room's talk through a door);
- traffic: a bus, a truck and a train passing (Freesound, in openttd-opensfx), many at once at
  random times, low-passed by a window;
- a TV: pygame's music loop and the conversation's utterances in turns, through a small
  loudspeaker's band.

Synthesised here, because no registry package ships a recording of it: the reverberation of
distant talk and of the TV (noise with an exponential decay) and the level wander (a sum of
slow sines). The grain overlap and the filters only rearrange and shape recorded sound.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from sage_eval import media
from sage_eval.room import db_to_amp, faded, rms_db, SAMPLE_RATE

GRAIN_S = 0.5  # texture grains: long enough to keep the recording's character
WANDER_PERIOD_S = (20.0, 45.0)  # slow level wander of air handling and machinery
TICK_S = 0.04  # the shutter's first click, the clock's tick
DUCT_HZ = 2500.0  # air handling heard through a duct grille
DISTANT_HZ = 2200.0  # talk through a wall or a door
WINDOW_HZ = 1200.0  # traffic through a window
SPEAKER_BAND_HZ = (180.0, 6000.0)  # a TV's small loudspeaker


def _scaled(x: np.ndarray, level_db: float) -> np.ndarray:
    return (x * db_to_amp(level_db - rms_db(x))).astype(np.float32)


@lru_cache(maxsize=16)
def _steady(name: str, trim_s: float) -> np.ndarray:
    """A recording without its first and last trim_s (fades in and out of the original)."""
    x = media.load_audio(name)
    k = int(trim_s * SAMPLE_RATE)
    return x[k:x.size - k] if x.size > 4 * k else x


def _filtered(x: np.ndarray, kind: str, hz: float | tuple[float, float]) -> np.ndarray:
    # lazy: keeps scipy out of this module's import
    from scipy.signal import butter, sosfilt
    sos = butter(2, hz, btype=kind, fs=SAMPLE_RATE, output='sos')
    return sosfilt(sos, x).astype(np.float32)


def texture(name: str, n: int, rng: np.random.Generator, trim_s: float = 0.3) -> np.ndarray:
    """n samples of a recording's sound: grains of GRAIN_S from random places in it, overlapped
    by half with sine windows (their squares sum to one, so two unrelated grains keep the
    power constant), so a 2 s recording makes minutes that do not loop."""
    src = _steady(name, trim_s)
    g = min(int(GRAIN_S * SAMPLE_RATE), src.size - 1) // 2 * 2
    window = np.sin(np.pi * (np.arange(g) + 0.5) / g).astype(np.float32)
    out = np.zeros(n + g, np.float32)
    for t in range(0, n, g // 2):
        i = int(rng.integers(0, src.size - g))
        out[t:t + g] += src[i:i + g] * window
    return out[:n]


def wander(n: int, rng: np.random.Generator, depth_db: float) -> np.ndarray:
    """A slowly wandering gain: three sines of periods in WANDER_PERIOD_S, peak depth_db."""
    t = np.arange(n) / SAMPLE_RATE
    db = sum(np.sin(2 * np.pi * t / float(rng.uniform(*WANDER_PERIOD_S))
                    + float(rng.uniform(0, 2 * np.pi))) for _ in range(3))
    db = np.asarray(db) / 3.0
    peak = float(np.max(np.abs(db))) or 1.0
    return (10.0 ** (depth_db * db / peak / 20.0)).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60_s: float, wet: float = 0.6
           ) -> np.ndarray:
    """x in a reverberant room: convolved with decaying noise (60 dB down after rt60_s)."""
    # lazy: keeps scipy out of this module's import
    from scipy.signal import fftconvolve
    m = int(rt60_s * SAMPLE_RATE)
    ir = rng.normal(size=m) * np.exp(-6.9 * np.arange(m) / m)
    ir = ir / np.sqrt(np.sum(ir ** 2))
    tail = fftconvolve(x, ir)[:x.size]
    return ((1.0 - wet) * x + wet * tail).astype(np.float32)


def air_handling(n: int, rng: np.random.Generator, level_db: float, depth_db: float
                 ) -> np.ndarray:
    """Air handling: the wind recording's texture through a duct, wandering by depth_db."""
    x = _filtered(texture('wind', n, rng), 'lowpass', DUCT_HZ)
    return _scaled(x, level_db) * wander(n, rng, depth_db)


def machinery(n: int, rng: np.random.Generator, level_db: float, depth_db: float
              ) -> np.ndarray:
    """Machinery: the lift motor recording's texture, wandering by depth_db."""
    x = texture('lift_motor', n, rng)
    return _scaled(x, level_db) * wander(n, rng, depth_db)


def _placed(n: int, clips: list[tuple[float, np.ndarray]]) -> np.ndarray:
    out = np.zeros(n, np.float32)
    for t, c in clips:
        i = int(round(t * SAMPLE_RATE))
        j = min(n, i + c.size)
        if 0 <= i < j:
            out[i:j] += c[:j - i]
    return out


def clock(n: int, rng: np.random.Generator, peak_db: float, period_s: float = 1.0
          ) -> np.ndarray:
    """A wall clock: the shutter's click every period_s, the tock 3 dB softer and duller."""
    x = media.load_audio('shutter')
    onset = int(np.flatnonzero(np.abs(x) > 0.1 * float(np.max(np.abs(x))))[0])
    tick = faded(x[onset:onset + int(TICK_S * SAMPLE_RATE)], 0.002)
    tick = tick * (db_to_amp(peak_db) / float(np.max(np.abs(tick))))
    tock = _filtered(tick, 'lowpass', 3000.0) * db_to_amp(-3.0)
    t0 = float(rng.uniform(0.0, period_s))
    clips = [(t0 + k * period_s, tick if k % 2 == 0 else tock)
             for k in range(int(n / SAMPLE_RATE / period_s) + 1)]
    return _placed(n, clips)


def beeps(n: int, rng: np.random.Generator, peak_db: float, every_s: float, double: bool
          ) -> np.ndarray:
    """A device beeping every every_s (twice, 0.2 s apart, when double)."""
    b = media.load_audio('beep')
    b = faded(b, 0.003) * (db_to_amp(peak_db) / float(np.max(np.abs(b))))
    t0 = float(rng.uniform(0.0, every_s))
    clips = []
    for k in range(int(n / SAMPLE_RATE / every_s) + 1):
        clips.append((t0 + k * every_s, b))
        if double:
            clips.append((t0 + k * every_s + 0.2, b))
    return _placed(n, clips)


def _utterances() -> list[np.ndarray]:
    conv = media.load_audio('conversation')
    return [faded(conv[int(u.start * SAMPLE_RATE):int(u.end * SAMPLE_RATE)])
            for u in media.utterances() if u.end - u.start >= 0.5] + \
        [faded(media.load_audio('arctic_a0007'))]


def _talk_stream(n: int, rng: np.random.Generator, pause_s: tuple[float, float]
                 ) -> np.ndarray:
    utts = _utterances()
    clips, t = [], float(rng.uniform(0.0, 2.0))
    while t < n / SAMPLE_RATE:
        u = utts[int(rng.integers(0, len(utts)))]
        clips.append((t, u * db_to_amp(float(rng.uniform(-4.0, 2.0)))))
        t += u.size / SAMPLE_RATE + float(rng.uniform(*pause_s))
    return _placed(n, clips)


def distant_talk(n: int, rng: np.random.Generator, level_db: float) -> np.ndarray:
    """People talking in the next room: two streams of utterances, muffled and reverberant."""
    x = _talk_stream(n, rng, (0.3, 2.5)) + _talk_stream(n, rng, (1.0, 4.0))
    x = reverb(_filtered(x, 'lowpass', DISTANT_HZ), rng, float(rng.uniform(0.5, 0.9)))
    return _scaled(x, level_db)


def traffic(n: int, rng: np.random.Generator, level_db: float, per_s: float) -> np.ndarray:
    """A street behind a window: buses, trucks and trains passing at per_s a second on average
    (Poisson), each at its own distance and speed."""
    # lazy: keeps scipy out of this module's import
    from scipy.signal import resample_poly
    names = ('bus_passing', 'truck_start', 'train_passing')
    clips, t = [], float(rng.exponential(1.0 / per_s)) - 2.0
    while t < n / SAMPLE_RATE:
        x = media.load_audio(names[int(rng.integers(0, len(names)))])
        speed = int(rng.integers(90, 111))  # +-10 % (pitch and length)
        x = resample_poly(x, 100, speed).astype(np.float32)
        clips.append((max(0.0, t), faded(x) * db_to_amp(float(rng.uniform(-10.0, 0.0)))))
        t += float(rng.exponential(1.0 / per_s))
    x = _filtered(_placed(n, clips), 'lowpass', WINDOW_HZ)
    return _scaled(x, level_db)


def tv(n: int, rng: np.random.Generator, level_db: float) -> np.ndarray:
    """A TV across the room: music and talk in turns of 8-25 s, through a small loudspeaker,
    each turn at its own level (within 4 dB)."""
    music = media.load_audio('music_loop')
    utts = _utterances()
    out = np.zeros(n, np.float32)
    t = 0
    talk = bool(rng.integers(0, 2))
    while t < n:
        m = int(rng.uniform(8.0, 25.0) * SAMPLE_RATE)
        if talk:
            seg = np.zeros(m, np.float32)
            i = 0
            while i < m:
                u = utts[int(rng.integers(0, len(utts)))]
                j = min(m, i + u.size)
                seg[i:j] += u[:j - i]
                i = j + int(rng.uniform(0.1, 0.6) * SAMPLE_RATE)
            seg = _scaled(seg, -6.0)
        else:
            start = int(rng.integers(0, music.size))
            seg = np.resize(np.roll(music, -start), m)
            seg = _scaled(seg, -6.0)
        seg = faded(seg, 0.05) * db_to_amp(float(rng.uniform(-4.0, 0.0)))
        k = min(n, t + m)
        out[t:k] += seg[:k - t]
        t, talk = k, not talk
    x = reverb(_filtered(out, 'bandpass', SPEAKER_BAND_HZ), rng, 0.4, wet=0.3)
    return _scaled(x, level_db)
