"""Microphone backends: PortAudio device, audio_common topic, sound file, synthetic scene.

Each source returns AudioBlock(samples, rate, t_first) with t_first the capture time of the
block's first sample, in blocks of at most one output frame, so the pipeline can publish each
frame as soon as its last sample exists (latency about one frame, never blocking longer).
Pure (no rclpy): the audio_common source is fed by the node's subscription through push().
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import math
import os
from pathlib import Path
import queue
import threading
from typing import Any

import numpy as np
import soundfile as sf

from sage_sensors.audio_core import RESYNC_S, AudioBlock, decode_audio_common
from sage_sensors.errors import SensorError, StreamEnded, StreamError
from sage_sensors.pacing import ClockMap, Pacer
from sage_sensors.samples import (AUDIO_RATE, ensure_samples, load_wav_mono, sample_data_dir,
                                  speak)
from sage_sensors.scene import clap, render_audio_track
from sage_sensors.timeline import PHRASE, Timeline, timeline_from_params


def block_samples(src_rate: int, frame_samples: int, out_rate: int) -> int:
    """Source samples per block: one output frame when the ratio is whole, else a quarter.

    A quarter frame keeps a finished frame from waiting more than a quarter frame for the
    block that completes it.
    """
    exact = frame_samples * src_rate / out_rate
    if float(exact).is_integer():
        return int(exact)
    return max(1, int(math.ceil(exact / 4)))


class SyntheticAudio:
    """Plays one rendered period of the scene in a loop, phase-locked to the timeline.

    Stamps: a block is "captured" during the period that ends at its scheduled tick, so
    t_first = tick - block duration, and the track position is the timeline phase of t_first.
    """

    reconnectable = False

    def __init__(self, track: np.ndarray, rate: int, block: int, timeline: Timeline,
                 clock: ClockMap, stop: threading.Event) -> None:
        self.name = 'synthetic'
        self._track = np.asarray(track, dtype=np.float32)
        self._rate = rate
        self._block = block
        self._timeline = timeline
        self._clock = clock
        self._pacer = Pacer(block / rate, stop)
        self._pos: int | None = None

    @property
    def dropped(self) -> int:
        return self._pacer.dropped

    def open(self) -> None:
        self._pacer.reset()
        self._pos = None

    def read(self) -> AudioBlock | None:
        dropped_before = self._pacer.dropped
        tick = self._pacer.wait()
        if tick is None:
            return None
        t_first = self._clock.to_clock(tick) - self._block / self._rate
        if self._pos is None or self._pacer.dropped != dropped_before:
            self._pos = int(round(self._timeline.phase(t_first) * self._rate))
        n = len(self._track)
        idx = (self._pos + np.arange(self._block)) % n
        self._pos = (self._pos + self._block) % n
        return AudioBlock(self._track[idx][:, None], self._rate, t_first)

    def close(self) -> None:
        pass


class FileAudio:
    """A WAV/FLAC/OGG file (anything libsndfile reads), looped, paced in real time or fast.

    Paced: t_first = scheduled end of the block minus its duration (as a microphone would).
    Fast: t_first = start + media time.
    """

    reconnectable = False

    def __init__(self, path: str, frame_samples: int, out_rate: int, loop: bool, pace: bool,
                 clock: ClockMap, stop: threading.Event) -> None:
        self.name = f'file:{path}'
        self._path = path
        self._frame = frame_samples
        self._out_rate = out_rate
        self._loop = loop
        self._pace = pace
        self._clock = clock
        self._stop = stop
        self._file: sf.SoundFile | None = None
        self._pacer: Pacer | None = None
        self.rate = 0
        self._block = 0
        self._media = 0
        self._start = 0.0

    @property
    def dropped(self) -> int:
        return self._pacer.dropped if self._pacer is not None else 0

    def _open_file(self) -> None:
        if not os.access(self._path, os.R_OK):
            raise StreamError(f'sound file {self._path} is missing or unreadable')
        try:
            self._file = sf.SoundFile(self._path)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise StreamError(f'cannot decode sound file {self._path}: {err}') from err

    def open(self) -> None:
        self._open_file()
        assert self._file is not None
        self.rate = int(self._file.samplerate)
        self._block = block_samples(self.rate, self._frame, self._out_rate)
        self._pacer = Pacer(self._block / self.rate if self._pace else 0.0, self._stop)
        self._start = self._clock.now()
        self._media = 0

    def _read_samples(self, n: int) -> np.ndarray:
        assert self._file is not None
        try:
            data = self._file.read(n, dtype='float32', always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise StreamError(f'sound file {self._path} is corrupt: {err}') from err
        if len(data) < n:
            if not self._loop:
                if len(data) == 0:
                    raise StreamEnded(f'end of {self._path}')
                return np.asarray(data, dtype=np.float32)
            self._file.close()
            self._open_file()              # reopening notices a file that vanished
            rest = self._file.read(n - len(data), dtype='float32', always_2d=True)
            if len(rest) == 0:
                raise StreamError(f'sound file {self._path} holds no samples')
            data = np.concatenate([data, rest])
        return np.asarray(data, dtype=np.float32)

    def read(self) -> AudioBlock | None:
        assert self._pacer is not None
        tick = self._pacer.wait()
        if tick is None:
            return None
        data = self._read_samples(self._block)
        if self._pace:
            t_first = self._clock.to_clock(tick) - len(data) / self.rate
        else:
            t_first = self._start + self._media / self.rate
        self._media += len(data)
        return AudioBlock(data, self.rate, t_first)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class DeviceAudio:
    """A PortAudio input (sounddevice) by name or index, read through a callback.

    The callback only copies the block and its ADC time into a queue; read() waits on the
    queue for at most one frame, so nothing ever blocks for a second like the old prototype's
    sd.rec(). t_first is the ADC time of the first sample, mapped onto the node clock.
    """

    reconnectable = True

    def __init__(self, device: str, rate: int, channels: int, frame_samples: int,
                 out_rate: int, clock: ClockMap) -> None:
        self.name = f'device:{device or "default"}'
        self._device: Any = int(device) if device.isdigit() else (device or None)
        self._rate_param = rate
        self._channels = channels
        self._frame = frame_samples
        self._out_rate = out_rate
        self._clock = clock
        self._queue: queue.Queue[AudioBlock] = queue.Queue(maxsize=64)
        self._stream: Any = None
        self.rate = rate
        self.dropped = 0
        self._error: str | None = None

    def open(self) -> None:
        try:
            # lazy: sounddevice needs the PortAudio library, only for a real microphone
            import sounddevice as sd
        except OSError as err:        # PortAudio library missing
            raise StreamError(f'PortAudio is not available: {err}') from err
        try:
            info = sd.query_devices(self._device, 'input')
            self.rate = self._rate_param or int(info['default_samplerate'])
            block = block_samples(self.rate, self._frame, self._out_rate)
            self._stream = sd.InputStream(
                device=self._device, samplerate=self.rate, channels=self._channels,
                dtype='float32', blocksize=block, latency='low', callback=self._callback)
            self._stream.start()
        except (ValueError, sd.PortAudioError) as err:
            raise StreamError(f'cannot open audio input {self.name}: {err}') from err
        self._error = None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = self._clock.now()
        if status and status.input_overflow:
            self.dropped += 1
        # PortAudio times are on the stream clock: capture = now - (currentTime - adcTime)
        adc, cur = float(time_info.inputBufferAdcTime), float(time_info.currentTime)
        age = cur - adc if adc > 0 and cur > 0 and 0 <= cur - adc < 1.0 else frames / self.rate
        try:
            self._queue.put_nowait(AudioBlock(indata.copy(), self.rate, now - age))
        except queue.Full:
            self.dropped += 1

    def read(self) -> AudioBlock | None:
        try:
            return self._queue.get(timeout=self._frame / self._out_rate)
        except queue.Empty:
            if self._stream is None or not self._stream.active:
                raise StreamError('audio input stopped') from None
            return None

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close(ignore_errors=True)
            finally:
                self._stream = None


class AudioCommonAudio:
    """Blocks from an audio_common capturer, via push() (Humble era) or push_samples() (4.x).

    The node's subscription callbacks call set_info() and push() for AudioData(Stamped) +
    AudioInfo, or push_samples() with what ros_audio decoded from an AudioStamped; read() hands
    the blocks to the capture thread, waiting at most one frame.
    """

    reconnectable = False

    def __init__(self, topic: str, frame_samples: int, out_rate: int,
                 clock: ClockMap) -> None:
        self.name = f'audio_common:{topic}'
        self._timeout = frame_samples / out_rate
        self._clock = clock
        # 256 blocks: 2.7 s of a 4.x capturer's 512-sample chunks at 48 kHz
        self._queue: queue.Queue[AudioBlock] = queue.Queue(maxsize=256)
        self.info: Any = None
        self.dropped = 0
        self.waiting_for_info = 0
        self.filled = 0          # samples of silence put where driver messages were missing
        self._next: tuple[float, int] | None = None   # (stamp, rate) the next block should have

    def open(self) -> None:
        pass

    def set_info(self, info: Any) -> None:
        """Store the capturer's AudioInfo (latched by audio_capture)."""
        self.info = info

    def push(self, data: bytes, stamp: float) -> None:
        """Decode one AudioData payload; stamp 0 means "unknown" (use arrival - duration).

        Raises:
            StreamError: malformed or compressed audio.
        """
        if self.info is None:
            self.waiting_for_info += 1
            return
        samples, rate = decode_audio_common(self.info, data)
        self.push_samples(samples, rate, stamp)

    def push_samples(self, samples: np.ndarray, rate: int, stamp: float) -> None:
        """Queue decoded (n, channels) samples whose first was captured at stamp (0 = unknown:
        arrival minus their duration)."""
        if samples.shape[0] == 0:
            return
        t_first = stamp if stamp > 0 else self._clock.now() - samples.shape[0] / rate
        hole = self._hole(samples, rate, t_first)
        try:
            if hole is not None:
                self._queue.put_nowait(hole)
            self._queue.put_nowait(AudioBlock(samples, rate, t_first))
        except queue.Full:
            self.dropped += 1
        self._next = (t_first + samples.shape[0] / rate, rate)

    def _hole(self, samples: np.ndarray, rate: int, t_first: float) -> AudioBlock | None:
        """Silence for messages the driver's stamps say are missing, shorter than a resync.

        AudioPipeline counts samples from its anchor and re-anchors only past its resync
        tolerance (RESYNC_S): without the silence, every sample after a lost 10 ms message
        would be stamped 10 ms early. Longer holes re-anchor there; jitter below half a
        message passes as it is.
        """
        if self._next is None or self._next[1] != rate:
            return None
        missing = t_first - self._next[0]
        if not 0.5 * samples.shape[0] / rate < missing <= RESYNC_S:
            return None
        n = int(round(missing * rate))
        self.filled += n
        return AudioBlock(np.zeros((n, samples.shape[1]), np.float32), rate, self._next[0])

    def read(self) -> AudioBlock | None:
        try:
            return self._queue.get(timeout=self._timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        pass


def scene_track(values: Mapping[str, Any], rate: int = AUDIO_RATE) -> np.ndarray:
    """One period of the scene's sound, from the sample phrase (or espeak-ng directly)."""
    folder = Path(str(values.get('data_dir') or '') or sample_data_dir())
    timeline = timeline_from_params(values)
    try:
        phrase = load_wav_mono(folder / 'phrase.wav', rate)
    except SensorError:
        phrase = speak(PHRASE, rate)
    seed = int(values['seed'])
    return render_audio_track(timeline, rate, seed, phrase, clap(rate, seed),
                              float(values['noise_dbfs']))


def make_microphone(values: Mapping[str, Any], clock: ClockMap, stop: threading.Event,
                    log: Callable[[str], None] = print) -> Any:
    """Build and open the configured microphone source.

    Raises:
        SensorError: the backend cannot start (the message names the parameter).
    """
    backend = str(values['backend'])
    frame, out_rate = int(values['frame_samples']), int(values['sample_rate'])
    if backend == 'synthetic':
        track = scene_track(values, out_rate)
        source: Any = SyntheticAudio(track, out_rate, frame, timeline_from_params(values),
                                     clock, stop)
    elif backend == 'file':
        path = str(values['path'])
        if not path:
            path = str(ensure_samples(Path(str(values.get('data_dir') or '')
                                           or sample_data_dir())) / 'scene.wav')
        source = FileAudio(path, frame, out_rate, bool(values['loop']), bool(values['pace']),
                           clock, stop)
    elif backend == 'device':
        source = DeviceAudio(str(values['device']), int(values['capture_rate']),
                             int(values['channels']), frame, out_rate, clock)
    elif backend == 'audio_common':
        source = AudioCommonAudio(str(values['audio_topic']), frame, out_rate, clock)
    else:
        raise SensorError(f"parameter 'backend': unknown microphone backend {backend!r}")
    try:
        source.open()
    except StreamError as err:
        param = {'file': 'path', 'device': 'device'}.get(backend, 'backend')
        raise SensorError(f"parameter '{param}': {err}") from err
    log(f'microphone source: {source.name}')
    return source
