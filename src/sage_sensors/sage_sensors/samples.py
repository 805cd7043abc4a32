"""Embedded sample data: built at install time from real photos and real speech.

Files written into sample_data_dir() (not committed; regenerate any time):
  panorama.png   background: scikit-image's bundled astronaut, rocket and cat photos side by side
  object.png     RGBA coffee cup (scikit-image 'coffee') that appears at the object event
  phrase.wav     timeline.PHRASE spoken by espeak-ng, 16 kHz mono
  clap.wav       a hand clap, 16 kHz mono
  scene.wav      one period of the scene's sound (room noise + clap + phrase), 16 kHz mono
  scene.avi      one period of the camera scene, 640x480 at 10 fps, MJPG
  imu_trace.csv  one period of IMU data at 200 Hz (still, shake at the shake event)
  manifest.json  seed, versions, timeline, the labelled events and a hash of every file
Deterministic from the seed; ensure_samples() is idempotent (skips when the manifest matches).
"""
from __future__ import annotations

from dataclasses import asdict
import hashlib
import json
import os
from pathlib import Path
import shutil
import sys
import tempfile
from typing import Any

import numpy as np
import soundfile as sf

# OpenCV is imported where images are made or read: the microphone, which uses this module
# for its sample recordings and starts first in the graph, does not wait for its import.

from sage_common.speech import SpeechError, espeak, espeak_exe
from sage_sensors.errors import SensorError
from sage_sensors.resample import Resampler
from sage_sensors.scene import (CameraScene, clap, imu_motion, imu_noise_table,
                                render_audio_track)
from sage_sensors.timeline import PHRASE, Timeline

SAMPLES_VERSION = 1
DEFAULT_SEED = 7
AUDIO_RATE = 16000
IMU_RATE = 200.0
VIDEO_SIZE = (640, 480)
VIDEO_FPS = 10.0
FILES = ('panorama.png', 'object.png', 'phrase.wav', 'clap.wav', 'scene.wav', 'scene.avi',
         'imu_trace.csv')
ESPEAK = espeak_exe() or 'espeak-ng'   # what the tests check is installed


def sample_data_dir() -> Path:
    """Where the sample data lives: $SAGE_DATA_DIR, else <venv prefix>/share/sage/samples."""
    env = os.environ.get('SAGE_DATA_DIR')
    if env:
        return Path(env).expanduser()
    return Path(sys.prefix) / 'share' / 'sage' / 'samples'


def _photo(name: str) -> np.ndarray:
    """One of the photos bundled inside scikit-image (no download), as (H, W, 3) uint8 RGB."""
    # lazy: keeps scikit-image out of this module's import
    from skimage import data
    return np.asarray(getattr(data, name)(), dtype=np.uint8)


def build_panorama() -> np.ndarray:
    """(512, W, 3) uint8 RGB strip of three bundled photos (astronaut, rocket, cat)."""
    import cv2  # lazy (see the imports)
    parts = []
    for image in (_photo('astronaut'), _photo('rocket'), _photo('chelsea')):
        h, w = image.shape[:2]
        parts.append(cv2.resize(image, (int(round(w * 512 / h)), 512),
                                interpolation=cv2.INTER_AREA))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def build_object() -> np.ndarray:
    """(h, w, 4) uint8 RGBA coffee cup on its saucer, cut out with a soft elliptic mask."""
    rgb = _photo('coffee')[10:390, 70:490]          # the cup and saucer
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    alpha = np.clip((1.0 - r) / 0.08, 0.0, 1.0)   # feathered edge
    return np.dstack([rgb, (alpha * 255).astype(np.uint8)])


def speak(text: str, rate: int = AUDIO_RATE) -> np.ndarray:
    """Real speech from espeak-ng (voice en-us, 150 wpm) at rate, (n,) float32 peak 0.5.

    Raises:
        SensorError: espeak-ng is missing or fails.
    """
    try:
        mono, src_rate = espeak(text, voice='en-us', speed=150)
    except SpeechError as err:
        raise SensorError(str(err)) from err
    out = Resampler(src_rate, rate).process(mono)
    peak = float(np.max(np.abs(out))) or 1.0
    return (out * (0.5 / peak)).astype(np.float32)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest_ok(out: Path, seed: int) -> bool:
    try:
        manifest = json.loads((out / 'manifest.json').read_text())
    except (OSError, ValueError):
        return False
    if (manifest.get('version'), manifest.get('seed'), manifest.get('phrase')) != (
            SAMPLES_VERSION, seed, PHRASE):
        return False
    files = manifest.get('files', {})
    return all(name in files and (out / name).is_file() and _sha256(out / name) == files[name]
               for name in FILES)


def write_samples(out: Path, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Generate every sample file into out (overwriting) and return the manifest.

    Raises:
        SensorError: espeak-ng or a writer failed.
    """
    import cv2  # lazy (see the imports)
    out.mkdir(parents=True, exist_ok=True)
    tl = Timeline()
    panorama, obj = build_panorama(), build_object()
    cv2.imwrite(str(out / 'panorama.png'), cv2.cvtColor(panorama, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(out / 'object.png'), cv2.cvtColor(obj, cv2.COLOR_RGBA2BGRA))
    phrase = speak(PHRASE)
    clap_clip = clap(AUDIO_RATE, seed)
    sf.write(str(out / 'phrase.wav'), phrase, AUDIO_RATE, subtype='PCM_16')
    sf.write(str(out / 'clap.wav'), clap_clip, AUDIO_RATE, subtype='PCM_16')
    track = render_audio_track(tl, AUDIO_RATE, seed, phrase, clap_clip)
    sf.write(str(out / 'scene.wav'), track, AUDIO_RATE, subtype='PCM_16')
    write_scene_video(out / 'scene.avi', panorama, obj, tl, seed)
    write_imu_trace(out / 'imu_trace.csv', tl, seed)
    manifest = {
        'version': SAMPLES_VERSION, 'seed': seed, 'phrase': PHRASE,
        'phrase_duration_s': round(len(phrase) / AUDIO_RATE, 3),
        'timeline': asdict(tl),
        'events': [o.as_dict() for o in tl.occurrences(0.0, tl.period_s)],
        'audio_rate': AUDIO_RATE, 'imu_rate': IMU_RATE,
        'video': {'width': VIDEO_SIZE[0], 'height': VIDEO_SIZE[1], 'fps': VIDEO_FPS},
        'sources': {'photos': 'scikit-image data: astronaut, rocket, chelsea, coffee',
                    'speech': 'espeak-ng -v en-us -s 150'},
        'files': {name: _sha256(out / name) for name in FILES},
    }
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
    return manifest


def write_scene_video(path: Path, panorama: np.ndarray, obj: np.ndarray, tl: Timeline,
                      seed: int, size: tuple[int, int] = VIDEO_SIZE,
                      fps: float = VIDEO_FPS, seconds: float | None = None) -> None:
    """Write the camera scene (scene time 0 at the first frame) as an MJPG AVI.

    Raises:
        SensorError: OpenCV cannot open a writer.
    """
    import cv2  # lazy (see the imports)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*'MJPG'), fps, size)
    if not writer.isOpened():
        raise SensorError(f'cannot write video {path}')
    scene = CameraScene(panorama, obj, size[0], size[1], tl, seed)
    n = int(round((tl.period_s if seconds is None else seconds) * fps))
    for i in range(n):
        writer.write(cv2.cvtColor(scene.render(tl.origin_s + i / fps, i), cv2.COLOR_RGB2BGR))
    writer.release()


def write_imu_trace(path: Path, tl: Timeline, seed: int, rate: float = IMU_RATE) -> None:
    """Write one period of the scripted IMU motion as CSV (t, accel m/s^2, gyro rad/s)."""
    n = int(round(tl.period_s * rate))
    t = np.arange(n) / rate
    accel, gyro = imu_motion(t, tl, 'scene')
    data = np.column_stack([t, accel, gyro]) + np.column_stack(
        [np.zeros(n), imu_noise_table(n, seed)])
    np.savetxt(path, data, delimiter=',', fmt='%.6f', header='t,ax,ay,az,gx,gy,gz',
               comments='')


def ensure_samples(out: Path | None = None, seed: int = DEFAULT_SEED,
                   force: bool = False) -> Path:
    """Generate the samples into out unless an up-to-date set is already there.

    Writes into a temporary sibling folder and renames it in place, so a concurrent
    reader never sees a half-written set.

    Returns:
        The folder holding the samples.

    Raises:
        SensorError: generation failed.
    """
    out = Path(out) if out is not None else sample_data_dir()
    if not force and _manifest_ok(out, seed):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.samples-', dir=out.parent))
    try:
        write_samples(tmp, seed)
        if out.is_dir():
            for name in (*FILES, 'manifest.json'):
                os.replace(tmp / name, out / name)
        else:
            os.replace(tmp, out)
    except OSError as err:
        raise SensorError(f'cannot write samples into {out}: {err}') from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The manifest of a sample folder (labelled events for tests and scenario tools).

    Raises:
        SensorError: no samples there.
    """
    folder = Path(folder) if folder is not None else sample_data_dir()
    try:
        manifest: dict[str, Any] = json.loads((folder / 'manifest.json').read_text())
        return manifest
    except (OSError, ValueError) as err:
        raise SensorError(f'no sample data in {folder} '
                          '(run: python -m sage_sensors.make_samples)') from err


def load_image_rgb(path: Path, alpha: bool = False) -> np.ndarray:
    """Read a PNG as RGB (or RGBA).

    Raises:
        SensorError: unreadable.
    """
    import cv2  # lazy (see the imports)
    flag = cv2.IMREAD_UNCHANGED if alpha else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag) if Path(path).is_file() else None
    if img is None:
        raise SensorError(f'cannot read image {path}')
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if alpha else cv2.COLOR_BGR2RGB)


def load_wav_mono(path: Path, rate: int = AUDIO_RATE) -> np.ndarray:
    """Read a sound file as mono float32 at rate.

    Raises:
        SensorError: unreadable.
    """
    try:
        audio, src = sf.read(str(path), dtype='float32', always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as err:
        raise SensorError(f'cannot read sound {path}: {err}') from err
    return Resampler(src, rate).process(audio.mean(axis=1))
