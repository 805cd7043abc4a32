"""Rendering a planned realistic scene into bag messages (camera, microphone, IMU, budget).

The camera pans slowly over the panorama (its yaw is in the IMU too, so calm time holds no
conflict), objects are pasted into the world when they appear and pan with it, frames go through
`camera_model.expose`; the IMU carries gravity, the pan, turns and shakes, white noise, a bias
and a bias random walk; AtpBudget messages give each encoder the planned ATP per tick.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sage_common.vocabulary import MetabolicState
from sage_eval.camera_model import expose, paste, SensorNoise
from sage_eval.room import SAMPLE_RATE
from sage_eval.bagio import AUDIO_TOPIC, BUDGET_TOPIC, CAMERA_TOPIC, IMU_TOPIC, typestore
from sage_eval.scenario import FRAME_SAMPLES, GRAVITY, scene_header, T0
from sage_eval.scene_plan import Scene

FRAME_EPS_S = 1e-6  # frame times closer than this are the same instant (rounding)
# Plugin names the budget addresses (the encoders' default plugin = node name).
PLUGINS = (('vision_encoder', 'vision'), ('audio_encoder', 'audio'))
AE_DRIFT = 0.03  # slow auto-exposure/gain wander (fraction)
AE_STEP = (0.01, 0.03)  # auto-exposure steps (fraction), not events
AE_STEP_EVERY_S = (20.0, 45.0)
PAN_SPEED_PX_S = (3.0, 6.0)  # peak speed of the slow pan
PAN_AMPLITUDE_PX = 250.0  # the pan sweeps at most this far either side of the centre
MARGIN_PX = 12  # rows above and below the view, room for the shake
SHAKE_ACCEL = (3.0, 6.0)  # m/s^2 peak
SHAKE_GYRO = 0.4  # rad/s peak of the wobble a shake gives the body
SHAKE_DECAY = 3.0  # a shake's envelope falls by e^-3 over its duration
TURN_S = 1.6  # a turn the image does not follow: there and back in this time
# IMU: white noise, bias and bias random walk (MPU-6050 class).
ACCEL_NOISE, GYRO_NOISE = 0.04, 0.005
ACCEL_BIAS, GYRO_BIAS = 0.05, 0.01
GYRO_WALK = 2e-4  # rad/s per sqrt(s)


@dataclass(frozen=True)
class Look:
    """How the camera and the body behave around the planned events (defaults: the realistic
    scenes' quiet room and still robot).

    Attributes:
        ae_drift: amplitude of the slow auto-exposure wander (fraction of the exposure).
        ae_period_s: its period's range (s).
        vibration_hz: a motor's vibration frequency range in the IMU (None: no motor).
        vibration_accel: its acceleration amplitude (m/s^2, x and y).
        vibration_gyro: its angular rate amplitude (rad/s, x and y).
    """

    ae_drift: float = AE_DRIFT
    ae_period_s: tuple[float, float] = (30.0, 90.0)
    vibration_hz: tuple[float, float] | None = None
    vibration_accel: float = 0.0
    vibration_gyro: float = 0.0


def vibration(tt: np.ndarray, look: Look, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """(accel, gyro) of a steady motor: a tone whose speed wanders by 2 % and its second
    harmonic, sampled at the IMU's times tt (aliased as a real IMU samples it)."""
    accel, gyro = np.zeros((tt.size, 3)), np.zeros((tt.size, 3))
    if look.vibration_hz is None:
        return accel, gyro
    hz = float(rng.uniform(*look.vibration_hz))
    wander_s = float(rng.uniform(10.0, 30.0))
    phase = 2 * np.pi * hz * (tt + 0.02 * wander_s / (2 * np.pi)
                              * np.sin(2 * np.pi * tt / wander_s))
    second = float(rng.uniform(0, 2 * np.pi))
    for k, (a, g) in enumerate(((1.0, 1.0), (0.7, 0.5))):  # x, y
        p = phase + float(rng.uniform(0, 2 * np.pi))
        accel[:, k] = a * look.vibration_accel * (np.sin(p) + 0.4 * np.sin(2 * p + second))
        gyro[:, k] = g * look.vibration_gyro * np.sin(p + 0.5)
    return accel, gyro


# The orchestrator's nominal trust in a plugin (the budget messages carry it; unused here).
TRUST = 0.5


def at(steps: list[tuple[float, float]], t: float) -> float:
    value = steps[0][1]
    for s, v in steps:
        if s <= t:
            value = v
    return value


def frame_times(scene: Scene) -> list[float]:
    out, t = [], 0.0
    while t < scene.duration:
        out.append(t)
        t = round(t + 1.0 / at(scene.rates, t + FRAME_EPS_S), 9)
        # A rate change applies from its instant on (the camera re-times in place); a frame
        # that fell on the instant already is the first at the new rate.
        for s, _ in scene.rates:
            if out[-1] + FRAME_EPS_S < s < t:
                t = s
    return out


def write_scene(writer: Any, scene: Scene, pano: np.ndarray, noise: SensorNoise,
                rng: np.random.Generator, look: Look = Look()) -> None:
    ts = typestore()
    types = ts.types
    Image, AudioFrame = types['sensor_msgs/msg/Image'], types['sage_interfaces/msg/AudioFrame']
    Imu, Budget = types['sensor_msgs/msg/Imu'], types['sage_interfaces/msg/AtpBudget']
    Alloc = types['sage_interfaces/msg/AtpAllocation']
    Quat, Vec3 = types['geometry_msgs/msg/Quaternion'], types['geometry_msgs/msg/Vector3']
    conns = {name: writer.add_connection(topic, cls.__msgtype__, typestore=ts)
             for name, topic, cls in (('camera', CAMERA_TOPIC, Image),
                                      ('audio', AUDIO_TOPIC, AudioFrame),
                                      ('imu', IMU_TOPIC, Imu), ('budget', BUDGET_TOPIC, Budget))}
    cfg = scene.cfg
    width, height = cfg.size
    # The pan: x(t) = centre + A sin(2 pi t / P), peak speed 2 pi A / P.
    amp = min(PAN_AMPLITUDE_PX, (pano.shape[1] - width) / 2.0 - 1.0)
    period = 2 * np.pi * amp / float(rng.uniform(*PAN_SPEED_PX_S))
    phase = float(rng.uniform(0, 2 * np.pi))
    centre = (pano.shape[1] - width) / 2.0
    px_per_rad = width / cfg.hfov_rad

    def pan_x(t: float) -> float:
        return centre + amp * np.sin(2 * np.pi * t / period + phase)

    ae_period = float(rng.uniform(*look.ae_period_s))
    ae_phase = float(rng.uniform(0, 2 * np.pi))
    ae_steps, t = [], float(rng.uniform(*AE_STEP_EVERY_S))
    while t < scene.duration:
        ae_steps.append((t, float(rng.choice([-1.0, 1.0]) * rng.uniform(*AE_STEP))))
        t += float(rng.uniform(*AE_STEP_EVERY_S))
    pcm = (np.clip(scene.audio, -1.0, 1.0) * 32767.0).astype('<i2')
    n_imu = int(scene.duration * cfg.imu_hz)
    dt = 1.0 / cfg.imu_hz
    tt = np.arange(n_imu) * dt
    gyro = np.zeros((n_imu, 3))
    accel = np.tile([0.0, 0.0, GRAVITY], (n_imu, 1))
    gyro[:, 2] = -(amp * 2 * np.pi / period) * np.cos(2 * np.pi * tt / period + phase) \
        / px_per_rad
    for start, peak in scene.turns:  # there and back, the image does not follow
        u = (tt - start) / TURN_S
        inside = (u >= 0) & (u <= 1)
        gyro[inside, 2] += peak * np.sin(2 * np.pi * u[inside])
    for start, dur, hz, _ in scene.shakes:
        u = tt - start
        inside = (u >= 0) & (u <= dur)
        env = np.exp(-SHAKE_DECAY * u[inside] / dur)
        amp_a = float(rng.uniform(*SHAKE_ACCEL))
        accel[inside, 0] += amp_a * env * np.sin(2 * np.pi * hz * u[inside])
        accel[inside, 1] += 0.6 * amp_a * env * np.cos(2 * np.pi * hz * u[inside])
        gyro[inside, :2] += SHAKE_GYRO * env[:, None] * np.sin(2 * np.pi * hz * u[inside])[:, None]
    gyro += rng.normal(0, GYRO_BIAS, 3) + np.cumsum(
        rng.normal(0, GYRO_WALK * np.sqrt(dt), (n_imu, 3)), axis=0)
    gyro += rng.normal(0, GYRO_NOISE, (n_imu, 3))
    accel += rng.normal(0, ACCEL_BIAS, 3) + rng.normal(0, ACCEL_NOISE, (n_imu, 3))
    if look.vibration_hz is not None:  # drawn last: scenes without a motor stay as they were
        motor_accel, motor_gyro = vibration(tt, look, rng)
        accel += motor_accel
        gyro += motor_gyro
    cov = np.zeros(9)
    cov[0] = -1.0  # no orientation estimate
    zero9 = np.zeros(9)

    schedule = [(t, 0, i) for i, t in enumerate(frame_times(scene))]
    schedule += [(i * FRAME_SAMPLES / SAMPLE_RATE, 1, i) for i in range(pcm.size // FRAME_SAMPLES)]
    schedule += [(i * dt, 2, i) for i in range(n_imu)]
    schedule += [(i / cfg.budget_hz, 3, i) for i in range(int(scene.duration * cfg.budget_hz))]
    world = pano.copy()
    pending = sorted(scene.objects, key=lambda o: o[0])
    for t, kind, i in sorted(schedule):
        ns = int(round((T0 + t) * 1e9))
        if kind == 0:
            x0 = pan_x(t)
            while pending and pending[0][0] <= t:
                _, patch, alpha, ox, oy = pending.pop(0)
                paste(world, patch, alpha, int(x0) + ox, MARGIN_PX + oy)
            dx = dy = 0
            for start, dur, hz, px in scene.shakes:
                if start <= t <= start + dur:
                    w = np.exp(-SHAKE_DECAY * (t - start) / dur) * px
                    dx = int(round(w * np.sin(2 * np.pi * hz * (t - start))))
                    dy = int(round(w * np.cos(2 * np.pi * hz * (t - start))))
            xs = int(np.clip(round(x0) + dx, 0, world.shape[1] - width))
            ys = MARGIN_PX + dy
            ae = 1.0 + look.ae_drift * np.sin(2 * np.pi * t / ae_period + ae_phase) \
                + sum(s for s0, s in ae_steps if s0 <= t)
            gain = ae * float(np.prod([g for s, g in scene.gains if s <= t]))
            frame = expose(world[ys:ys + height, xs:xs + width], gain, noise, rng)
            msg = Image(header=scene_header(ts, t, 'camera_optical_frame'), height=height,
                        width=width, encoding='rgb8', is_bigendian=0, step=width * 3,
                        data=np.frombuffer(frame.tobytes(), dtype=np.uint8))
            writer.write(conns['camera'], ns, ts.serialize_cdr(msg, Image.__msgtype__))
        elif kind == 1:
            chunk = pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]
            msg = AudioFrame(header=scene_header(ts, t, 'microphone'), sample_rate=SAMPLE_RATE,
                             channels=1, encoding='S16LE',
                             data=np.frombuffer(chunk.tobytes(), dtype=np.uint8))
            writer.write(conns['audio'], ns, ts.serialize_cdr(msg, AudioFrame.__msgtype__))
        elif kind == 2:
            a, w = accel[i], gyro[i]
            msg = Imu(header=scene_header(ts, t, 'imu_link'),
                      orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0), orientation_covariance=cov,
                      angular_velocity=Vec3(x=float(w[0]), y=float(w[1]), z=float(w[2])),
                      angular_velocity_covariance=zero9,
                      linear_acceleration=Vec3(x=float(a[0]), y=float(a[1]), z=float(a[2])),
                      linear_acceleration_covariance=zero9)
            writer.write(conns['imu'], ns, ts.serialize_cdr(msg, Imu.__msgtype__))
        else:
            atp = at(scene.budgets, t)
            total = atp * len(PLUGINS)
            allocs = [Alloc(plugin=p, modality=m, trust=TRUST, salience=0.0,
                            share=1.0 / len(PLUGINS), atp=atp, atp_used=atp)
                      for p, m in PLUGINS]
            msg = Budget(header=scene_header(ts, t, ''), tick=i, budget_total=total, reserve=0.0,
                         metabolic_state=MetabolicState.WAKE.value, allocations=allocs)
            writer.write(conns['budget'], ns, ts.serialize_cdr(msg, Budget.__msgtype__))
