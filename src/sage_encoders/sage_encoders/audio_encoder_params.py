"""Parameters of the audio encoder node (pure module: the launcher imports it)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sage_common.params import ParamSpec
from sage_common.preview_formats import AUDIO_CODECS, GSM_RATE

from sage_encoders.common_params import (irp_params, models_params, runtime_params,
                                         training_input_params, validate_runtime)

# The microphone's AudioFrame block (32 ms at 16 kHz): window hops are whole frames.
FRAME_SAMPLES = 512
# STFT hop 256 x encoder stride 4: windows must split into whole code columns.
WINDOW_QUANTUM = 1024

PARAMS: tuple[ParamSpec, ...] = runtime_params() + irp_params(9, 4.0) + (
    ParamSpec('sample_rate', 16000, 'expected AudioFrame sample rate (Hz); other rates are '
              'rejected (the model was trained at 16 kHz)', 16000, 16000, read_only=True),
    ParamSpec('window_samples', 16384, 'samples per encoded window (16384 = 1.024 s -> '
              '64x64 log-mel -> 16x16 codes)', 4096, 65536, read_only=True),
    ParamSpec('hop_samples', 4096, 'samples between window starts, a multiple of the 512 '
              'sample AudioFrame (4096 = 256 ms)', 512, 65536, read_only=True),
    ParamSpec('gap_tolerance', 0.1, 'a stamp jump larger than this (s) versus the samples '
              'received restarts the window buffer; a smaller one of half a frame or more (a '
              'lost or late frame) keeps every sample on its stamp: lost samples are filled '
              'in with the newest ones repeated, late ones dropped', 0.001, 10.0),
    ParamSpec('frame_queue_depth', 64, 'AudioFrames the subscription holds while the node '
              'encodes (best effort; 64 = 2 s of 32 ms frames, so a stall of a loaded core '
              'or the first model load loses none)', 1, 10000, read_only=True),
    ParamSpec('preview.seconds', 0.5, 'length of the preview clip kept with stored experiences '
              '(s, a WAV file)', 0.0, 1.0),
    ParamSpec('preview.codec', 'ima_adpcm', 'codec of the preview clip: ima_adpcm (4-bit, '
              '2,108 B per 0.5 s at 8 kHz) or gsm610 (the GSM phone speech codec, 906 B per '
              '0.5 s, 8 kHz only; speech stays clear, other sounds lose detail)',
              choices=tuple(AUDIO_CODECS)),
    ParamSpec('preview.rate', 8000, 'sample rate of the preview clip (16000 or 8000 Hz)',
              8000, 16000),
    ParamSpec('voice.enabled', True, "feature 'voice': the speech probability of the newest "
              'hop (Silero VAD), which SNARC uses to tell an utterance from room noise',
              read_only=True),
    ParamSpec('voice.model', '', "Silero VAD sequence ONNX file ('' = the one in the "
              'silero-vad wheel)', read_only=True),
    ParamSpec('voice.denoise.enabled', True, "the room's steady noise (fan, vent, hum) is "
              'subtracted from the spectrum before the voice detector hears it (a phrase as '
              'loud as a fan is sure within a second, where without it some never are)',
              read_only=True),
    ParamSpec('voice.denoise.over', 8.0, 'multiple of the learnt noise power subtracted from '
              "each bin (more takes the room's ripple too: phrases after a vent are sure "
              'sooner)', 0.0, 10.0, read_only=True),
    ParamSpec('voice.denoise.floor', 0.1, 'smallest gain a bin keeps (fraction of its '
              'magnitude; no holes that could sound like a voice)', 0.0, 1.0, read_only=True),
    ParamSpec('voice.denoise.tau_s', 2.5, 'time constant (s) of the noise spectrum rising to a '
              'louder room (it falls ten times faster to a quieter one)', 0.1, 600.0,
              read_only=True),
    ParamSpec('voice.denoise.gate', 0.3, 'speech probability from which a hop is not learnt '
              'as the room', 0.0, 1.0, read_only=True),
    ParamSpec('voice.denoise.makeup_db', 18.0, 'gain (dB) on what the gate leaves, limited to '
              'full scale: without the room a soft voice is quieter, and the detector scores '
              'a quiet voice lower', 0.0, 40.0, read_only=True),
) + training_input_params() + models_params()


def validate(values: Mapping[str, Any]) -> list[str]:
    """Cross-field rules: hop aligned to AudioFrames, window to code columns."""
    errors = validate_runtime(values)
    hop, window = int(values['hop_samples']), int(values['window_samples'])
    if hop % FRAME_SAMPLES:
        errors.append(f'hop_samples {hop} is not a multiple of {FRAME_SAMPLES}')
    if hop > window:
        errors.append(f'hop_samples {hop} is larger than window_samples {window}')
    if window % WINDOW_QUANTUM:
        errors.append(f'window_samples {window} is not a multiple of {WINDOW_QUANTUM}')
    if int(values['preview.rate']) not in (8000, 16000):
        errors.append('preview.rate must be 8000 or 16000')
    if values['preview.codec'] == 'gsm610' and int(values['preview.rate']) != GSM_RATE:
        errors.append(f'preview.codec gsm610 takes preview.rate {GSM_RATE} only')
    return errors
