"""Labelled test scenarios: rosbag2 (MCAP) bags built from real photos and speech, and a scorer.

`make_scenario` writes a bag with the topics the SAGE graph consumes:

- /sage/camera/image_raw  sensor_msgs/Image rgb8 (224x224 by default, 10 Hz): a view of a
  panorama made of scikit-image's bundled photos, with sensor noise;
- /sage/audio/frames      sage_interfaces/AudioFrame S16LE 16 kHz mono, 512-sample frames:
  room noise plus speech from espeak-ng, synthetic claps, beeps and tones;
- /sage/imu/data          sensor_msgs/Imu at 100 Hz: gravity plus noise, rotations, bumps;
- /sage/reward            sage_interfaces/Reward (program 'reward' only);

and a labels JSON beside the bag (`labels_path`). Programs:

- 'standard': after a warm-up, events of each kind in fixed-length slots (shuffled by the
  seed), and one block of ten identical repeated stimuli followed by a changed one:
  novelty (an object never seen before appears), surprise (the lights dim), arousal (a loud
  utterance; a bump; the robot turns and the view pans with it), conflict (the IMU says the
  body turns while the image stays still), repeat (the same beep ten times, 5 s apart),
  changed (a clap after the repeats). Everything after the warm-up and away from events (0.5 s
  before to 2.5 s after) is calm.
- 'reward': two audio stimuli, A (spoken "snack time") and B (a tone sweep), alternate every
  4 s; baseline (no rewards), training (every A is followed 0.8 s later by a reward of +1),
  extinction (no rewards again).

`score_decisions` reads a replay's decisions JSONL and reports event recall, false alarms per
minute in calm periods, the habituation drop over the repeats and, for 'reward', the salience
of A and B per phase; decisions that were not made from the scene are refused, not scored.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
import json
import math
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.rosbag2.errors import WriterError

from sage_common.speech import SpeechError, espeak
from sage_eval.bagio import AUDIO_TOPIC, CAMERA_TOPIC, IMU_TOPIC, REWARD_TOPIC, typestore
from sage_eval.errors import ScenarioError
from sage_eval.provenance import SourceCheck, check_source

SAMPLE_RATE = 16000
FRAME_SAMPLES = 512
GRAVITY = 9.80665
# Stamps start here (a plausible epoch time); labels use the same absolute stamps.
T0 = 1_700_000_000.0
PANORAMA_IMAGES = ('coffee', 'chelsea', 'rocket', 'astronaut', 'immunohistochemistry')
OBJECT_IMAGES = ('astronaut', 'camera', 'coins', 'moon', 'horse', 'clock', 'page', 'text',
                 'brick', 'grass', 'gravel', 'retina', 'immunohistochemistry',
                 'hubble_deep_field', 'colorwheel', 'logo', 'chelsea', 'coffee', 'rocket')
PHRASES = ('watch out', 'hello robot', 'stop right there', 'over here', 'come back',
           'look at this', 'excuse me', 'careful now')
# Detection windows after an event's start (s): conflict needs the conflict lag.
DETECT_S = {'conflict': 1.5}
DEFAULT_DETECT_S = 1.0
# Not calm: this long before an event and after its end (s).
PRE_S, SETTLE_S = 0.5, 2.5
# Attended inputs closer than this (s) form one false alarm.
ALARM_GAP_S = 1.0
# Audio latents are stamped at the start of their window (the audio encoder's default
# 16384 samples at 16 kHz); the scorer places them at the window's end, when they exist.
AUDIO_WINDOW_S = 16384 / 16000
# A decision may be stamped up to one audio window past the scene's last message (an IMU or
# audio window closing at the end); anything further out was not made from this scene.
STAMP_SLACK_S = AUDIO_WINDOW_S


@dataclass(frozen=True)
class Event:
    """One labelled event (stamps in seconds, same clock as the bag's header stamps)."""

    kind: str  # novelty | surprise | arousal | conflict | repeat | changed | reward_a | reward_b
    modality: str  # modality that carries the stimulus: vision | audio | imu
    start: float
    end: float
    name: str
    series: str = ''
    index: int = 0
    target: bool = True  # counted for recall
    phase: str = ''  # reward program: baseline | training | extinction


@dataclass
class ScenarioLabels:
    """What a scenario contains, written beside the bag as JSON."""

    seed: int
    program: str
    duration_s: float
    start: float
    warmup_s: float
    events: list[Event] = field(default_factory=list)
    calm: list[tuple[float, float]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        d = asdict(self)
        d['calm'] = [list(c) for c in self.calm]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> 'ScenarioLabels':
        """Inverse of to_json."""
        return cls(seed=int(d['seed']), program=str(d['program']),
                   duration_s=float(d['duration_s']), start=float(d['start']),
                   warmup_s=float(d['warmup_s']), events=[Event(**e) for e in d['events']],
                   calm=[(float(a), float(b)) for a, b in d['calm']],
                   settings=dict(d.get('settings', {})))


def labels_path(bag: Path) -> Path:
    """Where the labels of a scenario bag live: '<bag>.labels.json' beside the bag folder."""
    bag = Path(bag)
    return bag.parent / f'{bag.name}.labels.json'


def load_labels(path: Path) -> ScenarioLabels:
    """Read labels from a labels JSON file or from the bag they sit beside.

    Raises:
        ScenarioError: no labels file or malformed labels.
    """
    path = Path(path)
    if path.is_dir():
        path = labels_path(path)
    try:
        return ScenarioLabels.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ScenarioError(f'cannot read scenario labels {path}: {err}') from err


# ---------------------------------------------------------------------------- stimuli

@lru_cache(maxsize=32)
def _photo(name: str) -> np.ndarray:
    # lazy: keeps scikit-image out of this module's import
    import skimage.data
    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img.astype(np.uint8))


def _resize_h(img: np.ndarray, height: int) -> np.ndarray:
    w = max(1, round(img.shape[1] * height / img.shape[0]))
    return cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=64)
def speech(text: str, voice: str = 'en', speed: int = 150) -> np.ndarray:
    """Speak text with espeak-ng: float32 mono samples at 16 kHz, peak 1.

    Raises:
        ScenarioError: espeak-ng is missing or failed.
    """
    # lazy: keeps scipy out of this module's import
    from scipy.signal import resample_poly
    try:
        data, rate = espeak(text, voice, speed)
    except SpeechError as err:
        raise ScenarioError(str(err)) from err
    g = math.gcd(int(rate), SAMPLE_RATE)
    out = resample_poly(data, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    # Trim leading/trailing silence so the onset is at sample 0.
    loud = np.flatnonzero(np.abs(out) > 0.02 * np.max(np.abs(out)))
    if loud.size:
        out = out[loud[0]:loud[-1] + 1]
    return out / max(float(np.max(np.abs(out))), 1e-6)


def clap(seed: int) -> np.ndarray:
    """A hand clap: band-passed noise burst with a 2 ms attack and 60 ms decay, peak 1."""
    # lazy: keeps scipy out of this module's import
    from scipy.signal import butter, sosfilt
    rng = np.random.default_rng(seed)
    n = int(0.25 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    env = np.minimum(t / 0.002, 1.0) * np.exp(-t / 0.06)
    sos = butter(2, [800, 5000], btype='bandpass', fs=SAMPLE_RATE, output='sos')
    x = sosfilt(sos, rng.normal(size=n)) * env
    return (x / np.max(np.abs(x))).astype(np.float32)


def chirp(f0: float, f1: float, dur: float = 0.4) -> np.ndarray:
    """A rising tone (two harmonics), 10 ms ramps, peak 1."""
    t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * dur))
    x = np.sin(phase) + 0.4 * np.sin(2 * phase)
    ramp = np.minimum(1.0, np.minimum(t, dur - t) / 0.01)
    x = x * ramp
    return (x / np.max(np.abs(x))).astype(np.float32)


def beep(freq: float = 1000.0, dur: float = 0.25) -> np.ndarray:
    """A plain beep with 10 ms ramps, peak 1."""
    t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
    x = np.sin(2 * np.pi * freq * t) * np.minimum(1.0, np.minimum(t, dur - t) / 0.01)
    return x.astype(np.float32)


def _smooth_pulse(t: np.ndarray, start: float, dur: float) -> np.ndarray:
    """0 outside [start, start + dur], a raised-cosine bump inside (peak 1)."""
    u = (t - start) / dur
    out = np.where((u >= 0) & (u <= 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)
    return out


# ---------------------------------------------------------------------------- the world

@dataclass
class _World:
    """Everything that happens, as functions of time, before rendering."""

    duration: float
    camera_hz: float
    imu_hz: float
    size: tuple[int, int]  # (width, height)
    panorama: np.ndarray
    pan0: float  # px
    px_per_rad: float
    rng: np.random.Generator
    audio: np.ndarray  # (n,) float32 in [-1, 1]
    gyro_z: np.ndarray  # (m,) rad/s body rotation (IMU)
    visual_rate: np.ndarray  # (m,) rad/s rotation the camera image follows
    accel_extra: np.ndarray  # (m, 3)
    lights: list[tuple[float, float, float]] = field(default_factory=list)  # start, end, gain
    objects: list[tuple[float, float, np.ndarray, int, int]] = field(default_factory=list)
    shakes: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, px
    rewards: list[tuple[float, float]] = field(default_factory=list)  # stamp offset, value
    pano_names: list[str] = field(default_factory=list)

    def imu_times(self) -> np.ndarray:
        return np.arange(self.gyro_z.shape[0]) / self.imu_hz

    def add_sound(self, t: float, x: np.ndarray, peak: float) -> None:
        i = int(round(t * SAMPLE_RATE))
        j = min(self.audio.shape[0], i + x.shape[0])
        if i < j:
            self.audio[i:j] += peak * x[:j - i]

    def add_rotation(self, t: float, dur: float, rate: float, visual: bool,
                     there_and_back: bool) -> None:
        tt = self.imu_times()
        if there_and_back:
            prof = rate * (_smooth_pulse(tt, t, dur / 2) - _smooth_pulse(tt, t + dur / 2, dur / 2))
        else:
            prof = rate * _smooth_pulse(tt, t, dur)
        self.gyro_z += prof
        if visual:
            self.visual_rate += prof

    def add_bump(self, t: float) -> None:
        tt = self.imu_times()
        pulse = _smooth_pulse(tt, t, 0.08)
        self.accel_extra[:, 0] += 7.0 * pulse
        self.accel_extra[:, 2] += -4.0 * pulse
        self.gyro_z += 0.6 * _smooth_pulse(tt, t, 0.1) * np.sin(2 * np.pi * 25 * (tt - t))
        self.shakes.append((t, t + 0.12, 4))


def _build_panorama(rng: np.random.Generator, height: int) -> tuple[np.ndarray, list[str]]:
    names = [PANORAMA_IMAGES[i] for i in rng.permutation(len(PANORAMA_IMAGES))[:3]]
    parts = [_resize_h(_photo(n), height) for n in names]
    return np.ascontiguousarray(np.concatenate(parts, axis=1)), names


def _render(world: _World, t: float, pan_px: float) -> np.ndarray:
    w, h = world.size
    pano = world.panorama
    shake = 0
    for s0, s1, px in world.shakes:
        if s0 <= t < s1:
            shake = px if int((t - s0) * 100) % 2 == 0 else -px
    x0 = int(round(pan_px)) + shake
    x0 = min(max(x0, 0), pano.shape[1] - w)
    frame = pano[:h, x0:x0 + w].astype(np.float32)
    for o0, o1, obj, ox, oy in world.objects:
        if o0 <= t < o1:
            oh, ow = obj.shape[:2]
            frame[oy:oy + oh, ox:ox + ow] = obj
    gain = 1.0
    for l0, l1, g in world.lights:
        if l0 <= t < l1:
            gain = g
    frame = frame * gain + world.rng.normal(0.0, 2.0, size=frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _plan_standard(world: _World, rng: np.random.Generator, warmup: float, duration: float,
                   slot_s: float, repeat_gap_s: float, repeats: int) -> list[Event]:
    kinds = ['novelty', 'arousal_speech', 'conflict', 'surprise', 'arousal_bump', 'novelty',
             'ego_motion', 'arousal_speech', 'novelty', 'conflict', 'surprise', 'arousal_bump']
    block_s = repeat_gap_s * (repeats + 1) + slot_s
    n_slots = max(0, int((duration - warmup - block_s) // slot_s))
    others = [kinds[i % len(kinds)] for i in range(n_slots)]
    order = [others[i] for i in rng.permutation(len(others))]
    # The repeat block comes last: the audio encoder's embedding hardly tells a clap from
    # the onset of speech, so habituation to claps also fades later speech (README.md).
    order.append('repeat_block')
    objects = [OBJECT_IMAGES[i] for i in rng.permutation(len(OBJECT_IMAGES))]
    objects = [o for o in objects if o not in world.pano_names] or list(OBJECT_IMAGES)
    phrases = [PHRASES[i] for i in rng.permutation(len(PHRASES))]
    events: list[Event] = []
    t = warmup
    for item in order:
        if item == 'repeat_block':
            # A high tonal repeat and a broadband change: the audio encoder's embedding sorts
            # sounds into little more than "broadband or low" (speech, claps, bells, hums) and
            # "high tonal" (beeps, whistles), so the repeat must not be of the same family as
            # the speech events before it, nor the change of the same family as the repeat
            # (README.md, known limits).
            stim = beep(float(rng.choice([880.0, 1000.0, 1200.0])))
            name = 'beep'
            changed = clap(int(rng.integers(0, 2**31)))
            for k in range(repeats):
                s = t + 1.0 + k * repeat_gap_s
                world.add_sound(s, stim, 0.6)
                events.append(Event('repeat', 'audio', s, s + stim.shape[0] / SAMPLE_RATE,
                                    name, series='repeat0', index=k, target=(k == 0)))
            s = t + 1.0 + repeats * repeat_gap_s
            world.add_sound(s, changed, 0.6)
            events.append(Event('changed', 'audio', s, s + changed.shape[0] / SAMPLE_RATE,
                                'clap', series='repeat0', index=repeats))
            t += block_s
            continue
        s = t + 1.0 + float(rng.uniform(0.0, 1.5))
        if item == 'novelty':
            name = objects.pop(0) if objects else 'astronaut'
            side = int(rng.integers(70, 111))
            obj = _photo(name)
            crop = min(obj.shape[0], obj.shape[1])
            oy0, ox0 = (obj.shape[0] - crop) // 2, (obj.shape[1] - crop) // 2
            obj = cv2.resize(obj[oy0:oy0 + crop, ox0:ox0 + crop], (side, side),
                             interpolation=cv2.INTER_AREA).astype(np.float32)
            w, h = world.size
            ox = int(rng.integers(0, w - side))
            oy = int(rng.integers(0, h - side))
            dur = float(rng.uniform(2.5, 3.5))
            world.objects.append((s, s + dur, obj, ox, oy))
            events.append(Event('novelty', 'vision', s, s + dur, f'object:{name}'))
        elif item == 'surprise':
            dur = float(rng.uniform(2.0, 3.0))
            world.lights.append((s, s + dur, float(rng.uniform(0.35, 0.5))))
            events.append(Event('surprise', 'vision', s, s + dur, 'lights_dim'))
        elif item == 'arousal_speech':
            phrase = phrases.pop(0) if phrases else 'watch out'
            x = speech(phrase)
            world.add_sound(s, x, 0.7)
            events.append(Event('arousal', 'audio', s, s + x.shape[0] / SAMPLE_RATE,
                                f'speech:{phrase}'))
        elif item == 'arousal_bump':
            world.add_bump(s)
            events.append(Event('arousal', 'imu', s, s + 0.15, 'bump'))
        elif item == 'ego_motion':
            world.add_rotation(s, 1.6, 0.9, visual=True, there_and_back=True)
            events.append(Event('arousal', 'imu', s, s + 1.6, 'ego_rotation'))
        elif item == 'conflict':
            world.add_rotation(s, 1.6, 1.2, visual=False, there_and_back=True)
            events.append(Event('conflict', 'imu', s, s + 1.6, 'rotation_still_image'))
        t += slot_s
    return events


def _plan_reward(world: _World, rng: np.random.Generator, warmup: float, duration: float,
                 slot_s: float, phases: tuple[int, int, int]) -> list[Event]:
    stim_a = speech('snack time')
    stim_b = chirp(500.0, 900.0)
    events: list[Event] = []
    t = warmup
    for phase, n in zip(('baseline', 'training', 'extinction'), phases):
        for k in range(n):
            for label in rng.permutation(2):
                s = t + float(rng.uniform(0.0, 0.5))
                x = stim_a if label == 0 else stim_b
                world.add_sound(s, x, 0.6)
                kind = 'reward_a' if label == 0 else 'reward_b'
                events.append(Event(kind, 'audio', s, s + x.shape[0] / SAMPLE_RATE,
                                    'speech:snack time' if label == 0 else 'chirp',
                                    series=kind, index=len([e for e in events
                                                            if e.kind == kind]),
                                    target=False, phase=phase))
                if phase == 'training' and label == 0:
                    world.rewards.append((s + 0.8, 1.0))
                t += slot_s / 2
    return events


def calm_spans(duration: float, warmup: float, events: list[Event]) -> list[tuple[float, float]]:
    """The calm (start, end) spans of a scene: after the warm-up, away from every event (PRE_S
    before its start to SETTLE_S after its end); spans of 50 ms or less are dropped."""
    busy = sorted((e.start - PRE_S, e.end + SETTLE_S) for e in events)
    calm, t = [], warmup
    for b0, b1 in busy:
        if b0 > t:
            calm.append((t, b0))
        t = max(t, b1)
    if duration > t:
        calm.append((t, duration))
    return [(a, b) for a, b in calm if b - a > 0.05]


def make_scenario(out_bag: Path, seed: int, duration_s: float = 150.0, *,
                  program: str = 'standard', camera_hz: float = 10.0, imu_hz: float = 100.0,
                  size: tuple[int, int] = (224, 224), warmup_s: float = 8.0,
                  slot_s: float = 8.0, repeats: int = 10, repeat_gap_s: float = 5.0,
                  reward_phases: tuple[int, int, int] = (5, 10, 10),
                  progress: Callable[[float, float | None], None] | None = None
                  ) -> 'ScenarioLabels':
    """Write a labelled scenario bag (MCAP) and its labels JSON.

    Args:
        out_bag: bag folder to create (must not exist).
        seed: everything random (layout, objects, phrases, noise) derives from it.
        duration_s: length (s); 'standard' needs about 80 s for the repeat block.
        program: 'standard' or 'reward' (see module docstring).
        camera_hz: camera frame rate.
        imu_hz: IMU rate.
        size: camera (width, height).
        warmup_s: calm start the scorer ignores (statistics warm up).
        slot_s: time per event slot.
        repeats: repeated stimuli in the repeat block.
        repeat_gap_s: time between repeats.
        reward_phases: A/B pairs in baseline, training, extinction ('reward' program; the
            duration is extended to fit them).
        progress: called with (seconds of the scene written, its length) as frames are
            rendered (a progress bar).

    Returns:
        The labels (also written to `labels_path(out_bag)`).

    Raises:
        ScenarioError: bad arguments, missing espeak-ng, or the bag exists.
    """
    if program not in ('standard', 'reward'):
        raise ScenarioError(f"unknown scenario program '{program}' (standard, reward)")
    if duration_s <= warmup_s:
        raise ScenarioError('duration_s must exceed warmup_s')
    out_bag = Path(out_bag)
    rng = np.random.default_rng(seed)
    width, height = size
    if program == 'reward':
        duration_s = max(duration_s, warmup_s + sum(reward_phases) * slot_s + 2.0)
    panorama, pano_names = _build_panorama(rng, height)
    n_audio = int(duration_s * SAMPLE_RATE) // FRAME_SAMPLES * FRAME_SAMPLES
    n_imu = int(duration_s * imu_hz)
    noise_rms = 10 ** (float(rng.uniform(-58.0, -52.0)) / 20.0)
    audio = rng.normal(0.0, noise_rms, size=n_audio).astype(np.float32)
    # A faint mains hum makes the room less white.
    t_a = np.arange(n_audio) / SAMPLE_RATE
    audio += (0.5 * noise_rms * np.sin(2 * np.pi * 100.0 * t_a)).astype(np.float32)
    world = _World(duration=duration_s, camera_hz=camera_hz, imu_hz=imu_hz, size=size,
                   panorama=panorama, pan0=float((panorama.shape[1] - width) / 2),
                   px_per_rad=width / 1.05, rng=rng, audio=audio,
                   gyro_z=np.zeros(n_imu), visual_rate=np.zeros(n_imu),
                   accel_extra=np.zeros((n_imu, 3)), pano_names=pano_names)
    if program == 'standard':
        events = _plan_standard(world, rng, warmup_s, duration_s, slot_s, repeat_gap_s,
                                repeats)
        last = max((e.end for e in events), default=0.0)
        if last > duration_s:
            # The repeat block always comes last: its labels would lie past the bag's end.
            raise ScenarioError(f'the standard program needs at least {math.ceil(last)} s '
                                f'(warm-up and the repeat block end at {last:.1f} s), not '
                                f'{duration_s:g}')
    else:
        events = _plan_reward(world, rng, warmup_s, duration_s, slot_s, reward_phases)
    events = [Event(**{**asdict(e), 'start': T0 + e.start, 'end': T0 + e.end})
              for e in events]
    labels = ScenarioLabels(
        seed=seed, program=program, duration_s=duration_s, start=T0, warmup_s=warmup_s,
        events=sorted(events, key=lambda e: e.start),
        calm=[(T0 + a, T0 + b) for a, b in calm_spans(duration_s, warmup_s,
                                                   [Event(**{**asdict(e),
                                                             'start': e.start - T0,
                                                             'end': e.end - T0})
                                                    for e in events])],
        settings={'camera_hz': camera_hz, 'imu_hz': imu_hz, 'size': list(size),
                  'panorama': pano_names, 'noise_rms': noise_rms,
                  'rewards': [[T0 + a, v] for a, v in world.rewards]})
    try:
        writer = Writer(out_bag, version=9, storage_plugin=StoragePlugin.MCAP)
        with writer:
            _write(writer, world, progress or (lambda done, total: None))
    except WriterError as err:
        raise ScenarioError(f'cannot write scenario bag {out_bag}: {err}') from err
    labels_path(out_bag).write_text(json.dumps(labels.to_json(), indent=1))
    return labels


def scene_header(ts: Any, t: float, frame_id: str) -> Any:
    """A std_msgs/Header (of typestore ts) stamped at scene time t (seconds after T0)."""
    Header = ts.types['std_msgs/msg/Header']
    Time = ts.types['builtin_interfaces/msg/Time']
    ns = int(round((T0 + t) * 1e9))
    return Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
                  frame_id=frame_id)


def _write(writer: Any, world: _World,
           progress: Callable[[float, float | None], None]) -> None:
    ts = typestore()
    Image = ts.types['sensor_msgs/msg/Image']
    AudioFrame = ts.types['sage_interfaces/msg/AudioFrame']
    Imu = ts.types['sensor_msgs/msg/Imu']
    Reward = ts.types['sage_interfaces/msg/Reward']
    Quat = ts.types['geometry_msgs/msg/Quaternion']
    Vec3 = ts.types['geometry_msgs/msg/Vector3']
    conns = {
        'camera': writer.add_connection(CAMERA_TOPIC, Image.__msgtype__, typestore=ts),
        'audio': writer.add_connection(AUDIO_TOPIC, AudioFrame.__msgtype__, typestore=ts),
        'imu': writer.add_connection(IMU_TOPIC, Imu.__msgtype__, typestore=ts),
        'reward': writer.add_connection(REWARD_TOPIC, Reward.__msgtype__, typestore=ts),
    }
    width, height = world.size
    pcm = (np.clip(world.audio, -1.0, 1.0) * 32767.0).astype('<i2')
    n_frames = pcm.shape[0] // FRAME_SAMPLES
    n_cam = int(world.duration * world.camera_hz)
    dt_imu = 1.0 / world.imu_hz
    pan = world.pan0 + np.cumsum(world.visual_rate) * dt_imu * world.px_per_rad
    rng = world.rng
    accel_noise = rng.normal(0.0, 0.03, size=(world.gyro_z.shape[0], 3))
    gyro_noise = rng.normal(0.0, 0.004, size=(world.gyro_z.shape[0], 3))
    zero9 = np.zeros(9)
    cov = np.zeros(9)
    cov[0] = -1.0  # no orientation estimate

    def schedule() -> Iterator[tuple[float, int, int]]:
        items = [(i / world.camera_hz, 0, i) for i in range(n_cam)]
        items += [(i * FRAME_SAMPLES / SAMPLE_RATE, 1, i) for i in range(n_frames)]
        items += [(i * dt_imu, 2, i) for i in range(world.gyro_z.shape[0])]
        items += [(t, 3, i) for i, (t, _) in enumerate(world.rewards)]
        return iter(sorted(items))

    for t, kind, i in schedule():
        ns = int(round((T0 + t) * 1e9))
        if kind == 0:
            progress(t, world.duration)
            k = min(int(t * world.imu_hz), pan.shape[0] - 1)
            frame = _render(world, t, float(pan[k]))
            msg = Image(header=scene_header(ts, t, 'camera'), height=height, width=width,
                        encoding='rgb8', is_bigendian=0, step=width * 3,
                        data=np.frombuffer(frame.tobytes(), dtype=np.uint8))
            writer.write(conns['camera'], ns, ts.serialize_cdr(msg, Image.__msgtype__))
        elif kind == 1:
            chunk = pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]
            msg = AudioFrame(header=scene_header(ts, t, 'mic'), sample_rate=SAMPLE_RATE,
                             channels=1, encoding='S16LE',
                             data=np.frombuffer(chunk.tobytes(), dtype=np.uint8))
            writer.write(conns['audio'], ns, ts.serialize_cdr(msg, AudioFrame.__msgtype__))
        elif kind == 2:
            a = np.array([0.0, 0.0, GRAVITY]) + world.accel_extra[i] + accel_noise[i]
            w = np.array([0.0, 0.0, world.gyro_z[i]]) + gyro_noise[i]
            msg = Imu(header=scene_header(ts, t, 'imu'),
                      orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0), orientation_covariance=cov,
                      angular_velocity=Vec3(x=float(w[0]), y=float(w[1]), z=float(w[2])),
                      angular_velocity_covariance=zero9,
                      linear_acceleration=Vec3(x=float(a[0]), y=float(a[1]), z=float(a[2])),
                      linear_acceleration_covariance=zero9)
            writer.write(conns['imu'], ns, ts.serialize_cdr(msg, Imu.__msgtype__))
        else:
            msg = Reward(header=scene_header(ts, t, ''), value=float(world.rewards[i][1]),
                         source='scenario')
            writer.write(conns['reward'], ns, ts.serialize_cdr(msg, Reward.__msgtype__))


# ---------------------------------------------------------------------------- scoring

def read_decisions(path: Path) -> list[dict[str, Any]]:
    """Read a decisions JSONL file.

    Raises:
        ScenarioError: the file cannot be read or a line is not a decision.
    """
    out = []
    try:
        with Path(path).open() as fh:
            for number, line in enumerate(fh, 1):
                line = line.strip()
                if line:
                    d = json.loads(line)
                    if not isinstance(d, dict) or not {'stamp', 'modality', 'attend'} <= set(d):
                        raise ValueError(f'line {number} is not a decision')
                    out.append(d)
    except (OSError, ValueError) as err:
        raise ScenarioError(f'cannot read decisions {path}: {err}') from err
    return out


def peak(decisions: list[dict[str, Any]], modality: str, t0: float, t1: float,
          key: str = 'salience') -> float:
    """The highest `key` of a modality's decisions stamped t0..t1 (0 when there is none)."""
    vals = [d[key] for d in decisions if d['modality'] == modality and t0 <= d['t'] <= t1]
    return max(vals) if vals else 0.0


def _mean(decisions: list[dict[str, Any]], modality: str, t0: float, t1: float) -> float:
    vals = [d['salience'] for d in decisions if d['modality'] == modality and t0 <= d['t'] <= t1]
    return float(np.mean(vals)) if vals else 0.0


def check_decisions_fit(decisions: list[dict[str, Any]], labels: ScenarioLabels) -> None:
    """Refuse decisions that cannot have been made from the scene the labels describe.

    Every decision must be stamped within the scene (plus STAMP_SLACK_S), and the decisions
    must span every target event (a cut or foreign file would score misses, not the scene).

    Raises:
        ScenarioError: no decisions, a stamp outside the scene, or events left uncovered.
    """
    if not decisions:
        raise ScenarioError('no decisions to score')
    t0, end = labels.start, labels.start + labels.duration_s
    stamps = [float(d['stamp']) for d in decisions]
    outside = [t for t in stamps if not t0 - STAMP_SLACK_S <= t <= end + STAMP_SLACK_S]
    if outside:
        raise ScenarioError(
            f'{len(outside)} of {len(stamps)} decisions are stamped outside the scene '
            f'({t0:.3f} .. {end:.3f}; the first at {outside[0]:.3f}): they were not made '
            'from this bag')
    targets = [e.start for e in labels.events if e.target]
    first, last = min(stamps), max(stamps)
    if targets and (first > min(targets) or last < max(targets)):
        raise ScenarioError(
            f'the decisions span {first - t0:.1f} .. {last - t0:.1f} s of the scene but its '
            f'events lie at {min(targets) - t0:.1f} .. {max(targets) - t0:.1f} s: they were '
            'made from another or a cut bag')


def score_decisions(decisions_jsonl: Path | list[dict[str, Any]],
                    labels: ScenarioLabels | Path, *,
                    audio_window_s: float = AUDIO_WINDOW_S,
                    bag: Path | None = None) -> dict[str, Any]:
    """Score a replay's decisions against a scenario's labels.

    First checks that the decisions belong to the scene: their stamps (`check_decisions_fit`)
    and, given `bag` and a decisions file, the bag the replay recorded beside the file
    (`sage_eval.provenance.check_source`); the verdict is the report's 'source'.

    Each decision is placed at its stamp, except audio, placed at stamp + audio_window_s (its
    window's end: the first window that contains a sound ends just after the sound starts).

    - recall: fraction of target events with at least one attended input (any modality)
      within [start - 0.05 s, start + 1 s] (1.5 s for conflict);
    - false_alarms_per_min: alarms in calm periods per minute of calm, an alarm being a run
      of attended inputs with gaps below 1 s;
    - habituation_drop: 1 - mean peak salience of the last three repeats / mean peak of the
      first two (peak = max salience of the stimulus modality within 1 s of the repeat's
      start);
    - reward program: per phase, the salience of A and B (mean over the stimulus modality's
      inputs within 1 s of each start), its late half, the peak reward axis, and A's gain
      over B relative to the baseline phase.

    Returns:
        JSON-able dict of the figures above and their details.

    Raises:
        ScenarioError: unreadable labels or decisions, or decisions from another bag.
    """
    if not isinstance(labels, ScenarioLabels):
        labels = load_labels(Path(labels))
    source = SourceCheck('not checked', 'no bag given to check the decisions against')
    if isinstance(decisions_jsonl, list):
        decisions = decisions_jsonl
    else:
        if bag is not None:
            source = check_source(Path(decisions_jsonl), Path(bag))
        decisions = read_decisions(Path(decisions_jsonl))
    check_decisions_fit(decisions, labels)
    decisions = [{**d, 't': d['stamp'] + (audio_window_s if d['modality'] == 'audio' else 0.0)}
                 for d in decisions]
    decisions.sort(key=lambda d: (d['t'], d['modality']))
    attended = [d for d in decisions if d['attend']]
    att_stamps = np.array([d['t'] for d in attended])

    def detected(e: Event) -> bool:
        hi = e.start + DETECT_S.get(e.kind, DEFAULT_DETECT_S)
        return bool(np.any((att_stamps >= e.start - 0.05) & (att_stamps <= hi)))

    targets = [e for e in labels.events if e.target]
    per_kind: dict[str, list[bool]] = {}
    missed = []
    for e in targets:
        hit = detected(e)
        per_kind.setdefault(e.kind, []).append(hit)
        if not hit:
            missed.append({'kind': e.kind, 'name': e.name, 'start': e.start})
    calm_s = sum(b - a for a, b in labels.calm)
    alarms, last = [], -math.inf
    for d in attended:
        if any(a <= d['t'] < b for a, b in labels.calm):
            if d['t'] - last > ALARM_GAP_S:
                alarms.append({'stamp': d['stamp'], 'modality': d['modality'],
                               'salience': d['salience']})
            last = d['t']
    out: dict[str, Any] = {
        'program': labels.program, 'seed': labels.seed, 'source': source.verdict,
        'source_note': source.note,
        'inputs': len(decisions),
        'attended': len(attended), 'targets': len(targets),
        'recall': (sum(sum(v) for v in per_kind.values()) / len(targets)) if targets else None,
        'recall_by_kind': {k: sum(v) / len(v) for k, v in sorted(per_kind.items())},
        'missed': missed, 'calm_minutes': calm_s / 60.0,
        'false_alarms': len(alarms),
        'false_alarms_per_min': len(alarms) / (calm_s / 60.0) if calm_s > 0 else None,
        'alarms': alarms[:50],
    }
    series: dict[str, list[Event]] = {}
    for e in labels.events:
        if e.kind == 'repeat':
            series.setdefault(e.series, []).append(e)
    hab = {}
    for name, evs in series.items():
        evs = sorted(evs, key=lambda e: e.index)
        peaks = [peak(decisions, e.modality, e.start - 0.05, e.start + DEFAULT_DETECT_S)
                 for e in evs]
        changed = [e for e in labels.events if e.kind == 'changed' and e.series == name]
        entry: dict[str, Any] = {'peaks': peaks}
        if len(peaks) >= 5 and peaks[0] + peaks[1] > 0:
            # Peaks vary with where a sound falls in the audio windows: compare the mean of
            # the last three repeats with the mean of the first two.
            entry['drop'] = 1.0 - float(np.mean(peaks[-3:])) / float(np.mean(peaks[:2]))
        if changed:
            c = changed[0]
            entry['changed_peak'] = peak(decisions, c.modality, c.start - 0.05,
                                          c.start + DEFAULT_DETECT_S)
            entry['changed_detected'] = detected(c)
        hab[name] = entry
    if hab:
        out['habituation'] = hab
        drops = [h['drop'] for h in hab.values() if 'drop' in h]
        out['habituation_drop'] = min(drops) if drops else None
    if labels.program == 'reward':
        # Salience of a stimulus = mean salience of its modality's inputs within 1 s of its
        # start (all the audio windows that hold it), so a gain on every window counts.
        table: dict[str, dict[str, float]] = {}
        for phase in ('baseline', 'training', 'extinction'):
            row = {}
            for kind in ('reward_a', 'reward_b'):
                evs = [e for e in labels.events if e.kind == kind and e.phase == phase]
                sal = [_mean(decisions, e.modality, e.start - 0.05, e.start + 1.0)
                       for e in evs]
                rew = [peak(decisions, e.modality, e.start - 0.05, e.start + 1.0, 'reward')
                       for e in evs]
                late = sal[len(sal) // 2:]
                row[f'{kind}_salience'] = float(np.mean(sal)) if sal else 0.0
                row[f'{kind}_salience_late'] = float(np.mean(late)) if late else 0.0
                row[f'{kind}_reward_axis'] = float(np.mean(rew)) if rew else 0.0
            row['a_minus_b'] = row['reward_a_salience'] - row['reward_b_salience']
            row['a_minus_b_late'] = (row['reward_a_salience_late']
                                     - row['reward_b_salience_late'])
            table[phase] = row
        base = table['baseline']['a_minus_b']
        for phase in ('training', 'extinction'):
            # The learned part: A's advantage over B beyond what it was before any reward.
            table[phase]['gain_over_baseline'] = table[phase]['a_minus_b'] - base
            table[phase]['gain_over_baseline_late'] = table[phase]['a_minus_b_late'] - base
        out['reward'] = table
    return out
