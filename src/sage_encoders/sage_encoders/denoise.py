"""Steady-noise suppression in front of the voice detector (spectral subtraction; pure numpy).

A robot hears its own fan, a vent or a hum all day. Silero VAD, given a phrase a few dB above a
fan, needs 0.6 to 3 s of it to be sure (and on a soft phrase never is), while the same phrase in
a quiet room is sure within 0.2 s. Subtracting the room's steady spectrum first (Boll's
spectral subtraction) gives the detector the quiet-room case back: the phrase is sure within
0.2-0.6 s over the same fan, and the room itself stays below 0.01.

The stream is cut into 512-sample frames every 256 samples (square-root Hann windows, which
overlap-add back to the signal when nothing is removed). Each frame's power spectrum keeps
what rises above `over` times the noise spectrum, never less than `floor` of its magnitude
(a floor of its own leaves no 'musical' holes that could sound like a voice). The noise
spectrum follows the room: up with time constant `tau_s`, down ten times faster,
and only while the detector hears no voice, so a phrase is not learnt as the room. Output
lags the input by 256 samples (16 ms).
"""
from __future__ import annotations

import math

import numpy as np

FRAME = 512
STEP = FRAME // 2
# The noise spectrum falls this many times faster than it rises: a quieter room is taken at
# once (too much subtracted eats a soft voice), a louder one only once it has lasted.
FALL_SPEEDUP = 10.0
# Square-root periodic Hann: analysis x synthesis windows sum to 1 at a hop of half a frame.
WINDOW = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32)


class SpectralGate:
    """Streaming spectral subtraction of a learnt steady noise spectrum."""

    def __init__(self, over: float, floor: float, tau_s: float, voice_gate: float,
                 sample_rate: int = 16000) -> None:
        """Args:
            over: multiple of the noise power subtracted (over 1 also takes its ripple).
            floor: smallest gain a bin keeps (fraction of its magnitude).
            tau_s: time constant of the noise spectrum rising to a louder room (s).
            voice_gate: speech probability from which the room is not learnt.
            sample_rate: samples per second.
        """
        self.over = float(over)
        self.floor = float(floor)
        self.tau_s = float(tau_s)
        self.voice_gate = float(voice_gate)
        self.sample_rate = int(sample_rate)
        self.reset()

    def reset(self) -> None:
        """Forget the stream and the room (after a gap in the stream)."""
        self._tail = np.zeros(STEP, np.float32)        # input not yet in a whole frame
        self._overlap = np.zeros(STEP, np.float32)     # output waiting for the next frame
        self.noise: np.ndarray | None = None           # power per bin
        self._heard: np.ndarray | None = None          # mean power of the last call's frames
        self._heard_s = 0.0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """The next samples (float, a multiple of 256) with the room's steady noise removed,
        256 samples late (the first call starts with 256 zeros)."""
        x = np.concatenate([self._tail, np.asarray(samples, np.float32).reshape(-1)])
        n = (x.size - FRAME) // STEP + 1
        if n <= 0:
            self._tail = x
            return np.zeros(0, np.float32)
        idx = np.arange(n)[:, None] * STEP + np.arange(FRAME)[None, :]
        spec = np.fft.rfft(x[idx] * WINDOW, axis=1)
        power = spec.real ** 2 + spec.imag ** 2
        self._heard = power.mean(axis=0)
        self._heard_s = n * STEP / self.sample_rate
        if self.noise is None:  # the first frames are the room until told otherwise
            self.noise = self._heard.copy()
        gain = np.sqrt(np.maximum(1.0 - self.over * self.noise / np.maximum(power, 1e-20),
                                  self.floor ** 2))
        frames = np.fft.irfft(spec * gain, n=FRAME, axis=1).astype(np.float32) * WINDOW
        out = np.zeros((n + 1) * STEP, np.float32)
        out[:STEP] = self._overlap
        for k in range(n):  # overlap-add at half a frame
            out[k * STEP:k * STEP + FRAME] += frames[k]
        self._overlap = out[n * STEP:].copy()
        self._tail = x[n * STEP:].copy()
        return out[:n * STEP]

    def learn(self, voice: float) -> None:
        """Update the room from the last call's frames, given the detector's speech
        probability of them; nothing is learnt from a hop that held a voice."""
        if self._heard is None or self.noise is None:
            return
        if voice >= self.voice_gate:
            return
        up = 1.0 - math.exp(-self._heard_s / self.tau_s)
        down = 1.0 - math.exp(-FALL_SPEEDUP * self._heard_s / self.tau_s)
        self.noise += np.where(self._heard < self.noise, down, up) * (self._heard - self.noise)
