"""Voice activity of an audio window, from the Silero VAD model the silero-vad wheel ships.

SNARC needs to tell a voice from the room: on recorded scenes the spectral shape of speech a few
dB above a fan is no further from the fan than one impact is from another, while Silero VAD
peaks at 0.38-1.0 on the scenes' recorded phrases and stays below 0.01 through five calm
minutes of hum, fans and vents.

The wheel's "sequence" ONNX graph scores the 512-sample chunks of one hop in one call (about 0.5
ms per 256 ms hop on one x86 core) and hands back its LSTM state, which is carried from hop to
hop: the model needs a few seconds of a room to learn it is not speech (an impact scores up to
0.5 from a fresh state in every window, 0.2 then 0.0 once it has heard the room). A gap in the
stream starts it afresh, as it starts the window buffer. In noise the model is slow to be
sure (a phrase as loud as a fan: up to 0.8 s, or never), so the audio encoder hands it each hop
through a `denoise.SpectralGate` that takes the room's steady spectrum away first and raises
what is left (a soft voice is scored low however clean it is). Only the
data file is used: the silero_vad package itself imports torch and torchaudio, so the wheel
is installed without dependencies and never imported. No rclpy.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from sage_encoders.denoise import SpectralGate
from sage_encoders.errors import ModelError
from sage_encoders.runtime import make_session

SAMPLE_RATE = 16000
CHUNK = 512     # samples per score at 16 kHz
CONTEXT = 64    # samples of the previous chunk each chunk is given
STATE = (1, 1, 128)
MODEL_FILE = 'silero_vad_16k_sequence.onnx'
INSTALL_HINT = 'pip install --no-deps silero-vad (scripts/install.sh does)'


def packaged_model() -> Path | None:
    """The sequence model inside the installed silero-vad wheel (None when not installed)."""
    spec = importlib.util.find_spec('silero_vad')  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / 'data' / MODEL_FILE
        if path.is_file():
            return path
    return None


class VoiceActivity:
    """Speech probability per 512-sample chunk of a 16 kHz stream, state carried across calls."""

    def __init__(self, path: str | Path | None = None, threads: int = 1,
                 gate: SpectralGate | None = None) -> None:
        """Load the model (path None or '': the silero-vad wheel's); `gate` removes the
        room's steady noise before the model hears a hop (None: the raw stream).

        Raises:
            ModelError: the model is missing or does not load.
        """
        model = Path(path) if path else packaged_model()
        if model is None:
            raise ModelError(f'voice activity model not found ({INSTALL_HINT})')
        # The encoders' own session settings; a recurrent net this small stays on the CPU.
        self._session = make_session(model, ['CPUExecutionProvider'], max(1, int(threads)))
        self.path = model
        self.gate = gate
        self.reset()

    def reset(self) -> None:
        """Forget the stream (after a gap): the next chunks start from a fresh state."""
        self._h = np.zeros(STATE, np.float32)
        self._c = np.zeros(STATE, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        if self.gate is not None:
            self.gate.reset()

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability of each whole 512-sample chunk of the stream's next samples
        (float in [-1, 1]; a length that is not a multiple of 512 drops the rest)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        n = x.size // CHUNK
        if n == 0:
            return np.zeros(0, np.float32)
        padded = np.concatenate([self._context, x[:n * CHUNK]])
        rows = np.lib.stride_tricks.sliding_window_view(padded, CHUNK + CONTEXT)[::CHUNK][:n]
        probs, self._h, self._c = self._session.run(
            None, {'input': np.ascontiguousarray(rows), 'h': self._h, 'c': self._c})
        self._context = padded[-CONTEXT:].copy()
        return np.asarray(probs, np.float32).reshape(-1)

    def hop(self, samples: np.ndarray) -> float:
        """Largest speech probability in the next hop of the stream (through the gate,
        which then learns the room from the hop unless it held a voice)."""
        probs = self.push(samples if self.gate is None else self.gate.process(samples))
        best = float(probs.max()) if probs.size else 0.0
        if self.gate is not None:
            self.gate.learn(best)
        return best
