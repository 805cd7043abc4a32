"""The microphone's `audio_common` backend: both audio_common message families, decoded.

audio_common_msgs changed shape between its releases, under one package name:

- the Humble-era releases (audio_capture, 0.3.x): AudioData {uint8[] data}, the bytes of
  interleaved PCM, on `audio` and, stamped, AudioDataStamped {Header header, AudioData audio}
  on `audio_stamped`; what the bytes are is told once by AudioInfo {uint8 channels,
  uint32 sample_rate, string sample_format (GStreamer names: S16LE, F32LE, ...),
  uint32 bitrate, string coding_format (wave or mp3)} on `audio_info`;
- the 4.x releases (audio_capturer_node): AudioStamped {Header header, Audio audio} with
  Audio {AudioData audio_data, AudioInfo info}, where AudioData holds one typed array
  (float32_data, int32_data, int16_data, int8_data or uint8_data, interleaved) and AudioInfo
  {int32 format (a PortAudio sample format flag), int32 channels, int32 rate, int32 chunk}
  travels with every message.

Both come out as (n, channels) float32 blocks at their own rate; audio_core.AudioPipeline mixes
them to mono and resamples them to SAGE's AudioFrame. Pure (no rclpy): fields, not messages.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sage_sensors.errors import StreamError

#: PortAudio sample format flags (portaudio.h) -> (AudioData array field, full scale, offset).
PORTAUDIO_FORMATS: dict[int, tuple[str, float, float]] = {
    1: ('float32_data', 1.0, 0.0),              # paFloat32
    2: ('int32_data', 2147483648.0, 0.0),       # paInt32
    8: ('int16_data', 32768.0, 0.0),            # paInt16
    16: ('int8_data', 128.0, 0.0),              # paInt8
    32: ('uint8_data', 128.0, 128.0),           # paUInt8 (offset binary)
}
#: Array fields of the 4.x AudioData, tried in this order when the format flag is unknown.
ARRAY_FIELDS = ('int16_data', 'float32_data', 'int32_data', 'int8_data', 'uint8_data')


def decode_audio_stamped(audio: Any) -> tuple[np.ndarray, int]:
    """Decode a 4.x audio_common Audio (the `audio` field of AudioStamped).

    Args:
        audio: anything with audio_data.{float32,int32,int16,int8,uint8}_data and
            info.{format, channels, rate}.

    Returns:
        (samples (n, channels) float32 in [-1, 1], sample rate in Hz).

    Raises:
        StreamError: a rate or channel count that is not positive, a format without data, or
            samples that are not whole frames.
    """
    info = audio.info
    rate, channels, flag = int(info.rate), int(info.channels), int(info.format)
    if rate <= 0:
        raise StreamError(f'audio_common AudioInfo rate {rate} is not positive')
    if channels <= 0:
        raise StreamError(f'audio_common AudioInfo channels {channels} is not positive')
    data = audio.audio_data
    known = PORTAUDIO_FORMATS.get(flag)
    if known is not None:
        field, scale, offset = known
        raw = np.asarray(getattr(data, field))
    else:       # a flag this table does not know: the one array that holds samples
        filled = [f for f in ARRAY_FIELDS if len(getattr(data, f))]
        if len(filled) != 1:
            raise StreamError(f'audio_common AudioInfo format {flag} is not a PortAudio '
                              'sample format SAGE reads (1, 2, 8, 16, 32)')
        field = filled[0]
        scale, offset = next((s, o) for f, s, o in PORTAUDIO_FORMATS.values() if f == field)
        raw = np.asarray(getattr(data, field))
    if raw.size == 0:
        others = [f for f in ARRAY_FIELDS if f != field and len(getattr(data, f))]
        if others:
            raise StreamError(f'audio_common format {flag} says {field}, but the samples '
                              f'are in {others[0]}')
        return np.zeros((0, channels), np.float32), rate
    if raw.size % channels:
        raise StreamError(f'{raw.size} audio_common samples are not whole frames of '
                          f'{channels} channels')
    samples = (raw.astype(np.float32) - np.float32(offset)) / np.float32(scale)
    return samples.reshape(-1, channels), rate
