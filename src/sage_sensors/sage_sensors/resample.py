"""Streaming rational resampling (e.g. 48 kHz or 44.1 kHz microphones to 16 kHz).

A polyphase FIR: upsample by L, low-pass below the smaller Nyquist, downsample by M, computed
only at the output samples. The low-pass is a Kaiser-windowed sinc designed for `atten_db` of
stopband attenuation with the transition band just below the output Nyquist, so nothing above
it folds back into the speech band. State is kept between calls, so resampling a stream in
blocks of any size gives the same samples as resampling it at once.
"""
from __future__ import annotations

from math import ceil, gcd, pi

import numpy as np


def design_lowpass(num_up: int, src_rate: int, dst_rate: int, atten_db: float = 70.0,
                   transition: float = 0.15) -> np.ndarray:
    """Kaiser-windowed sinc low-pass at the upsampled rate, with gain num_up.

    Args:
        num_up: upsampling factor L.
        src_rate: input rate in Hz.
        dst_rate: output rate in Hz.
        atten_db: stopband attenuation in dB.
        transition: transition width as a fraction of the smaller Nyquist frequency.

    Returns:
        (N,) float64 filter taps.
    """
    fs_up = float(num_up * src_rate)
    nyq = 0.5 * min(src_rate, dst_rate)
    width_hz = transition * nyq
    cutoff_hz = nyq - 0.5 * width_hz
    # Kaiser's formulas for the window length and shape (Oppenheim & Schafer, 7.6).
    d_omega = 2 * pi * width_hz / fs_up
    n = int(ceil((atten_db - 8.0) / (2.285 * d_omega))) + 1
    beta = 0.1102 * (atten_db - 8.7) if atten_db > 50 else 0.5842 * (atten_db - 21) ** 0.4 + \
        0.07886 * (atten_db - 21)
    fc = cutoff_hz / fs_up
    m = np.arange(n) - (n - 1) / 2.0
    h = 2.0 * fc * np.sinc(2.0 * fc * m) * np.kaiser(n, beta)
    return np.asarray(h * num_up, dtype=np.float64)


class Resampler:
    """Converts a mono float stream from src_rate to dst_rate, block by block.

    Output sample k stands for input time k / dst_rate - delay_s (the filter's group delay),
    which the audio pipeline uses to keep stamps at capture time.
    """

    def __init__(self, src_rate: int, dst_rate: int, atten_db: float = 70.0) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError('sample rates must be positive')
        g = gcd(int(src_rate), int(dst_rate))
        self.src_rate, self.dst_rate = int(src_rate), int(dst_rate)
        self.up, self.down = self.dst_rate // g, self.src_rate // g
        self.passthrough = self.up == self.down
        if self.passthrough:
            self.delay_s = 0.0
            return
        h = design_lowpass(self.up, self.src_rate, self.dst_rate, atten_db)
        self.delay_s = (len(h) - 1) / 2.0 / (self.up * self.src_rate)
        self.taps = int(ceil(len(h) / self.up))
        padded = np.zeros(self.taps * self.up)
        padded[:len(h)] = h
        # poly[p, j] = h[p + j * L]: the taps that meet input sample i_max - j at phase p.
        self._poly = padded.reshape(self.taps, self.up).T.astype(np.float32).copy()
        self._hist = np.zeros(self.taps - 1, dtype=np.float32)  # inputs before this block
        self._n_in = 0   # input samples consumed so far
        self._k = 0      # next output sample index

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample the next block of the stream.

        Args:
            x: (n,) float samples.

        Returns:
            (m,) float32 samples; m varies by block so that the total stays exact.
        """
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if self.passthrough:
            return x.copy()
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        buf = np.concatenate([self._hist, x])
        b0 = self._n_in - len(self._hist)       # stream index of buf[0]
        self._n_in += x.size
        k_end = -(-self._n_in * self.up // self.down)   # ceil(n_in * L / M)
        ks = np.arange(self._k, k_end, dtype=np.int64)
        self._k = k_end
        self._hist = buf[-(self.taps - 1):] if self.taps > 1 else buf[:0]
        if ks.size == 0:
            return np.zeros(0, dtype=np.float32)
        pos = ks * self.down
        i_max, phase = pos // self.up, pos % self.up
        idx = (i_max - b0)[:, None] - np.arange(self.taps)[None, :]    # (K, T)
        # idx >= 0 always: the history holds taps - 1 samples (zeros before the stream).
        vals = buf[idx]
        out: np.ndarray = np.einsum('kt,kt->k', vals, self._poly[phase])
        return out.astype(np.float32)

    def reset(self) -> None:
        """Forget the stream (after a gap or a device reconnect)."""
        if not self.passthrough:
            self._hist[:] = 0.0
            self._n_in = 0
            self._k = 0
