"""Audio pipeline: PCM decoding, S16LE encoding, framing and capture stamps."""
from types import SimpleNamespace

import numpy as np
import pytest

from sage_sensors.audio_core import (AudioBlock, AudioPipeline, decode_audio_common,
                                     float_to_s16le, pcm_to_float)
from sage_sensors.errors import StreamError


def test_s16le_encoding_rounds_and_clips():
    data = float_to_s16le(np.array([0.0, 0.5, -1.0, 2.0, -2.0], np.float32))
    assert np.frombuffer(data, '<i2').tolist() == [0, 16384, -32767, 32767, -32768]


def test_pcm_decoding_of_each_format():
    s16 = np.array([0, 16384, -32768], '<i2').tobytes()
    assert pcm_to_float(s16, 'S16LE', 1)[:, 0].tolist() == [0.0, 0.5, -1.0]
    assert pcm_to_float(bytes([128, 255, 0]), 'U8', 1)[:, 0].tolist() == pytest.approx(
        [0.0, 127 / 128, -1.0])
    f32 = np.array([0.25, -0.25], '<f4').tobytes()
    assert pcm_to_float(f32, 'F32LE', 2).tolist() == [[0.25, -0.25]]
    with pytest.raises(StreamError, match='whole number'):
        pcm_to_float(b'\x00\x01\x02', 'S16LE', 1)
    with pytest.raises(StreamError, match='unsupported'):
        pcm_to_float(b'', 'MULAW', 1)


def test_frames_are_512_samples_stamped_at_their_first_sample():
    pipe = AudioPipeline(16000, 512)
    x = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    frames = pipe.push(AudioBlock(x[:1000], 16000, 100.0))
    frames += pipe.push(AudioBlock(x[1000:], 16000, 100.0 + 1000 / 16000))
    assert [f.samples for f in frames] == [512, 512, 512]
    assert [f.stamp for f in frames] == pytest.approx([100.0, 100.032, 100.064])
    first = np.frombuffer(frames[0].data, '<i2')
    assert len(frames[0].data) == 1024
    assert first[0] == round(-0.5 * 32767) and first[511] == round(float(x[511]) * 32767)


def test_stereo_48k_is_mixed_to_mono_and_resampled_to_16k():
    rate = 48000
    t = np.arange(rate) / rate
    left = np.sin(2 * np.pi * 500 * t)
    stereo = np.stack([left, left * 0.0], axis=1).astype(np.float32)    # mono = left / 2
    pipe = AudioPipeline(16000, 512)
    frames = []
    for i in range(0, rate, 1536):
        frames += pipe.push(AudioBlock(stereo[i:i + 1536], rate, 50.0 + i / rate))
    assert len(frames) == 31 and all(f.sample_rate == 16000 for f in frames)
    audio = np.concatenate([np.frombuffer(f.data, '<i2') for f in frames]) / 32767
    assert np.max(np.abs(audio[1000:])) == pytest.approx(0.5, abs=0.01)
    spectrum = np.abs(np.fft.rfft(audio[:8192]))
    assert np.argmax(spectrum) * 16000 / 8192 == pytest.approx(500, abs=2)
    # the filter delay is taken off, so stamps stay at capture time
    assert frames[1].stamp - frames[0].stamp == pytest.approx(0.032)
    assert frames[0].stamp == pytest.approx(50.0 - pipe._resampler.delay_s)


def test_a_gap_in_capture_stamps_re_anchors_the_frames():
    pipe = AudioPipeline(16000, 512)
    z = np.zeros(512, np.float32)
    a = pipe.push(AudioBlock(z, 16000, 10.0))
    b = pipe.push(AudioBlock(z, 16000, 12.0))         # 2 s later: device restarted
    assert a[0].stamp == pytest.approx(10.0) and b[0].stamp == pytest.approx(12.0)
    assert pipe.resyncs == 1


def test_nan_samples_are_refused():
    with pytest.raises(StreamError, match='NaN'):
        AudioPipeline().push(AudioBlock(np.full(512, np.nan, np.float32), 16000, 0.0))


def test_gain_scales_and_levels_are_reported():
    pipe = AudioPipeline(16000, 512, gain=2.0)
    frames = pipe.push(AudioBlock(np.full(512, 0.25, np.float32), 16000, 0.0))
    assert frames[0].peak == pytest.approx(0.5) and frames[0].rms == pytest.approx(0.5)


def test_audio_common_wave_is_decoded_and_mp3_refused():
    info = SimpleNamespace(channels=2, sample_rate=44100, sample_format='S16LE',
                           coding_format='wave', bitrate=0)
    data = np.array([16384, -16384, 0, 8192], '<i2').tobytes()
    samples, rate = decode_audio_common(info, data)
    assert rate == 44100 and samples.tolist() == [[0.5, -0.5], [0.0, 0.25]]
    with pytest.raises(StreamError, match='wave'):
        decode_audio_common(SimpleNamespace(channels=1, sample_rate=16000,
                                            sample_format='S16LE', coding_format='mp3'), b'')
