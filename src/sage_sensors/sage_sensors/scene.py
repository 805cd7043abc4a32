"""The synthetic scene, rendered for each sensor from the shared Timeline.

- CameraScene: a slowly panning panorama of real photos (scikit-image's bundled astronaut,
  rocket and cat) with a coffee cup that appears at the 'object_appears' event. Everything
  is pre-rendered at the output resolution, so a frame is a slice, a saturating add of a
  pre-computed noise frame and (while the cup is shown) one small alpha blend.
- render_audio_track: one period of room noise with a clap and the spoken phrase.
- imu_motion: accelerometer and gyro for still / shake / rotate, and the scripted shake.
All deterministic from a seed. No rclpy.
"""
from __future__ import annotations

import math

import numpy as np

from sage_sensors.imu_core import STANDARD_GRAVITY
from sage_sensors.timeline import Timeline

IMU_MOTIONS = ('scene', 'still', 'shake', 'rotate')


class CameraScene:
    """Renders RGB frames of the scene at a fixed output size.

    Args:
        panorama: (Hp, Wp, 3) uint8 RGB background, wider than tall.
        obj: (ho, wo, 4) uint8 RGBA sprite of the object that appears.
        width: output width in pixels.
        height: output height in pixels.
        timeline: when the object is visible and the pan period.
        seed: seed of the sensor noise.
        noise: standard deviation of the sensor noise in grey levels (0 = none).
        pan_px: peak-to-peak pan at 480 px output height (scaled with the height).
    """

    NOISE_FRAMES = 6

    def __init__(self, panorama: np.ndarray, obj: np.ndarray, width: int, height: int,
                 timeline: Timeline, seed: int = 0, noise: float = 2.0,
                 pan_px: float = 200.0) -> None:
        # lazy: OpenCV's import is not paid by the microphone, which starts first (its
        # first window is the graph's first salience)
        import cv2
        self.width, self.height = int(width), int(height)
        self.timeline = timeline
        scale = self.height / panorama.shape[0]
        pano_w = max(int(round(panorama.shape[1] * scale)), 1)
        pano = cv2.resize(panorama, (pano_w, self.height), interpolation=cv2.INTER_AREA)
        pan = pan_px * self.height / 480.0
        need = self.width + int(math.ceil(pan)) + 2
        if pano.shape[1] < need:   # very wide outputs: repeat the panorama
            pano = np.tile(pano, (1, -(-need // pano.shape[1]), 1))
        self._pano = np.ascontiguousarray(pano)
        self._center = (self._pano.shape[1] - self.width) / 2.0
        self._amp = min(pan / 2.0, self._center)
        # object: 40% of the frame height, standing on the lower third, left of centre
        oh = max(int(round(self.height * 0.4)), 2)
        ow = max(int(round(obj.shape[1] * oh / obj.shape[0])), 2)
        ow, oh = min(ow, self.width), min(oh, self.height)
        sprite = cv2.resize(obj, (ow, oh), interpolation=cv2.INTER_AREA)
        alpha = sprite[:, :, 3:4].astype(np.float32) / 255.0
        self._obj_rgb = (sprite[:, :, :3].astype(np.float32) * alpha).astype(np.float32)
        self._obj_inv = (1.0 - alpha).astype(np.float32)
        self._obj_xy = (int(self.width * 0.22), self.height - oh - int(self.height * 0.05))
        self._obj_xy = (min(self._obj_xy[0], self.width - ow), max(self._obj_xy[1], 0))
        rng = np.random.default_rng(seed)
        self._noise: list[tuple[np.ndarray, np.ndarray]] = []
        if noise > 0:
            for _ in range(self.NOISE_FRAMES):
                n = rng.normal(0.0, noise, (self.height, self.width, 3))
                n = np.clip(np.rint(n), -255, 255).astype(np.int16)
                self._noise.append((np.clip(n, 0, 255).astype(np.uint8),
                                    np.clip(-n, 0, 255).astype(np.uint8)))

    def offset(self, t: float) -> int:
        """Left edge of the view in the panorama at stamp t (a sinusoid over one period)."""
        phase = self.timeline.phase(t) / self.timeline.period_s
        return int(round(self._center + self._amp * math.sin(2.0 * math.pi * phase)))

    def object_visible(self, t: float) -> bool:
        """True while the scripted object is in view."""
        return self.timeline.active('object_appears', t) is not None

    def render(self, t: float, index: int = 0) -> np.ndarray:
        """The (height, width, 3) uint8 RGB frame at stamp t (index picks the noise frame)."""
        x0 = self.offset(t)
        view = self._pano[:, x0:x0 + self.width]
        if self._noise:
            import cv2  # lazy, as in __init__ (loaded by then: a lookup)
            plus, minus = self._noise[index % len(self._noise)]
            frame = cv2.subtract(cv2.add(view, plus), minus)
        else:
            frame = view.copy()
        if self.object_visible(t):
            x, y = self._obj_xy
            h, w = self._obj_rgb.shape[:2]
            region = frame[y:y + h, x:x + w]
            blended = region.astype(np.float32) * self._obj_inv + self._obj_rgb
            frame[y:y + h, x:x + w] = blended.astype(np.uint8)
        return frame


# --- audio ----------------------------------------------------------------------------------
def one_pole_lowpass(x: np.ndarray, a: float, tail: float = 1e-20) -> np.ndarray:
    """y[n] = (1 - a) x[n] + a y[n-1] from rest, (n,) float64.

    As an FFT convolution with the impulse response cut where it falls below `tail` (equal to
    the recursion within float64 rounding): scipy.signal.lfilter would do it, but importing
    scipy.signal takes ~0.6 s of a sensor node's start-up.
    """
    taps = int(math.ceil(math.log(tail) / math.log(a))) + 1
    h = (1.0 - a) * a ** np.arange(taps)
    size = 1 << (len(x) + taps - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:len(x)]


def room_noise(n: int, rate: int, seed: int, level_dbfs: float = -50.0) -> np.ndarray:
    """Quiet room tone: low-passed (pinkish) noise at level_dbfs RMS, (n,) float32."""
    rng = np.random.default_rng(seed)
    white = rng.normal(0.0, 1.0, n + 256)
    # one-pole low-pass at ~400 Hz plus some white: a soft, mostly low-frequency hiss
    a = math.exp(-2.0 * math.pi * 400.0 / rate)
    low = one_pole_lowpass(white, a)
    mix = low / (np.std(low) + 1e-12) + 0.3 * white
    mix = mix[256:]
    mix *= 10 ** (level_dbfs / 20.0) / (np.sqrt(np.mean(mix ** 2)) + 1e-12)
    return np.asarray(mix, dtype=np.float32)


def clap(rate: int, seed: int, peak: float = 0.9) -> np.ndarray:
    """A hand clap: a 150 ms bright noise burst, 1 ms attack, ~20 ms decay; peak near 1."""
    rng = np.random.default_rng(seed + 1)
    n = int(0.15 * rate)
    t = np.arange(n) / rate
    burst = np.diff(rng.normal(0.0, 1.0, n + 1))     # differenced noise: bright spectrum
    env = np.minimum(t / 0.001, 1.0) * np.exp(-t / 0.02)
    out = burst * env
    return np.asarray(out * peak / np.max(np.abs(out)), dtype=np.float32)


def render_audio_track(timeline: Timeline, rate: int, seed: int, phrase: np.ndarray,
                       clap_clip: np.ndarray | None = None,
                       noise_dbfs: float = -50.0) -> np.ndarray:
    """One period of the scene's sound at rate: room noise + clap + phrase, (n,) float32.

    Args:
        timeline: where the clap and phrase sit in the period.
        rate: sample rate (Hz).
        seed: noise seed.
        phrase: the spoken phrase at rate, float32 in [-1, 1].
        clap_clip: the clap at rate (default: clap(rate, seed)).
        noise_dbfs: RMS level of the room noise.
    """
    n = int(round(timeline.period_s * rate))
    track = room_noise(n, rate, seed, noise_dbfs)
    clip = clap(rate, seed) if clap_clip is None else clap_clip
    for start_s, sound in ((timeline.clap_s, clip), (timeline.phrase_s, phrase)):
        i0 = int(round(start_s * rate))
        m = min(len(sound), n - i0)
        if m > 0:
            track[i0:i0 + m] += sound[:m]
    return np.asarray(np.clip(track, -1.0, 1.0), dtype=np.float32)


# --- IMU ------------------------------------------------------------------------------------
def imu_noise_table(n: int, seed: int, accel_sigma: float = 0.02,
                    gyro_sigma: float = 0.002) -> np.ndarray:
    """(n, 6) white noise for accel (m/s^2) and gyro (rad/s), indexed by sample number."""
    rng = np.random.default_rng(seed + 2)
    table = rng.normal(0.0, 1.0, (n, 6))
    table[:, :3] *= accel_sigma
    table[:, 3:] *= gyro_sigma
    return table


def imu_motion(phase: np.ndarray, timeline: Timeline, mode: str = 'scene'
               ) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free accel (n, 3) m/s^2 and gyro (n, 3) rad/s at scene times phase (s).

    'still' lies flat (accel = +g on z), 'shake' shakes all the time, 'rotate' turns about z
    at 0.5 rad/s, and 'scene' lies still except for the scripted shake.
    """
    if mode not in IMU_MOTIONS:
        raise ValueError(f"unknown IMU motion {mode!r} (known: {', '.join(IMU_MOTIONS)})")
    phase = np.asarray(phase, dtype=np.float64)
    n = phase.size
    accel = np.zeros((n, 3))
    accel[:, 2] = STANDARD_GRAVITY
    gyro = np.zeros((n, 3))
    if mode == 'rotate':
        gyro[:, 2] = 0.5
        return accel, gyro
    if mode == 'shake':
        s, env = phase, np.ones(n)
    else:
        ev = timeline.event('shake')
        s = (phase - ev.offset_s) % timeline.period_s
        inside = s < ev.duration_s
        env = np.where(inside, np.sin(np.pi * np.minimum(s, ev.duration_s) / ev.duration_s)
                       ** 2, 0.0)
        if mode == 'still':
            env = np.zeros(n)
    accel[:, 0] += env * 6.0 * np.sin(2 * np.pi * 7.0 * s)
    accel[:, 1] += env * 4.0 * np.sin(2 * np.pi * 5.0 * s + 1.0)
    accel[:, 2] += env * 2.0 * np.sin(2 * np.pi * 9.0 * s + 2.0)
    gyro[:, 0] += env * 2.5 * np.sin(2 * np.pi * 6.0 * s)
    gyro[:, 1] += env * 2.0 * np.sin(2 * np.pi * 4.0 * s + 0.5)
    gyro[:, 2] += env * 1.5 * np.sin(2 * np.pi * 3.0 * s + 1.5)
    return accel, gyro
