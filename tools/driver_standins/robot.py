#!/usr/bin/env python3
"""Stand-ins for a robot's own drivers: plain rclpy publishers, no SAGE code.

They publish what the real drivers publish, on their topics, with their message types and QoS,
so SAGE's `ros` and `audio_common` backends can be tried and tested where no robot is:

  --camera usb_cam     sensor_msgs/Image yuv422_yuy2 (YUYV) 640x480 at 30 Hz on
                       /camera/image_raw, CameraInfo on /camera/camera_info (reliable, as
                       usb_cam's image_transport publisher)
  --camera realsense   sensor_msgs/CompressedImage JPEG on
                       /camera/camera/color/image_raw/compressed, CameraInfo on
                       /camera/camera/color/camera_info (best effort, realsense2_camera's
                       default)
  --audio 4x           audio_common_msgs/AudioStamped int16 48 kHz stereo, 512-frame chunks on
                       /audio (audio_capturer_node of the 4.x releases, best effort)
  --audio humble       audio_common_msgs/AudioDataStamped S16LE 48 kHz stereo on
                       /audio/audio_stamped, AudioInfo latched on /audio/audio_info
                       (audio_capture of the Humble-era releases)
  --audio both         the same sound in both families at once
  --imu                sensor_msgs/Imu at 200 Hz on /imu/data (m/s^2, rad/s, no orientation)

The camera looks at real photographs (scikit-image's coffee and clock side by side); with
--object-at S a cut-out of another real photo (the rocket) enters the view S seconds in. The
microphone hears a quiet room; with --clap-at S the clap of --clap-wav (default: SAGE's sample
clap, a file) sounds S seconds in. Every message is stamped with its scheduled capture time on
the wall clock, as a driver stamps with its capture time. --labels FILE writes the events'
stamps as JSON when publishing starts.
"""
from __future__ import annotations

import argparse
import array
import json
import os
from pathlib import Path
import sys
import threading
import time

import cv2
import numpy as np
import rclpy
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, Imu
from skimage import data as photos
import soundfile as sf

WIDTH, HEIGHT, CAMERA_HZ = 640, 480, 30.0
AUDIO_RATE, AUDIO_CHANNELS, AUDIO_CHUNK = 48000, 2, 512
IMU_HZ = 200.0
GRAVITY = 9.80665
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def stamp_of(t: float):
    """builtin_interfaces/Time fields of float seconds."""
    ns = int(round(t * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000


def set_header(msg, t: float, frame_id: str) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_of(t)
    msg.header.frame_id = frame_id


class Schedule:
    """Ticks at start + lag + k * period on the monotonic clock; stamps on the wall clock.

    Every driver prepares first (publishers, encoded frames), then waits at `ready`; main
    sets one start for all (`begin`), so the first message is not a second old.
    """

    def __init__(self, period: float, lag: float, ready: threading.Barrier,
                 go: threading.Event, stop: threading.Event) -> None:
        self.period, self.lag, self.ready_barrier, self.go = period, lag, ready, go
        self.stop = stop
        self.start = self.offset = 0.0
        self.k = 0

    def begin(self, start_mono: float, offset: float) -> None:
        self.start, self.offset = start_mono + self.lag, offset

    def ready(self) -> None:
        """This driver is prepared: wait for the common start."""
        self.ready_barrier.wait()
        self.go.wait()

    def next(self) -> float | None:
        """Wait for the next tick; its wall-clock stamp (None once stopped)."""
        due = self.start + self.k * self.period
        delay = due - time.monotonic()
        if delay > 0 and self.stop.wait(delay):
            return None
        if self.stop.is_set():
            return None
        self.k += 1
        return due + self.offset


# --- the camera's view ----------------------------------------------------------------------
def _fit(img: np.ndarray, height: int) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    w = int(round(img.shape[1] * height / img.shape[0]))
    return cv2.resize(np.ascontiguousarray(img[..., :3]), (w, height),
                      interpolation=cv2.INTER_AREA)


def views() -> tuple[np.ndarray, np.ndarray]:
    """(without, with the object) 640x480 RGB: two real photos, a cut-out of a third."""
    room = np.concatenate([_fit(photos.coffee(), HEIGHT), _fit(photos.clock(), HEIGHT)], axis=1)
    room = np.ascontiguousarray(room[:, :WIDTH])
    rocket = photos.rocket()[40:420, 150:470]        # the rocket and the sky round it
    oh = int(HEIGHT * 0.45)
    ow = int(round(rocket.shape[1] * oh / rocket.shape[0]))
    sprite = cv2.resize(rocket, (ow, oh), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[0:oh, 0:ow]
    r = ((xx - ow / 2) / (ow / 2)) ** 2 + ((yy - oh / 2) / (oh / 2)) ** 2
    alpha = np.clip((1.0 - r) / 0.1, 0.0, 1.0)[..., None]
    x, y = int(WIDTH * 0.25), HEIGHT - oh - int(HEIGHT * 0.08)
    with_object = room.astype(np.float32)
    region = with_object[y:y + oh, x:x + ow]
    with_object[y:y + oh, x:x + ow] = region * (1 - alpha) + sprite * alpha
    return room, np.clip(with_object, 0, 255).astype(np.uint8)


def noisy(rgb: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(rgb + rng.normal(0, sigma, rgb.shape), 0, 255).astype(np.uint8)


def rgb_to_yuyv(rgb: np.ndarray) -> bytes:
    """Packed YUYV (Y0 U Y1 V), BT.601 studio swing, as a UVC webcam delivers it."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    out = np.empty((rgb.shape[0], rgb.shape[1], 2), np.float32)
    out[..., 0] = y
    out[:, 0::2, 1] = (u[:, 0::2] + u[:, 1::2]) / 2
    out[:, 1::2, 1] = (v[:, 0::2] + v[:, 1::2]) / 2
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).tobytes()


def camera_info(frame_id: str) -> CameraInfo:
    """A calibration as a driver loads it from its camera_info_url."""
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model='plumb_bob')
    info.header.frame_id = frame_id
    info.d = [0.08, -0.15, 0.001, -0.002, 0.0]
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [525.0, 0.0, 319.5, 0.0, 0.0, 525.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def run_camera(node, kind: str, sched: Schedule, object_at: float) -> None:
    rng = np.random.default_rng(1)
    room, with_object = views()
    if kind == 'usb_cam':
        frame_id, topic, info_topic = 'default_cam', '/camera/image_raw', '/camera/camera_info'
        image_pub = node.create_publisher(Image, topic, RELIABLE)
        info_pub = node.create_publisher(CameraInfo, info_topic, RELIABLE)
        encode = rgb_to_yuyv
    else:
        frame_id = 'camera_color_optical_frame'
        topic = '/camera/camera/color/image_raw/compressed'
        info_topic = '/camera/camera/color/camera_info'
        image_pub = node.create_publisher(CompressedImage, topic, qos_profile_sensor_data)
        info_pub = node.create_publisher(CameraInfo, info_topic, qos_profile_sensor_data)

        def encode(rgb: np.ndarray) -> bytes:
            ok, jpg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, 85])
            return jpg.tobytes()
    # a few noisy exposures of each view, encoded once: the loop only publishes
    frames = {seen: [encode(noisy(img, rng)) for _ in range(4)]
              for seen, img in ((False, room), (True, with_object))}
    info = camera_info(frame_id)
    sched.ready()
    start = sched.start + sched.offset
    i = 0
    while (t := sched.next()) is not None:
        payload = frames[0 <= object_at <= t - start][i % 4]
        if kind == 'usb_cam':
            msg = Image(height=HEIGHT, width=WIDTH, encoding='yuv422_yuy2', is_bigendian=0,
                        step=WIDTH * 2)
        else:
            msg = CompressedImage(format='rgb8; jpeg compressed bgr8')
        set_header(msg, t, frame_id)
        msg.data = payload
        image_pub.publish(msg)
        info.header.stamp = msg.header.stamp
        info_pub.publish(info)
        i += 1


# --- the microphone -------------------------------------------------------------------------
def sound_track(seconds: float, clap_at: float, clap_wav: Path | None) -> np.ndarray:
    """(n, 2) int16 at 48 kHz: a quiet room (-50 dBFS), the clap at clap_at (if >= 0)."""
    n = int(seconds * AUDIO_RATE)
    rng = np.random.default_rng(2)
    room = rng.normal(0, 10 ** (-50 / 20), (n, AUDIO_CHANNELS)).astype(np.float32)
    if clap_at >= 0 and clap_wav is not None:
        clap, rate = sf.read(str(clap_wav), dtype='float32', always_2d=True)
        clap = clap.mean(axis=1)
        m = int(round(len(clap) * AUDIO_RATE / rate))   # linear resampling is enough here
        clap = np.interp(np.arange(m) * rate / AUDIO_RATE, np.arange(len(clap)), clap)
        at = int(clap_at * AUDIO_RATE)
        end = min(n, at + m)
        room[at:end] += clap[:end - at, None] * np.array([1.0, 0.8], np.float32)
    return (np.clip(room, -1, 1) * 32767).astype(np.int16)


def run_audio(node, kind: str, sched: Schedule, track: np.ndarray) -> None:
    # lazy: audio_common_msgs only when a capturer is asked for
    import audio_common_msgs.msg as acm
    if kind == '4x':
        pub = node.create_publisher(acm.AudioStamped, '/audio', qos_profile_sensor_data)
    else:
        pub = node.create_publisher(acm.AudioDataStamped, '/audio/audio_stamped', 10)
        info_pub = node.create_publisher(acm.AudioInfo, '/audio/audio_info', LATCHED)
        info_pub.publish(acm.AudioInfo(channels=AUDIO_CHANNELS, sample_rate=AUDIO_RATE,
                                       sample_format='S16LE', bitrate=0,
                                       coding_format='wave'))
    sched.ready()
    pos = 0
    while (t := sched.next()) is not None:
        chunk = track[pos:pos + AUDIO_CHUNK]
        if len(chunk) < AUDIO_CHUNK:            # the track loops (quiet room)
            pos, chunk = 0, track[:AUDIO_CHUNK]
        pos += AUDIO_CHUNK
        # the stamp is the capture time of the chunk's first sample
        first = t - AUDIO_CHUNK / AUDIO_RATE
        if kind == '4x':
            msg = acm.AudioStamped()
            set_header(msg, first, 'microphone')
            msg.audio.info.format, msg.audio.info.channels = 8, AUDIO_CHANNELS   # paInt16
            msg.audio.info.rate, msg.audio.info.chunk = AUDIO_RATE, AUDIO_CHUNK
            msg.audio.audio_data.int16_data = array.array('h', chunk.tobytes())
        else:
            msg = acm.AudioDataStamped()
            set_header(msg, first, 'microphone')
            msg.audio.data = chunk.astype('<i2').tobytes()
        pub.publish(msg)


# --- the IMU --------------------------------------------------------------------------------
def run_imu(node, sched: Schedule) -> None:
    pub = node.create_publisher(Imu, '/imu/data', qos_profile_sensor_data)
    rng = np.random.default_rng(3)
    sched.ready()
    while (t := sched.next()) is not None:
        msg = Imu()
        set_header(msg, t, 'imu_link')
        a, w = rng.normal(0, 0.02, 3), rng.normal(0, 0.002, 3)
        msg.linear_acceleration.x, msg.linear_acceleration.y = float(a[0]), float(a[1])
        msg.linear_acceleration.z = GRAVITY + float(a[2])
        msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, w)
        msg.orientation_covariance[0] = -1.0       # this driver does not estimate orientation
        msg.linear_acceleration_covariance = [4e-4, 0, 0, 0, 4e-4, 0, 0, 0, 4e-4]
        msg.angular_velocity_covariance = [4e-6, 0, 0, 0, 4e-6, 0, 0, 0, 4e-6]
        pub.publish(msg)


def default_clap() -> Path:
    """SAGE's sample clap (a data file the installer writes)."""
    folder = os.environ.get('SAGE_DATA_DIR') or str(Path(sys.prefix) / 'share/sage/samples')
    return Path(folder) / 'clap.wav'


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--camera', choices=('usb_cam', 'realsense', 'none'), default='usb_cam')
    ap.add_argument('--audio', choices=('4x', 'humble', 'both', 'none'), default='4x')
    ap.add_argument('--imu', action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument('--duration', type=float, default=0.0, help='seconds (0 = until Ctrl-C)')
    ap.add_argument('--object-at', type=float, default=-1.0,
                    help='seconds in when the object enters the view (-1 = never)')
    ap.add_argument('--clap-at', type=float, default=-1.0,
                    help='seconds in when the clap sounds (-1 = never)')
    ap.add_argument('--clap-wav', type=Path, default=None, help='the clap (default: SAGE\'s '
                    'sample clap.wav)')
    ap.add_argument('--labels', type=Path, default=None, help='write the event stamps here')
    args = ap.parse_args(argv)
    clap_wav = args.clap_wav or default_clap()
    if args.clap_at >= 0 and not clap_wav.is_file():
        print(f'ERROR: no clap recording at {clap_wav} (--clap-wav)', file=sys.stderr)
        return 2
    seconds = args.duration or 60.0
    track = sound_track(max(seconds, args.clap_at + 2.0), args.clap_at, clap_wav) \
        if args.audio != 'none' else None

    rclpy.init()
    node = rclpy.create_node('robot_drivers')
    stop = threading.Event()
    jobs = []
    if args.camera != 'none':
        jobs.append((run_camera, args.camera, 1 / CAMERA_HZ, 0.0, args.object_at))
    for family in {'both': ('4x', 'humble'), 'none': ()}.get(args.audio, (args.audio,)):
        # a chunk is published when its last sample exists: one chunk after the start
        jobs.append((run_audio, family, AUDIO_CHUNK / AUDIO_RATE, AUDIO_CHUNK / AUDIO_RATE,
                     track))
    if args.imu:
        jobs.append((run_imu, None, 1 / IMU_HZ, 0.0))
    ready, go = threading.Barrier(len(jobs) + 1), threading.Event()
    threads, schedules = [], []
    for run, kind, period, lag, *extra in jobs:
        sched = Schedule(period, lag, ready, go, stop)
        schedules.append(sched)
        job_args = (node, sched) if kind is None else (node, kind, sched, *extra)
        threads.append(threading.Thread(target=run, args=job_args, daemon=True))
    for th in threads:
        th.start()
    ready.wait()              # every driver prepared
    # one schedule origin for every driver: their clocks agree, as on one robot
    start_mono = time.monotonic() + 0.2
    offset = time.time() - time.monotonic()
    start = start_mono + offset
    for sched in schedules:
        sched.begin(start_mono, offset)
    if args.labels:
        events = []
        if args.object_at >= 0 and args.camera != 'none':
            events.append({'kind': 'object_appears', 'modality': 'vision',
                           'start': start + args.object_at, 'end': start + seconds})
        if args.clap_at >= 0 and args.audio != 'none':
            events.append({'kind': 'clap', 'modality': 'audio', 'start': start + args.clap_at,
                           'end': start + args.clap_at + 0.3})
        args.labels.write_text(json.dumps({'start': start, 'duration_s': seconds,
                                           'events': events}) + '\n')
    go.set()
    print(f'robot_drivers: publishing from stamp {start:.6f}', flush=True)
    try:
        if args.duration:
            stop.wait(max(0.0, start_mono + args.duration - time.monotonic()))
        else:
            stop.wait()
    except KeyboardInterrupt:
        pass
    stop.set()
    for th in threads:
        th.join(timeout=2)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
