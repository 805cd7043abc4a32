"""Microphone sources: file (WAV/FLAC, loop, pace, vanish), synthetic, device, audio_common."""
import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from sage_common.params import resolve

from sage_sensors.audio_backends import (AudioCommonAudio, DeviceAudio, FileAudio,
                                         block_samples, make_microphone)
from sage_sensors.audio_core import AudioPipeline
from sage_sensors.errors import SensorError, StreamError
from sage_sensors.microphone_params import PARAMS, validate
from sage_sensors.pacing import ClockMap


def values(**kw):
    return resolve(PARAMS, kw, validate)


def tone_file(path, rate, seconds=0.5, channels=1, freq=1000.0):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    sf.write(str(path), np.stack([x] * channels, axis=1), rate)
    return path


def frames_from(source, n_blocks):
    pipe, frames = AudioPipeline(16000, 512), []
    for _ in range(n_blocks):
        frames += pipe.push(source.read())
    return frames


def test_blocks_are_one_frame_when_the_ratio_is_whole_else_a_quarter():
    assert block_samples(16000, 512, 16000) == 512
    assert block_samples(48000, 512, 16000) == 1536
    assert block_samples(44100, 512, 16000) == 353       # ceil(1411.2 / 4)


@pytest.mark.parametrize('suffix,rate,channels', [('wav', 44100, 2), ('flac', 16000, 1),
                                                  ('wav', 48000, 1)])
def test_files_become_16k_mono_frames_of_the_same_tone(tmp_path, suffix, rate, channels):
    path = tone_file(tmp_path / f'tone.{suffix}', rate, channels=channels)
    src = FileAudio(str(path), 512, 16000, loop=True, pace=False, clock=ClockMap(),
                    stop=threading.Event())
    src.open()
    frames = frames_from(src, 70)
    assert len(frames) >= 16 and all(f.sample_rate == 16000 and f.samples == 512
                                     for f in frames)
    audio = np.concatenate([np.frombuffer(f.data, '<i2') for f in frames[:16]]) / 32767
    spectrum = np.abs(np.fft.rfft(audio[512:512 + 4096]))
    assert np.argmax(spectrum) * 16000 / 4096 == pytest.approx(1000, abs=4)
    assert np.max(np.abs(audio[512:])) == pytest.approx(0.5, abs=0.02)
    # fast mode: stamps follow media time, 32 ms apart
    assert np.allclose(np.diff([f.stamp for f in frames]), 0.032, atol=1e-5)


def test_paced_file_blocks_are_stamped_one_block_before_their_tick(tmp_path):
    path = tone_file(tmp_path / 't.wav', 16000, seconds=0.2)
    src = FileAudio(str(path), 512, 16000, True, True, ClockMap(), threading.Event())
    src.open()
    blocks = [src.read() for _ in range(8)]          # 0.256 s: loops once
    assert all(b.samples.shape == (512, 1) for b in blocks)
    assert np.allclose(np.diff([b.t_first for b in blocks]), 0.032, atol=1e-5)


def test_a_file_that_vanishes_raises_a_stream_error_at_the_loop(tmp_path):
    path = tone_file(tmp_path / 't.wav', 16000, seconds=0.05)
    src = FileAudio(str(path), 512, 16000, True, False, ClockMap(), threading.Event())
    src.open()
    os.remove(path)
    with pytest.raises(StreamError, match='missing'):
        for _ in range(5):
            src.read()


def test_the_synthetic_microphone_claps_at_the_scripted_time(samples_dir):
    # Node clock placed 2 s before the clap of some period (scene time 7.0 s when the clock map
    # is made): the first block comes after the samples load, later on a loaded machine, so the
    # blocks are read until they pass the clap (real time: about 2 s).
    period = 20.0 * 90_000_000
    clock = ClockMap(clock=lambda: period + 7.0)
    src = make_microphone(values(backend='synthetic', data_dir=str(samples_dir)), clock,
                          threading.Event())
    peaks: dict[float, float] = {}
    for _ in range(400):
        block = src.read()
        t = round(block.t_first - period, 3)
        peaks[t] = float(np.max(np.abs(block.samples)))
        if t > 9.1:
            break
    assert min(peaks) < 9.0 - 0.1, sorted(peaks)[:3]  # the reads began before the clap
    loud = [t for t, p in sorted(peaks.items()) if p > 0.5]
    # The block holding t = 9.0 s, or the next one when the clap's attack starts right at
    # the end of a block (block starts follow the wall clock to the millisecond).
    assert loud and 9.0 - 0.032 < loud[0] <= 9.0 + 0.032, loud[:3]
    assert min(peaks.values()) < 0.05                     # quiet room before the clap


def test_device_callback_stamps_with_the_adc_time():
    now = [1000.0]
    src = DeviceAudio('', 48000, 1, 512, 16000, ClockMap(clock=lambda: now[0]))
    info = SimpleNamespace(inputBufferAdcTime=5.000, currentTime=5.040)
    src._callback(np.zeros((1536, 1), np.float32), 1536, info, None)
    block = src.read()
    assert block.t_first == pytest.approx(999.96) and block.rate == 48000
    # hosts without ADC times: the block ends now
    src._callback(np.zeros((1536, 1), np.float32), 1536,
                  SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0), None)
    assert src.read().t_first == pytest.approx(1000.0 - 0.032)


def _input_devices():
    try:
        # lazy: sounddevice needs the PortAudio library
        import sounddevice as sd
        return [d for d in sd.query_devices() if d['max_input_channels'] > 0]
    except (OSError, ImportError):
        return []


@pytest.mark.skipif(not _input_devices(), reason='no audio input device (PortAudio)')
def test_a_real_microphone_delivers_blocks():
    src = DeviceAudio('', 0, 1, 512, 16000, ClockMap())
    src.open()
    try:
        assert any(src.read() is not None for _ in range(20))
    finally:
        src.close()


def test_audio_common_blocks_wait_for_info_then_decode():
    src = AudioCommonAudio('audio/audio_stamped', 512, 16000, ClockMap(clock=lambda: 50.0))
    pcm = np.array([16384] * 480, '<i2').tobytes()
    src.push(pcm, 10.0)
    assert src.waiting_for_info == 1 and src.read() is None
    src.set_info(SimpleNamespace(channels=1, sample_rate=48000, sample_format='S16LE',
                                 coding_format='wave'))
    src.push(pcm, 10.0)
    src.push(pcm, 0.0)                      # no stamp: arrival minus duration
    a, b = src.read(), src.read()
    assert a.t_first == 10.0 and a.rate == 48000 and a.samples[0, 0] == 0.5
    assert b.t_first == pytest.approx(50.0 - 0.01)


def test_bad_parameters_fail_at_start_naming_the_parameter(tmp_path):
    with pytest.raises(Exception, match="'frame_samples'"):
        values(frame_samples=-5)
    with pytest.raises(Exception, match="'backend'"):
        values(backend='alsa')
    with pytest.raises(Exception, match="'path'"):
        values(backend='file', path=str(tmp_path / 'none.wav'))
    bad = tmp_path / 'bad.wav'
    bad.write_bytes(b'RIFF not really')
    with pytest.raises(SensorError, match="'path'"):
        make_microphone(values(backend='file', path=str(bad)), ClockMap(), threading.Event())
