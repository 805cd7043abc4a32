"""espeak-ng as a function: text in, mono float32 samples at espeak's own rate out.

The sample scene, the encoders' training data and the labelled scenarios all speak with
espeak-ng; each resamples and normalises the result its own way (and keeps doing so, so their
sounds stay byte-identical), but finding the program, running it and reading its WAV is here.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess

import numpy as np
import soundfile as sf

from sage_common.errors import SageError

#: The program ($SAGE_ESPEAK overrides; otherwise the Debian path, else whatever is on PATH).
DEFAULT_EXE = '/usr/bin/espeak-ng'
TIMEOUT_S = 30.0


class SpeechError(SageError):
    """espeak-ng is missing or failed."""


def espeak_exe() -> str | None:
    """Path of espeak-ng, or None when it is not installed."""
    wanted = os.environ.get('SAGE_ESPEAK', DEFAULT_EXE)
    return shutil.which(wanted) or shutil.which('espeak-ng')


def espeak(text: str, voice: str = 'en', speed: int = 150,
           pitch: int | None = None) -> tuple[np.ndarray, int]:
    """Speak text: (mono float32 samples, sample rate of espeak-ng's output).

    Raises:
        SpeechError: espeak-ng is missing or fails.
    """
    exe = espeak_exe()
    if exe is None:
        raise SpeechError('espeak-ng not found (apt-get install espeak-ng)')
    cmd = [exe, '-v', voice, '-s', str(int(speed))]
    if pitch is not None:
        cmd += ['-p', str(int(pitch))]
    try:
        proc = subprocess.run([*cmd, '--stdout', text], capture_output=True, check=False,
                              timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        raise SpeechError(f'espeak-ng failed for {text!r}: {err}') from err
    if proc.returncode != 0 or not proc.stdout:
        raise SpeechError(f'espeak-ng failed for {text!r}: '
                          f'{proc.stderr.decode(errors="replace").strip()}')
    audio, rate = sf.read(io.BytesIO(proc.stdout), dtype='float32', always_2d=True)
    return audio.mean(axis=1).astype(np.float32), int(rate)
