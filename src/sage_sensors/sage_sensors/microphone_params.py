"""Microphone node parameters (pure: the launcher checks profile values with these specs)."""
from __future__ import annotations

from collections.abc import Mapping
import importlib.util
import os
from typing import Any

from sage_common.params import ParamSpec

from sage_sensors.driver_watch import DRIVER_PARAMS
from sage_sensors.source_params import SOURCE_PARAMS
from sage_sensors.timeline import TIMELINE_PARAMS, timeline_from_params

BACKENDS = ('device', 'audio_common', 'file', 'synthetic')
#: audio_common message families: 4.x AudioStamped, Humble-era AudioDataStamped / AudioData.
AUDIO_TYPES = ('auto', 'AudioStamped', 'AudioDataStamped', 'AudioData')

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec('backend', 'synthetic', 'where audio comes from', choices=BACKENDS,
              read_only=True),
    ParamSpec('device', '', 'PortAudio input by name (substring) or index; empty = default',
              read_only=True),
    ParamSpec('capture_rate', 0, 'device sample rate in Hz (0 = the device default; '
              'resampled to sample_rate)', min_value=0, max_value=384000, read_only=True),
    ParamSpec('channels', 1, 'device channels captured (mixed down to mono)', min_value=1,
              max_value=32, read_only=True),
    ParamSpec('path', '', 'WAV/FLAC file for the file backend (empty = the sample scene)',
              read_only=True),
    ParamSpec('audio_topic', '/audio', 'audio_common backend: the capturer\'s topic '
              '(4.x audio_capturer_node: /audio; Humble-era audio_capture: '
              '/audio/audio_stamped, or its unstamped /audio/audio)', read_only=True),
    ParamSpec('audio_type', 'auto', 'audio_common backend: the message family on audio_topic; '
              'auto = the type the topic has on the graph', choices=AUDIO_TYPES,
              read_only=True),
    ParamSpec('info_topic', '/audio/audio_info', 'audio_common backend: the Humble-era '
              'capturer\'s AudioInfo topic (channels, rate, sample format); 4.x messages carry '
              'their own', read_only=True),
    ParamSpec('sample_rate', 16000, 'published sample rate (Hz); sources are resampled',
              min_value=8000, max_value=48000, read_only=True),
    ParamSpec('frame_samples', 512, 'samples per published frame (512 = 32 ms at 16 kHz)',
              min_value=64, max_value=16384, read_only=True),
    ParamSpec('gain', 1.0, 'linear gain before conversion to S16LE (clipped)',
              min_value=0.0, max_value=100.0),
    ParamSpec('frame_id', 'microphone', 'header.frame_id of the frames', read_only=True),
    ParamSpec('hold_s', 0.0, 'seconds of first frames kept until the reader hold_for names '
              'matches, then sent to it at once (the profiles build the audio encoder after '
              'the microphone and set 1: the encoder still gets the first window; its queue '
              'holds 2 s; 0 = none)',
              min_value=0.0, max_value=2.0, read_only=True),
    ParamSpec('hold_for', '', 'node name of the reader the hold_s frames are kept for (the '
              "profiles: audio_encoder; '' = any reader); once hold_s has run out any reader "
              'ends the hold', read_only=True),
    ParamSpec('loop', True, 'file backend: start again at the end', read_only=True),
    ParamSpec('pace', True, 'file backend: real time (true) or as fast as possible (false)',
              read_only=True),
    ParamSpec('seed', 0, 'seed of the synthetic room noise', min_value=0,
              max_value=2**31 - 1, read_only=True),
    ParamSpec('noise_dbfs', -50.0, 'synthetic room noise level (dBFS RMS)', min_value=-120.0,
              max_value=0.0, read_only=True),
) + SOURCE_PARAMS + DRIVER_PARAMS + TIMELINE_PARAMS


def validate(values: Mapping[str, Any]) -> list[str]:
    """Cross-field rules: a readable file, a workable schedule."""
    errors = []
    path = str(values.get('path', ''))
    if values.get('backend') == 'file' and path and not os.access(path, os.R_OK):
        errors.append(f"parameter 'path': sound file {path!r} is missing or unreadable")
    if values.get('backend') == 'audio_common' and \
            importlib.util.find_spec('audio_common_msgs') is None:
        errors.append("parameter 'backend': audio_common needs the audio_common_msgs package")
    errors.extend(timeline_from_params(values).problems())
    return errors
