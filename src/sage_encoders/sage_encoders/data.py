"""Offline training and evaluation data for the puzzle VQ-VAEs (no network needed).

Vision: scikit-image's bundled sample images (some held out) with augmentations, plus
procedurally drawn synthetic scenes. Audio: espeak-ng speech (/usr/bin/espeak-ng) and
synthesised sounds (tones, chirps, buzzes, noise bursts, claps, clicks, near-silence).
Train and held-out sets use disjoint images, phrases, voices and random seeds.
"""
from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from sage_common import speech
from sage_encoders.errors import EncoderError
from sage_encoders.preprocess import MelConfig, pcm_to_float, preprocess_audio, preprocess_rgb
from sage_encoders.preprocess import rgb_from_array

VISION_TRAIN_IMAGES = (
    'astronaut', 'chelsea', 'colorwheel', 'immunohistochemistry', 'retina', 'logo', 'brick',
    'camera', 'cell', 'checkerboard', 'grass', 'gravel', 'moon', 'page', 'text',
    'microaneurysms', 'hubble_deep_field', 'shepp_logan_phantom', 'horse')
VISION_HELDOUT_IMAGES = ('coffee', 'rocket', 'clock', 'coins')
TRAIN_SEED = 1234
HELDOUT_SEED = 987654


def skimage_rgb(name: str) -> np.ndarray:
    """A scikit-image sample image as RGB uint8 through the shared conversion."""
    # lazy: keeps scikit-image out of this module's import
    from skimage import data as skdata  # training-only dependency

    img = np.asarray(getattr(skdata, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        img = ((img - lo) / max(hi - lo, 1e-9) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        return rgb_from_array(img, 'mono8')
    return rgb_from_array(img, 'rgba8' if img.shape[2] == 4 else 'rgb8')


def synthetic_scene(rng: np.random.Generator, h: int = 240, w: int = 320) -> np.ndarray:
    """A random scene: gradient/flat/noise background and 3-12 shapes, RGB uint8."""
    kind = rng.integers(3)
    if kind == 0:
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else \
            np.linspace(0, 1, h)[:, None, None]
        img = (c0 * (1 - t) + c1 * t) * np.ones((h, w, 1))
    elif kind == 1:
        img = np.ones((h, w, 3)) * rng.integers(0, 256, 3)
    else:
        small = rng.random((max(2, h // 16), max(2, w // 16), 3)) * 255
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8).copy()
    for _ in range(int(rng.integers(3, 13))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(5)
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        if shape == 0:
            x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.rectangle(img, (x0, y0), (x1, y1), color, -1 if rng.random() < 0.7 else 2)
        elif shape == 1:
            cv2.circle(img, (x0, y0), int(rng.integers(4, 60)), color,
                       -1 if rng.random() < 0.7 else 2)
        elif shape == 2:
            cv2.line(img, (x0, y0), (int(rng.integers(0, w)), int(rng.integers(0, h))), color,
                     int(rng.integers(1, 6)))
        elif shape == 3:
            pts = rng.integers(0, [w, h], size=(int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.fillPoly(img, [pts], color)
        else:
            cv2.putText(img, 'SAGE'[: int(rng.integers(1, 5))], (x0, y0),
                        cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 2.0)), color,
                        int(rng.integers(1, 4)))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (5, 5), float(rng.uniform(0.5, 2.0)))
    return img


def augment(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random crop, flip, photometric jitter, blur and noise on an RGB uint8 image."""
    h, w = rgb.shape[:2]
    area = rng.uniform(0.15, 1.0) * h * w
    aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.6)))
    ch = int(min(h, max(16, np.sqrt(area / aspect))))
    cw = int(min(w, max(16, np.sqrt(area * aspect))))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = rgb[y:y + ch, x:x + cw].astype(np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = (img - 128.0) * rng.uniform(0.6, 1.4) + 128.0 + rng.uniform(-50, 50)
    if rng.random() < 0.2:
        img = img[:, :, rng.permutation(3)]
    if rng.random() < 0.1:
        img = np.repeat(img.mean(2, keepdims=True), 3, axis=2)
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(2, 12), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (5, 5), float(rng.uniform(0.5, 1.5)))
    return np.ascontiguousarray(img)


def vision_pool(n: int, seed: int = TRAIN_SEED) -> list[np.ndarray]:
    """n augmented training frames (RGB uint8, assorted sizes): half photos, half scenes."""
    rng = np.random.default_rng(seed)
    sources = [skimage_rgb(name) for name in VISION_TRAIN_IMAGES]
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(augment(sources[int(rng.integers(len(sources)))], rng))
        else:
            out.append(augment(synthetic_scene(rng), rng))
    return out


def vision_heldout(size: int = 240) -> np.ndarray:
    """Held-out frames (never trained on), preprocessed: (N, 3, size, size) float32.

    Whole held-out photos, four fixed crops of each, and 16 scenes from another seed.
    """
    frames = []
    for name in VISION_HELDOUT_IMAGES:
        img = skimage_rgb(name)
        h, w = img.shape[:2]
        frames.append(img)
        for fy, fx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            frames.append(img[fy * h // 2: fy * h // 2 + h // 2,
                              fx * w // 2: fx * w // 2 + w // 2])
    rng = np.random.default_rng(HELDOUT_SEED)
    frames += [synthetic_scene(rng) for _ in range(16)]
    return np.concatenate([preprocess_rgb(f, size) for f in frames])


def vision_crops(pool: list[np.ndarray], rng: np.random.Generator, batch: int, crop: int,
                 size: int = 240) -> np.ndarray:
    """A training batch: random crops of preprocessed pool frames, (B, 3, crop, crop)."""
    out = np.empty((batch, 3, crop, crop), np.float32)
    for b in range(batch):
        x = preprocess_rgb(pool[int(rng.integers(len(pool)))], size)[0]
        y0, x0 = (int(v) for v in rng.integers(0, size - crop + 1, 2))
        out[b] = x[:, y0:y0 + crop, x0:x0 + crop]
    return out


# ---------------------------------------------------------------- audio

SPEECH_TRAIN = (
    'the robot turned toward the open door', 'please bring me the red cup from the kitchen',
    'attention is a limited resource', 'what time is it now', 'stop right there',
    'the battery level is getting low', 'hello, can you hear me', 'one two three four five',
    'turn left at the next corner', 'a loud noise came from the hallway',
    'remember where you put the keys', 'it is raining outside today',
    'the quick brown fox jumps over the lazy dog', 'go to sleep and dream about it',
    'look at the bright light', 'move slowly and carefully', 'I am hungry for data',
    'where is the charging station', 'thank you very much', 'that was surprising',
    'six seven eight nine ten', 'the door is closed', 'come here please',
    'watch out for the stairs', 'salience decides what to remember')
SPEECH_HELDOUT = (
    'the cat sat quietly on the warm window sill', 'find the blue box under the table',
    'is anyone in the room', 'energy flows where attention goes')
VOICES_TRAIN = ('en', 'en-us', 'en+f3', 'en+m3', 'de', 'fr', 'es', 'it')
VOICES_HELDOUT = ('en+f2', 'nl', 'pt')


def espeak(text: str, voice: str, speed: int, pitch: int, sample_rate: int = 16000
           ) -> np.ndarray:
    """Synthesize speech with espeak-ng; float32 mono at sample_rate.

    Raises:
        EncoderError: espeak-ng is missing or fails.
    """
    # lazy: keeps scipy out of this module's import
    from scipy.signal import resample_poly

    try:
        audio, sr = speech.espeak(text, voice, speed, pitch)
    except speech.SpeechError as err:
        raise EncoderError(str(err)) from err
    g = np.gcd(int(sr), sample_rate)
    return resample_poly(audio, sample_rate // g, int(sr) // g).astype(np.float32)


def _envelope(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    attack = max(1, int(rng.uniform(0.002, 0.05) * sr))
    release = max(1, int(rng.uniform(0.01, 0.3) * sr))
    env = np.ones(n, np.float32)
    env[:min(attack, n)] = np.linspace(0, 1, min(attack, n))
    env[-min(release, n):] *= np.linspace(1, 0, min(release, n))
    return env


def synth_event(rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """One synthesized sound event (float32), amplitude 0.02..0.9."""
    kind = int(rng.integers(7))
    dur = rng.uniform(0.05, 1.2)
    n = int(dur * sr)
    t = np.arange(n) / sr
    if kind == 0:  # tone
        x = np.sin(2 * np.pi * rng.uniform(80, 5000) * t)
    elif kind == 1:  # chirp
        f0, f1 = rng.uniform(100, 6000, 2)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * max(dur, 1e-3))))
    elif kind == 2:  # buzz / vowel-like harmonic stack
        f0 = rng.uniform(70, 400)
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k ** rng.uniform(0.5, 2.0)
                for k in range(1, int(rng.integers(4, 16))))
    elif kind == 3:  # filtered noise burst
        x = rng.normal(0, 1, n)
        k = int(rng.integers(1, 30))
        x = np.convolve(x, np.ones(k) / k, mode='same') * np.sqrt(k)
    elif kind == 4:  # clap: short noise burst with exponential decay
        n = int(rng.uniform(0.05, 0.25) * sr)
        t = np.arange(n) / sr
        x = rng.normal(0, 1, n) * np.exp(-t / rng.uniform(0.01, 0.08))
        return (x / max(np.abs(x).max(), 1e-9) * rng.uniform(0.2, 0.95)).astype(np.float32)
    elif kind == 5:  # click train
        x = np.zeros(n)
        period = int(rng.uniform(0.02, 0.3) * sr)
        x[::max(period, 1)] = 1.0
        x = np.convolve(x, np.exp(-np.arange(64) / 8.0), mode='same')
    else:  # hum with vibrato
        f0 = rng.uniform(50, 300)
        x = np.sin(2 * np.pi * f0 * t + rng.uniform(0.5, 5) * np.sin(2 * np.pi * 5 * t))
    x = x * _envelope(len(x), rng, sr)
    return (x / max(np.abs(x).max(), 1e-9) * rng.uniform(0.02, 0.9)).astype(np.float32)


def synth_clip(rng: np.random.Generator, seconds: float = 4.0, sr: int = 16000) -> np.ndarray:
    """A clip of random events over a noise floor between -80 and -40 dBFS."""
    n = int(seconds * sr)
    clip = rng.normal(0, 10 ** (rng.uniform(-80, -40) / 20), n).astype(np.float32)
    for _ in range(int(rng.integers(0, 7))):
        ev = synth_event(rng, sr)
        start = int(rng.integers(0, max(1, n - len(ev))))
        clip[start:start + len(ev)] += ev[: n - start]
    return np.clip(clip, -1.0, 1.0)


def speech_clips(phrases: tuple[str, ...], voices: tuple[str, ...], rng: np.random.Generator,
                 per_phrase: int, sr: int = 16000) -> list[np.ndarray]:
    """Speech clips at random voice/speed/pitch/gain over a low noise floor."""
    clips = []
    for text in phrases:
        for _ in range(per_phrase):
            voice = voices[int(rng.integers(len(voices)))]
            speech = espeak(text, voice, int(rng.integers(120, 220)), int(rng.integers(20, 80)),
                            sr)
            speech = speech / max(np.abs(speech).max(), 1e-9) * rng.uniform(0.05, 0.9)
            pad = int(rng.integers(0, sr // 2))
            clip = np.concatenate([np.zeros(pad, np.float32), speech,
                                   np.zeros(sr // 4, np.float32)])
            clip = clip + rng.normal(0, 10 ** (rng.uniform(-80, -45) / 20), len(clip))
            clips.append(np.clip(clip, -1, 1).astype(np.float32))
    return clips


def to_pcm(x: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 PCM (what the microphone node delivers)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def windows(clips: list[np.ndarray], cfg: MelConfig, hop: int) -> Iterator[np.ndarray]:
    """Every window_samples window of each clip (zero padded to one window), as int16."""
    for clip in clips:
        if len(clip) < cfg.window_samples:
            clip = np.concatenate([clip, np.zeros(cfg.window_samples - len(clip), np.float32)])
        for start in range(0, len(clip) - cfg.window_samples + 1, hop):
            yield to_pcm(clip[start:start + cfg.window_samples])


def audio_mels(pcm_windows: list[np.ndarray], cfg: MelConfig) -> np.ndarray:
    """int16 windows -> (N, 1, n_mels, frames) network inputs via the shared path."""
    return np.concatenate([preprocess_audio(pcm_to_float(w), cfg) for w in pcm_windows])


def audio_train_windows(cfg: MelConfig, seed: int = TRAIN_SEED) -> list[np.ndarray]:
    """Training windows (int16): espeak speech in training voices + synthesized clips."""
    rng = np.random.default_rng(seed)
    clips = speech_clips(SPEECH_TRAIN, VOICES_TRAIN, rng, per_phrase=3, sr=cfg.sample_rate)
    clips += [synth_clip(rng, 4.0, cfg.sample_rate) for _ in range(60)]
    return list(windows(clips, cfg, hop=cfg.window_samples // 4))


def audio_heldout_windows(cfg: MelConfig) -> list[np.ndarray]:
    """Held-out windows (int16): other phrases, voices and seed."""
    rng = np.random.default_rng(HELDOUT_SEED)
    clips = speech_clips(SPEECH_HELDOUT, VOICES_HELDOUT, rng, per_phrase=2, sr=cfg.sample_rate)
    clips += [synth_clip(rng, 4.0, cfg.sample_rate) for _ in range(10)]
    return list(windows(clips, cfg, hop=cfg.window_samples // 2))


def demo_frame(seed: int, h: int = 224, w: int = 224) -> np.ndarray:
    """A deterministic synthetic RGB frame from a seed range never used in training."""
    return synthetic_scene(np.random.default_rng(10_000 + seed), h, w)
