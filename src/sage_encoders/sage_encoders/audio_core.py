"""Audio puzzle encoder core: int16 PCM blocks -> ~1 s log-mel windows -> 16x16 codes.

Blocks (the microphone's 32 ms AudioFrames) go into a FIFO over a preallocated buffer; every
hop_samples a window of window_samples is encoded. A window's stamp is the capture stamp of
its first sample. No rclpy, no torch.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
import math
import threading
import time
from typing import Any

import numpy as np
from sage_common.preview_formats import AUDIO_FORMAT
from sage_common.previews import encode_audio
from sage_common.records import LatentRecord

from sage_encoders.denoise import GateConfig, SpectralGate
from sage_encoders.errors import EncoderError, InputError
from sage_encoders.input_ring import InputRing, kept_window, s16le_zlib_input
from sage_encoders.preprocess import MelConfig, log_mel_db, model_mel, normalise_mel
from sage_encoders.preprocess import pcm_to_float
from sage_encoders.puzzle import (IrpConfig, LatentSink, PuzzleModel, PuzzleStart,
                                  RuntimeConfig, SwappableModel, before_refinement,
                                  start_puzzle)
from sage_encoders.runtime import Log
from sage_encoders.voice import VoiceActivity

# Mel bands of the newest hop are pooled into this many levels, around its loudest frame
# (band_00..: how loud, against the room) and over its attack (attack_00..: what sound it is;
# SNARC tells sound classes apart by them, the code grid's mean embedding hardly does).
SPECTRUM_BANDS = 16
FEATURES = ('rms', 'rms_db', 'onset', 'hop_db', 'hop_peak_db', 'hop_onset_db') + tuple(
    f'band_{i:02d}' for i in range(SPECTRUM_BANDS)) + tuple(
    f'attack_{i:02d}' for i in range(SPECTRUM_BANDS)) + ('voice',)
# Rise of frame energy over 32 ms (dB) that counts as a full onset (1.0); energy is floored
# at ENERGY_FLOOR_DB so digital silence does not turn a faint sound into a huge jump.
ONSET_FULL_DB = 40.0
ENERGY_FLOOR_DB = -80.0
RMS_DB_FLOOR = -100.0


def _energy_rise(db: np.ndarray) -> np.ndarray:
    """Rise of frame energy (total mel power, dB, floored at ENERGY_FLOOR_DB) over two frames
    (32 ms) ending at each frame from the third on."""
    energy = 10.0 * np.log10(np.maximum((10.0 ** (db / 10.0)).sum(0), 1e-12))
    energy = np.maximum(energy, ENERGY_FLOOR_DB)
    rise: np.ndarray = energy[2:] - energy[:-2]
    return rise


def onset_strength(db: np.ndarray) -> float:
    """Energy-jump onset of one window, 0..1.

    The largest rise of frame energy over two frames (`_energy_rise`) divided by
    ONSET_FULL_DB. A steady tone gives ~0, a clap out of quiet gives 1. (Band-wise spectral
    flux was tried: pure tones make it jitter.)

    Args:
        db: (n_mels, frames) log-mel dB of the window.
    """
    rise = _energy_rise(db)
    if rise.size == 0:
        return 0.0
    return float(min(1.0, max(0.0, float(rise.max()) / ONSET_FULL_DB)))


def hop_features(samples: np.ndarray, hop: int, frame: int) -> dict[str, float]:
    """Level features of a window's newest hop, the only audio no earlier window held.

    A 30 ms clap in a 1 s window is diluted 30 times in the window's RMS; measured over
    `frame`-sample frames of the newest hop it is not.

    Returns:
        hop_db: RMS level of the newest hop (dBFS); hop_peak_db: the loudest frame in it;
        hop_onset_db: the largest rise of frame level over two frames ending in it (the
        frames before the hop are the reference), unclipped.
    """
    n = min(samples.shape[0], hop + 2 * frame) // frame * frame
    tail = samples[samples.shape[0] - n:].astype(np.float64)
    level = 10.0 * np.log10(np.maximum((tail.reshape(-1, frame) ** 2).mean(1), 1e-12))
    level = np.maximum(level, ENERGY_FLOOR_DB)
    own = max(1, min(level.shape[0], hop // frame))  # frames of the newest hop
    newest = samples[-hop:].astype(np.float64)
    hop_db = 10.0 * math.log10(max(float((newest ** 2).mean()), 1e-12))
    rise = level[2:] - level[:-2]
    return {'hop_db': max(ENERGY_FLOOR_DB, hop_db),
            'hop_peak_db': float(level[-own:].max()),
            'hop_onset_db': float(max(0.0, rise[-own:].max())) if rise.size else 0.0}


def _band_levels(db: np.ndarray, first: int, last: int, prefix: str,
                 bands: int) -> dict[str, float]:
    """Mean power of frames first..last (inclusive) pooled into `bands` mel bands, in dB."""
    power = (10.0 ** (db[:, max(0, first):last + 1] / 10.0)).mean(1)
    pooled = power[:power.shape[0] // bands * bands].reshape(bands, -1).mean(1)
    level = np.maximum(10.0 * np.log10(np.maximum(pooled, 1e-12)), ENERGY_FLOOR_DB)
    return {f'{prefix}{i:02d}': float(v) for i, v in enumerate(level)}


def hop_spectrum(db: np.ndarray, frames: int, padded: int = 1,
                 bands: int = SPECTRUM_BANDS) -> dict[str, float]:
    """Level (dB) in `bands` pooled mel bands of the newest hop, twice.

    band_*: around the hop's loudest frame (it and its two neighbours, 48 ms): how far a
    sound stands out of the room, its arousal. attack_*: over its attack, the three frames
    that end the hop's largest two-frame energy rise (`_energy_rise`), among the frames that
    lie whole in the window: what the sound is. A sound's attack has the same spectrum
    wherever in the hop it starts; its loudest frame does not (an impact that starts early in
    the hop peaks in its body, one that starts late in its attack), and the window's last
    frames run past its end into zero padding, where a sound cut off leaks into every band.
    So a repeat's attack looks like the sound before, its loudest frame often did not.

    Args:
        db: (n_mels, frames) log-mel dB of the window; n_mels a multiple of bands.
        frames: STFT frames of the newest hop.
        padded: the window's last frames that run past its end (n_fft / hop - 1).
    """
    first = max(0, db.shape[1] - max(1, int(frames)))    # the hop's first frame
    peak = first + int(np.argmax((10.0 ** (db[:, first:] / 10.0)).sum(0)))
    padded = max(0, int(padded))
    whole = max(1, db.shape[1] - padded)                 # frames [0, whole) lie in the window
    rise = _energy_rise(db[:, :whole])                   # rise[i] ends at frame i + 2
    own = rise[-max(1, min(int(frames) - padded, rise.size)):] if rise.size else rise
    end = whole - own.size + int(np.argmax(own)) if own.size else whole - 1
    return {**_band_levels(db, max(first, peak - 1), peak + 1, 'band_', bands),
            **_band_levels(db, end - 2, end, 'attack_', bands)}


@dataclass(frozen=True)
class AudioConfig:
    """Resolved settings of the audio encoder (see audio_encoder_params)."""

    runtime: RuntimeConfig
    irp: IrpConfig
    lazy_load: bool = True
    sample_rate: int = 16000
    window_samples: int = 16384
    hop_samples: int = 4096
    gap_tolerance: float = 0.1
    preview_seconds: float = 0.5
    preview_rate: int = 8000
    preview_codec: str = 'ima_adpcm'
    training_keep: int = 32  # windows kept for the memory node (0 = off)
    voice: bool = True       # voice activity of the newest hop (feature 'voice')
    voice_model: str = ''    # '' = the silero-vad wheel's model
    denoise: GateConfig | None = GateConfig()  # steady noise taken away before the detector

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> 'AudioConfig':
        """Build from the node's resolved parameters."""
        return cls(runtime=RuntimeConfig.from_params('audio', values),
                   irp=IrpConfig.from_params(values), lazy_load=bool(values['lazy_load']),
                   sample_rate=int(values['sample_rate']),
                   window_samples=int(values['window_samples']),
                   hop_samples=int(values['hop_samples']),
                   gap_tolerance=float(values['gap_tolerance']),
                   preview_seconds=float(values['preview.seconds']),
                   preview_rate=int(values['preview.rate']),
                   preview_codec=str(values['preview.codec']),
                   training_keep=int(values['training_input.keep']),
                   voice=bool(values['voice.enabled']), voice_model=str(values['voice.model']),
                   denoise=GateConfig.from_params(values))


@dataclass(frozen=True)
class PendingWindow:
    """A window `AudioEncoderCore.begin_block` encoded and `finish` refines."""

    model: PuzzleModel  # the version that began it
    start: PuzzleStart
    stamp: float  # capture stamp of its first sample
    input_seq: int
    features: dict[str, float]
    pcm: np.ndarray  # (window_samples,) int16, a copy of its own
    begin_ms: float  # compute time of begin


class SampleFifo:
    """int16 sample FIFO over a preallocated buffer, with the stamp of its first sample."""

    def __init__(self, capacity: int) -> None:
        self._buf = np.zeros(capacity, np.int16)
        self._start = 0
        self._end = 0
        self.t0 = 0.0

    def __len__(self) -> int:
        return self._end - self._start

    def clear(self) -> None:
        """Drop every sample."""
        self._start = self._end = 0

    def append(self, pcm: np.ndarray) -> None:
        """Append samples (compacts the buffer or grows it when needed)."""
        n = len(pcm)
        if self._end + n > len(self._buf):
            live = self._buf[self._start:self._end].copy()
            if len(live) + n > len(self._buf):
                self._buf = np.zeros(2 * (len(live) + n), np.int16)
            self._buf[:len(live)] = live
            self._start, self._end = 0, len(live)
        self._buf[self._end:self._end + n] = pcm
        self._end += n

    def head(self, n: int) -> np.ndarray:
        """The first n samples (a view)."""
        return self._buf[self._start:self._start + n]

    def tail(self, n: int) -> np.ndarray:
        """The newest min(n, len) samples (a view)."""
        return self._buf[max(self._start, self._end - n):self._end]

    def drop(self, n: int, sample_rate: int) -> None:
        """Remove n samples from the front and advance t0."""
        self._start += n
        self.t0 += n / sample_rate


def grid_offset(stamp: float, hop_samples: int, sample_rate: int) -> int:
    """Samples from `stamp` to the next multiple of the hop duration (0 when on the grid)."""
    hop_s = hop_samples / sample_rate
    return int(round(((-stamp) % hop_s) * sample_rate)) % hop_samples


class AudioEncoderCore(SwappableModel):
    """Windows PCM and encodes each window with the audio puzzle VQ-VAE.

    Another model version can replace the running one between two windows (`use_model`,
    from SwappableModel); buffered samples stay.

    Attributes:
        gaps: how many times a stamp discontinuity restarted the buffer.
        filled_samples: samples of lost blocks filled in (`_bridge`).
        late_samples: samples of late or repeated blocks dropped (already buffered).
        voice_error: why windows carry no 'voice' feature although voice.enabled is set
            (None while it works or before the first window).
    """

    def __init__(self, cfg: AudioConfig, log: Log | None = None) -> None:
        if cfg.hop_samples > cfg.window_samples or cfg.hop_samples <= 0:
            raise EncoderError(f'hop_samples {cfg.hop_samples} must be in '
                               f'1..window_samples ({cfg.window_samples})')
        self.cfg = cfg
        self.irp = cfg.irp
        self.mel = MelConfig(sample_rate=cfg.sample_rate, window_samples=cfg.window_samples)
        self.model = PuzzleModel(cfg.runtime, log)
        self.model_lock = threading.Lock()  # held per window and for a model swap
        self.refine_lock = threading.Lock()  # held per refinement, a model swap and unload
        self._fifo = SampleFifo(2 * cfg.window_samples)
        self._seq = 0
        self.gaps = 0
        self.filled_samples = 0
        self.late_samples = 0
        self._voice: VoiceActivity | None = None
        self.voice_error: str | None = None
        # The newest encoded windows, for the memory node (what sleep retrains on).
        self.inputs = InputRing(cfg.training_keep,
                                partial(s16le_zlib_input, sample_rate=cfg.sample_rate))
        if not cfg.lazy_load:
            self.model.load()

    @classmethod
    def from_params(cls, values: Mapping[str, Any], log: Log | None = None
                    ) -> 'AudioEncoderCore':
        """Build from the node's resolved ROS parameters."""
        return cls(AudioConfig.from_params(values), log)

    def push(self, pcm: np.ndarray, stamp: float, sample_rate: int, atp: float | None = None,
             on_initial: LatentSink | None = None) -> list[LatentRecord]:
        """Add a block of samples; encode every window it completes (`begin_block`, then
        `finish` of each window; the offline replay's path).

        Args:
            pcm: (N,) int16 mono samples.
            stamp: capture time (s) of the block's first sample.
            sample_rate: samples per second of the block.
            atp: ATP available for the refinement of the windows completed by this block
                (None = irp.default_atp per window).
            on_initial: given each window's latent before refinement (`before_refinement`).

        Returns:
            0..n latent records, oldest first; input_seq counts windows.

        Raises:
            InputError: wrong sample rate, dtype or shape (the block is dropped).
        """
        out: list[LatentRecord] = []
        remaining = atp
        for pending in self.begin_block(pcm, stamp, sample_rate, on_initial):
            rec = self.finish(pending, remaining)
            out.append(rec)
            if remaining is not None:
                remaining = max(0.0, remaining - rec.atp_spent)
        return out

    def begin_block(self, pcm: np.ndarray, stamp: float, sample_rate: int,
                    on_initial: LatentSink | None = None) -> list[PendingWindow]:
        """Add a block of samples and encode every window it completes up to its refinement
        (`begin`); each is refined by `finish`, which may run on another thread.

        Raises:
            InputError: wrong sample rate, dtype or shape (the block is dropped).
        """
        if int(sample_rate) != self.cfg.sample_rate:
            raise InputError(f'sample rate {sample_rate} Hz is not the model rate '
                             f'{self.cfg.sample_rate} Hz')
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise InputError('pcm must be a 1-D int16 array, got '
                             f'{getattr(pcm, "shape", None)} {getattr(pcm, "dtype", None)}')
        if len(pcm) == 0:
            return []
        fifo = self._fifo
        if len(fifo):
            expected = fifo.t0 + len(fifo) / self.cfg.sample_rate
            if abs(stamp - expected) > self.cfg.gap_tolerance:
                self.reset()
                self.gaps += 1
            else:
                pcm = self._bridge(pcm, round((stamp - expected) * self.cfg.sample_rate))
                if not len(pcm):
                    return []
        if not len(fifo):
            # Start windows on a fixed hop grid of stamps (k * hop), so a node that starts
            # mid-stream and an offline replay of a recording cut elsewhere make the same
            # windows from the same samples.
            skip = grid_offset(stamp, self.cfg.hop_samples, self.cfg.sample_rate)
            if skip >= len(pcm):
                return []
            pcm = pcm[skip:]
            stamp = stamp + skip / self.cfg.sample_rate
            fifo.t0 = float(stamp)
        fifo.append(pcm)
        out: list[PendingWindow] = []
        while len(fifo) >= self.cfg.window_samples:
            out.append(self._begin_window(fifo.head(self.cfg.window_samples), fifo.t0,
                                          on_initial))
            fifo.drop(self.cfg.hop_samples, self.cfg.sample_rate)
        return out

    def _bridge(self, pcm: np.ndarray, shift: int) -> np.ndarray:
        """Keep the buffered samples on their stamps across a small stamp jump (`shift`
        samples between where the block starts and where the buffer ends).

        A best-effort reader loses whole frames when the node stalls. Appended as they come,
        the samples after a loss would sit a frame earlier than their stamps in every later
        window until the drift passed gap_tolerance: the windows a live node and a replay of
        the same recording cut from one stamp would differ. So a lost block's samples are
        filled in by repeating the newest ones (steady room sound stays steady; silence would
        be an onset), and a late or repeated block gives only what is not buffered yet. A jump
        under half the block is the stamp jitter of a source that does not stamp by sample
        count, not a lost frame: left as it is.
        """
        fifo, half = self._fifo, max(1, len(pcm) // 2)
        if shift >= half:
            fifo.append(np.resize(fifo.tail(shift), shift))
            self.filled_samples += shift
        elif shift <= -half:
            cut = min(-shift, len(pcm))
            self.late_samples += cut
            pcm = pcm[cut:]
        return pcm

    def encode_window(self, pcm: np.ndarray, stamp: float, atp: float | None = None,
                      on_initial: LatentSink | None = None) -> LatentRecord:
        """Encode one full window directly (benchmarks, tests, offline tools)."""
        if pcm.dtype != np.int16 or pcm.shape != (self.cfg.window_samples,):
            raise InputError(f'window must be ({self.cfg.window_samples},) int16')
        return self.finish(self._begin_window(pcm, stamp, on_initial), atp)

    def _begin_window(self, pcm: np.ndarray, stamp: float,
                      on_initial: LatentSink | None) -> PendingWindow:
        with self.model_lock:  # one model version for the whole window
            return self._begin_with(self.model, pcm, stamp, on_initial)

    def _begin_with(self, model: PuzzleModel, pcm: np.ndarray, stamp: float,
                    on_initial: LatentSink | None) -> PendingWindow:
        model.load()  # encode_ms excludes a lazy load (reported as load_ms)
        voice = self._voice_model()
        t0 = time.perf_counter()
        samples = pcm_to_float(pcm)
        db = log_mel_db(samples, self.mel)  # (n_mels, frames): the features' front end
        x = self._model_input(model, samples, db)
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        features = {'rms': rms,
                    'rms_db': max(RMS_DB_FLOOR, 20.0 * math.log10(max(rms, 1e-10))),
                    'onset': onset_strength(db),
                    **hop_features(samples, self.cfg.hop_samples, self.mel.hop),
                    **hop_spectrum(db, self.cfg.hop_samples // self.mel.hop,
                                   self.mel.n_fft // self.mel.hop - 1)}
        if voice is not None:
            features['voice'] = voice.hop(samples[-self.cfg.hop_samples:])
        seq = self._seq
        early = before_refinement(on_initial, t0, stamp=float(stamp), modality='audio',
                                  input_seq=seq, codebook_size=model.codebook_size,
                                  features=features, model_version=model.version)
        start = start_puzzle(model, x, self.irp, early)
        self._seq += 1
        # pcm is a view of the FIFO's buffer, which the next block moves
        return PendingWindow(model, start, float(stamp), seq, features, pcm.copy(),
                             (time.perf_counter() - t0) * 1e3)

    def finish(self, pending: PendingWindow, atp: float | None = None,
               before_step: Callable[[], None] | None = None) -> LatentRecord:
        """Refine a begun window under `atp` (None = irp.default_atp) and make its record.

        When the model was swapped or unloaded since it began, the window takes no step
        (its model is gone): its record says so by atp_spent 0. `before_step` is called
        before each refinement step (it may wait).
        """
        t0 = time.perf_counter()
        model = pending.model
        res = self.refine_begun(pending.start, model, atp, before_step)
        if self.inputs.enabled:
            self.inputs.put(pending.input_seq, pending.stamp, pending.pcm)
        irp = res.irp
        return LatentRecord(
            stamp=pending.stamp, modality='audio', input_seq=pending.input_seq,
            codes=res.codes, codes_initial=res.codes_initial if irp.iterations else None,
            codebook_size=model.codebook_size, embedding=res.embedding,
            features=pending.features, recon_error=irp.energy_final, iterations=irp.iterations,
            energy_initial=irp.energy_initial, energy_final=irp.energy_final,
            converged=irp.converged, halt_reason=irp.halt_reason, atp_spent=irp.atp_spent,
            encode_ms=pending.begin_ms + (time.perf_counter() - t0) * 1e3,
            preview_format=AUDIO_FORMAT, preview=self._preview(pending.pcm),
            model_version=model.version)

    def _voice_model(self) -> VoiceActivity | None:
        """The voice activity model, loaded on the first window; None when off or missing
        (said once in the log and kept in voice_error for diagnostics)."""
        if self._voice is not None or not self.cfg.voice or self.voice_error is not None:
            return self._voice
        try:
            cfg = self.cfg
            gate = SpectralGate(cfg.denoise, cfg.sample_rate) if cfg.denoise else None
            self._voice = VoiceActivity(cfg.voice_model or None, gate=gate)
        except EncoderError as err:
            self.voice_error = str(err)
            self.model.log(f'voice activity off: {err}')
        return self._voice

    def _preview(self, pcm: np.ndarray) -> bytes:
        """The last preview.seconds of the window at preview.rate, as a WAV in preview.codec."""
        n = int(self.cfg.preview_seconds * self.cfg.sample_rate)
        if n <= 0:
            return b''
        tail = pcm[-n:].astype(np.int32)
        factor = max(1, self.cfg.sample_rate // self.cfg.preview_rate)
        tail = tail[: len(tail) // factor * factor].reshape(-1, factor).mean(1)
        return encode_audio(np.round(tail).astype(np.int16), self.cfg.preview_rate,
                            self.cfg.preview_codec)

    def set_irp(self, irp: IrpConfig) -> None:
        """Apply changed irp.* parameters."""
        self.irp = irp

    def set_training_input(self, values: Mapping[str, Any]) -> None:
        """Apply changed training_input.* parameters."""
        self.inputs.resize(int(values['training_input.keep']))

    def reset(self) -> None:
        """Drop buffered samples (e.g. after the stream restarts)."""
        self._fifo.clear()
        if self._voice is not None:
            self._voice.reset()

    def _model_input(self, model: PuzzleModel, samples: np.ndarray,
                     db: np.ndarray | None = None) -> np.ndarray:
        """(1, 1, n_mels, frames) network input of a window through `model`'s own front end
        (`db`, the features' log-mel, is reused when the two front ends are the same)."""
        mel = model_mel(model.meta, self.cfg.sample_rate, self.cfg.window_samples)
        if db is None or mel != self.mel:
            db = log_mel_db(samples, mel)
        return normalise_mel(db, mel)[None, None]

    def stored_model_input(self, model: PuzzleModel, item: Any) -> np.ndarray:
        """A stored window through `model`'s front end, as `push` gives it the model.

        Raises:
            ValueError: another format or sample rate, or the bytes do not decompress.
        """
        pcm = kept_window(item.format, item.data, item.sample_rate, self.cfg.sample_rate,
                          self.cfg.window_samples)
        return self._model_input(model, pcm_to_float(pcm))

    def probe_input(self, model: PuzzleModel | None = None) -> np.ndarray:
        """A window of digital silence as `model` (default: the running one) sees it (the
        model-swap probe)."""
        silence = np.zeros(self.cfg.window_samples, np.float32)
        return self._model_input(model or self.model, silence)

    def load(self) -> None:
        """Load the model and the voice activity model now (they also load on first use):
        the node loads them at start, so its first window is not held by a load."""
        with self.model_lock:
            self.model.load()
            self._voice_model()

    def unload(self) -> None:
        """Free the model; the next window reloads it (a window begun before refines no
        more)."""
        # refine_lock first: an encode waits for no refinement (see PuzzleCore)
        with self.refine_lock, self.model_lock:
            self.model.unload()
