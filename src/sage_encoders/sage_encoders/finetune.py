"""Fine-tune a live puzzle VQ-VAE on the inputs of one day (torch; the sleep worker only).

The memory node keeps, for every stored vision/audio experience, the input its encoder saw
(sage_memory.store.training_inputs): a 240x240 RGB frame as JPEG, or a 16384-sample int16 window,
zlib-compressed. Sleep decodes them through the encoders' own preprocessing, holds a fraction
back for validation, and trains the live model on the rest mixed with rehearsal of the shipped
training data (so it does not forget what it knew), within a wall-time and a step budget,
checking `should_stop()` between steps. Then both models are scored (reconstruction MSE, the
training loss) on the held-back day inputs and on the shipped held-out set, and the new model
is promoted only when it is better on the day by min_gain and not worse on the held-out set by
more than max_forgetting.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import copy
from dataclasses import dataclass, field
from functools import lru_cache
import gc
import math
from pathlib import Path
import time
from typing import Any, Protocol

import logging

import numpy as np
import torch
import torch.nn.functional as F

from sage_encoders import data
from sage_encoders.input_ring import kept_frame, kept_window
from sage_encoders.model_files import read_meta, write_json
from sage_encoders.preprocess import MelConfig, model_mel, pcm_to_float, preprocess_audio
from sage_encoders.preprocess import resize_rgb
from sage_encoders.preprocess import scale_rgb
from sage_encoders.vqvae import VqVae, load, save

CROP = 96  # vision batches are random 96x96 crops, as in train.py
SHIPPED_SIZE = 240  # the packaged vision model's input side: the shipped sets are made at it
BATCH = {'vision': 16, 'audio': 32}
EVAL_BATCH = 8

log = logging.getLogger(__name__)


class Preempted(Exception):
    """should_stop() turned true: the run stops, its results are discarded."""


class InputLike(Protocol):
    """What is read of a stored training input (sage_memory.store.training_inputs)."""

    uuid: str
    format: str
    data: bytes
    sample_rate: int
    stamp: float


@dataclass(frozen=True)
class FinetuneConfig:
    """Budget, data mix and the promotion rule of one fine-tune.

    Attributes:
        time_budget_s: wall seconds from the start (data, first scoring, steps); the final
            scoring and the export come after it.
        max_steps: most optimiser steps.
        holdout: fraction of the day's inputs held back for validation (at least one).
        holdout_gap_s: held back in whole bursts of inputs less than this apart (0 = single
            inputs at random; `split_holdout`).
        rehearsal: fraction of each batch drawn from the shipped training data.
        min_gain: relative day reconstruction gain needed to promote.
        max_forgetting: largest relative held-out reconstruction loss allowed to promote.
        seed: seeds the split, the sampling and torch.
        lr: Adam learning rate (cosine decay to a tenth over max_steps or the time left for
            training, whichever ends first).
        beta: commitment loss weight (as in training).
        freeze_codebook: keep the codebook vectors as they were (no EMA updates): each code
            keeps its meaning across versions, so what SNARC has stored and learned stays
            comparable (on tuning rooms, EMA updates raised the calm vision novelty tail:
            p99 0.09 -> 0.23, and its false alarms).
        threads: torch intra-op threads (leave the running graph cores).
        gain_jitter: vision only: each day crop is scaled by a gain drawn from
            [1 - gain_jitter, 1 + gain_jitter] (clipped to 8 bits), as the room's light
            changes from one day to the next (0 = off).
        flip: vision only: half the day crops are mirrored left-right (the same room seen
            from the other side of a turn).
    """

    time_budget_s: float = 300.0
    max_steps: int = 2000
    holdout: float = 0.2
    holdout_gap_s: float = 0.0
    rehearsal: float = 0.5
    min_gain: float = 0.05
    max_forgetting: float = 0.05
    seed: int = 0
    lr: float = 5e-4
    beta: float = 0.25
    freeze_codebook: bool = True
    threads: int = 1
    gain_jitter: float = 0.0
    flip: bool = False


@dataclass
class FinetuneResult:
    """What one fine-tune did.

    Attributes:
        modality: 'vision' or 'audio'.
        model: the fine-tuned model (None when no step ran).
        steps: optimiser steps taken.
        seconds: wall time of the whole fine-tune (scoring included).
        train_uuids, holdout_uuids: the split of the decoded day inputs.
        undecodable: (uuid, why) of inputs that could not be decoded.
        day_before, day_after, heldout_before, heldout_after: reconstruction MSE.
        decision: 'promoted', 'rejected' or 'skipped' (no step ran: nothing to write).
        reason: why.
        timings: seconds of each phase.
        losses: training loss records.
    """

    modality: str
    model: VqVae | None = None
    steps: int = 0
    seconds: float = 0.0
    train_uuids: list[str] = field(default_factory=list)
    holdout_uuids: list[str] = field(default_factory=list)
    undecodable: list[tuple[str, str]] = field(default_factory=list)
    day_before: float = math.nan
    day_after: float = math.nan
    heldout_before: float = math.nan
    heldout_after: float = math.nan
    heldout_inputs: int = 0
    decision: str = 'skipped'
    reason: str = ''
    timings: dict[str, float] = field(default_factory=dict)
    losses: list[dict[str, float]] = field(default_factory=list)

    def validation(self, cfg: FinetuneConfig) -> dict[str, Any]:
        """The validation record of version.json."""
        return {'day_recon_before': self.day_before, 'day_recon_after': self.day_after,
                'day_gain': relative_gain(self.day_before, self.day_after),
                'heldout_recon_before': self.heldout_before,
                'heldout_recon_after': self.heldout_after,
                'heldout_forgetting': -relative_gain(self.heldout_before, self.heldout_after),
                'day_inputs_held_back': len(self.holdout_uuids),
                'heldout_inputs': self.heldout_inputs,
                'min_gain': cfg.min_gain, 'max_forgetting': cfg.max_forgetting,
                'metric': 'reconstruction MSE (normalised units, torch, whole inputs)'}


# ------------------------------------------------------------------ decoding

def decode_vision(item: InputLike, size: int) -> np.ndarray:
    """A 'jpeg' input -> (size, size, 3) uint8 RGB, resized as the encoder does.

    Raises:
        ValueError: not a JPEG input, or the bytes do not decode.
    """
    return resize_rgb(kept_frame(item.format, item.data), size)


def decode_audio(item: InputLike, mel: MelConfig) -> np.ndarray:
    """An 's16le-zlib' input -> (1, n_mels, frames) float32 log-mel, as the encoder does.

    A window shorter than the model's is zero padded at the start, a longer one keeps its
    newest samples (the encoder's ring holds the newest window).

    Raises:
        ValueError: other format or sample rate, or the bytes do not decompress.
    """
    pcm = kept_window(item.format, item.data, item.sample_rate, mel.sample_rate,
                      mel.window_samples)
    return preprocess_audio(pcm_to_float(pcm), mel)[0]


def decode_inputs(modality: str, items: Sequence[InputLike], size: int = 240,
                  mel: MelConfig | None = None
                  ) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """Decode every input: (array, uuids of the decoded, [(uuid, why) undecodable]).

    Vision: (N, size, size, 3) uint8 frames (scaled per batch: 4x less memory than floats).
    Audio: (N, 1, n_mels, frames) float32 model inputs.
    """
    mel = mel or MelConfig()
    out, uuids, bad = [], [], []
    for item in items:
        try:
            out.append(decode_vision(item, size) if modality == 'vision'
                       else decode_audio(item, mel))
        except ValueError as err:
            bad.append((item.uuid, str(err)))
            continue
        uuids.append(item.uuid)
    if not out:
        shape = (0, size, size, 3) if modality == 'vision' else (0, 1, mel.n_mels, mel.frames)
        return np.zeros(shape, np.uint8 if modality == 'vision' else np.float32), uuids, bad
    return np.stack(out), uuids, bad


class JpegFrames:
    """The day's vision inputs kept as their JPEG bytes and decoded when a batch needs one:
    an hour of frames is ~40 MB this way instead of ~300 MB decoded."""

    def __init__(self, items: Sequence[InputLike], size: int) -> None:
        self.items = list(items)
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> np.ndarray:
        return decode_vision(self.items[i], self.size)


def _split_day(modality: str, items: Sequence[InputLike], size: int, holdout: float,
               seed: int, res: 'FinetuneResult', gap_s: float = 0.0,
               mel: MelConfig | None = None) -> tuple[Any, np.ndarray]:
    """(inputs to train on, decoded held-back inputs); sets res's uuids and undecodable.

    Vision inputs to train on stay JPEG (JpegFrames); every one is decoded once here, to
    find the ones that do not decode.
    """
    if modality == 'vision':
        ok = []
        for item in items:
            try:
                decode_vision(item, size)
            except ValueError as err:
                res.undecodable.append((item.uuid, str(err)))
                continue
            ok.append(item)
        if len(ok) < 2:
            raise ValueError(f'{len(ok)} of {len(items)} {modality} inputs decode: need 2')
        tr, ho = split_holdout([i.stamp for i in ok], holdout, seed, gap_s)
        res.train_uuids = [ok[i].uuid for i in tr]
        res.holdout_uuids = [ok[i].uuid for i in ho]
        return (JpegFrames([ok[i] for i in tr], size),
                np.stack([decode_vision(ok[i], size) for i in ho]))
    x, uuids, res.undecodable = decode_inputs(modality, items, size, mel)
    if len(x) < 2:
        raise ValueError(f'{len(x)} of {len(items)} {modality} inputs decode: need 2')
    stamp = {i.uuid: i.stamp for i in items}
    tr, ho = split_holdout([stamp[u] for u in uuids], holdout, seed, gap_s)
    res.train_uuids = [uuids[i] for i in tr]
    res.holdout_uuids = [uuids[i] for i in ho]
    return x[tr], x[ho]


def _to_model(modality: str, x: np.ndarray) -> np.ndarray:
    """Decoded inputs -> float32 network inputs (vision frames are scaled here)."""
    if modality == 'vision' and x.dtype == np.uint8:
        return np.concatenate([scale_rgb(f) for f in x]) if len(x) else \
            np.zeros((0, 3) + x.shape[1:3], np.float32)
    return x


def split_holdout(stamps: Sequence[float], fraction: float, seed: int, gap_s: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-back indices): about round(fraction * n) held back, at least 1,
    and at least 1 left to train on (n >= 2).

    With gap_s > 0 whole bursts are held back: runs of inputs whose stamps are less than
    gap_s apart (an event and the context stored around it), in random order, none that
    would take the share past 1.5 x its size. Inputs taken at random would validate on
    near-copies of training inputs a frame or a hop away, and call a model that only
    remembers them better. When no burst fits, the newest inputs are held back.
    """
    n = len(stamps)
    if n < 2:
        raise ValueError(f'need at least 2 inputs to hold one back, got {n}')
    k = min(n - 1, max(1, int(round(fraction * n))))
    rng = np.random.default_rng(seed)
    if gap_s <= 0:
        perm = rng.permutation(n)
        return np.sort(perm[k:]), np.sort(perm[:k])
    order = np.argsort(np.asarray(stamps, np.float64), kind='stable')
    gaps = np.diff(np.asarray(stamps, np.float64)[order])
    bursts = np.split(order, np.flatnonzero(gaps >= gap_s) + 1)
    held: list[int] = []
    limit = min(n - 1, int(math.ceil(1.5 * k)))  # a burst may take the share past k, not far
    for b in rng.permutation(len(bursts)) if len(bursts) > 1 else ():
        if len(held) >= k:
            break
        if len(held) + len(bursts[b]) <= limit:
            held.extend(int(i) for i in bursts[b])
    if not held:  # no burst fits: the newest inputs, a block with one neighbour in training
        held = [int(i) for i in order[-k:]]
    ho = np.sort(np.array(held, np.int64))
    return np.setdiff1d(np.arange(n), ho), ho


# ------------------------------------------------------------------ shipped data

@lru_cache(maxsize=2)
def heldout_set(modality: str, mel: MelConfig | None = None) -> np.ndarray:
    """The shipped held-out inputs train.py evaluates on (built once per process and front
    end: vision 36 frames ~0.1 s, audio 93 windows ~1.2 s of espeak on a 2-core x86)."""
    if modality == 'vision':
        return data.vision_heldout(SHIPPED_SIZE)
    mel = mel or MelConfig()
    return data.audio_mels(data.audio_heldout_windows(mel), mel)


@lru_cache(maxsize=2)
def rehearsal_set(modality: str, mel: MelConfig | None = None) -> Any:
    """Shipped training data to rehearse (once per process: ~2.4 s vision, ~2.2 s audio).

    Vision: the 400 augmented frames train.py crops from (list of RGB uint8), resized to the
    model's input once (the crops are the same; 70 MB instead of 200); audio: the training
    windows as (N, 1, 64, 64) log-mel inputs.
    """
    if modality == 'vision':
        return [resize_rgb(f, SHIPPED_SIZE) for f in data.vision_pool(400, data.TRAIN_SEED)]
    mel = mel or MelConfig()
    return data.audio_mels(data.audio_train_windows(mel, data.TRAIN_SEED), mel)


def release_shipped_data() -> None:
    """Drop the cached held-out and rehearsal sets (about 180 MB with both modalities): the
    sleep worker calls it before each export, whose int8 calibration needs that memory."""
    heldout_set.cache_clear()
    rehearsal_set.cache_clear()
    gc.collect()


# ------------------------------------------------------------------ scoring

def relative_gain(before: float, after: float) -> float:
    """(before - after) / before: 0.1 = 10 % lower error."""
    if not (math.isfinite(before) and math.isfinite(after)) or before <= 0:
        return math.nan
    return (before - after) / before


@torch.no_grad()
def recon_mse(model: VqVae, modality: str, x: np.ndarray,
              should_stop: Callable[[], bool] = lambda: False) -> float:
    """Reconstruction MSE over whole inputs, batch by batch (stops between batches)."""
    model.eval()
    se, n = 0.0, 0
    for i in range(0, len(x), EVAL_BATCH):
        if should_stop():
            raise Preempted
        xb = torch.from_numpy(_to_model(modality, x[i:i + EVAL_BATCH]))
        x_hat, _, _ = model(xb)
        se += float(F.mse_loss(x_hat, xb, reduction='sum'))
        n += xb.numel()
    return se / n if n else math.nan


def decide(res: FinetuneResult, cfg: FinetuneConfig) -> tuple[str, str]:
    """The promotion rule: (decision, reason)."""
    gain = relative_gain(res.day_before, res.day_after)
    forgetting = -relative_gain(res.heldout_before, res.heldout_after)
    if not (math.isfinite(gain) and math.isfinite(forgetting)):
        return 'rejected', 'reconstruction error not finite'
    day = f'day recon {res.day_before:.5f} -> {res.day_after:.5f} ({gain:+.1%})'
    held = (f'held-out recon {res.heldout_before:.5f} -> {res.heldout_after:.5f} '
            f'({-forgetting:+.1%})')
    if gain < cfg.min_gain:
        return 'rejected', f'{day}: gain below min_gain {cfg.min_gain:.1%}; {held}'
    if forgetting > cfg.max_forgetting:
        return 'rejected', f'{held}: worse than max_forgetting {cfg.max_forgetting:.1%}; {day}'
    return 'promoted', f'{day}; {held}'


# ------------------------------------------------------------------ training

def sampler(modality: str, day: Any, rehearse: Any, rehearsal: float, size: int,
            gain_jitter: float = 0.0, flip: bool = False
            ) -> Callable[[np.random.Generator], np.ndarray]:
    """Training batches: day inputs (vision: frames of size x size, indexable) mixed with
    a rehearsal share of the shipped data. Vision day crops may be scaled by a random gain
    and mirrored (FinetuneConfig.gain_jitter, flip): a day's few dozen stored frames then
    teach the room, not those frames' light (tuning rooms: day-2 recon after/before 0.82 ->
    0.78 in room 4, 0.77 -> 0.73 in room 0)."""
    batch = BATCH[modality]
    n_old = int(round(batch * min(max(rehearsal, 0.0), 1.0)))
    n_new = batch - n_old

    if modality == 'vision':

        def sample(rng: np.random.Generator) -> np.ndarray:
            out = np.empty((batch, 3, CROP, CROP), np.float32)
            for b in range(n_new):
                f = day[int(rng.integers(len(day)))]
                y0, x0 = (int(v) for v in rng.integers(0, size - CROP + 1, 2))
                crop = f[y0:y0 + CROP, x0:x0 + CROP]
                if gain_jitter > 0:
                    gain = rng.uniform(1.0 - gain_jitter, 1.0 + gain_jitter)
                    crop = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
                if flip and rng.random() < 0.5:
                    crop = crop[:, ::-1]
                out[b] = scale_rgb(np.ascontiguousarray(crop))[0]
            if n_old:
                out[n_new:] = data.vision_crops(rehearse, rng, n_old, CROP, size)
            return out
        return sample

    def sample_audio(rng: np.random.Generator) -> np.ndarray:
        parts = [day[rng.integers(0, len(day), n_new)]]
        if n_old:
            parts.append(rehearse[rng.integers(0, len(rehearse), n_old)])
        return np.concatenate(parts).astype(np.float32, copy=False)
    return sample_audio


def learning_rate(cfg: FinetuneConfig, step: int, elapsed_s: float, window_s: float) -> float:
    """Cosine decay from cfg.lr to a tenth of it, over max_steps or window_s, whichever is
    sooner: on a slower computer the time budget ends training before max_steps, and the
    model it keeps should have annealed, not stopped at a high rate."""
    done = step / max(cfg.max_steps, 1)
    if window_s > 0:
        done = max(done, elapsed_s / window_s)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


def finetune(modality: str, base_dir: Path, items: Sequence[InputLike], cfg: FinetuneConfig,
             should_stop: Callable[[], bool] = lambda: False,
             on_step: Callable[[int], None] = lambda step: None) -> FinetuneResult:
    """Fine-tune the model in base_dir on the day's inputs; score and decide. on_step(n)
    follows each training step (the sleep worker reports progress from it).

    Raises:
        Preempted: should_stop() turned true (checked between steps and scoring batches).
        ValueError: fewer than 2 inputs decode.
        ModelError: the base model cannot be loaded.
    """
    t0 = time.monotonic()
    deadline = t0 + cfg.time_budget_s
    torch.set_num_threads(max(1, int(cfg.threads)))
    torch.manual_seed(cfg.seed)
    res = FinetuneResult(modality)
    base = load(Path(base_dir) / f'{modality}_vqvae.pt')
    size = base.cfg.input_size[0]
    # Audio goes through the front end the base was trained with (vision: None).
    mel = model_mel(read_meta(Path(base_dir), modality)) if modality == 'audio' else None
    day_train, day_hold = _split_day(modality, items, size, cfg.holdout, cfg.seed, res,
                                     cfg.holdout_gap_s, mel)
    res.timings['decode_s'] = time.monotonic() - t0

    t = time.monotonic()
    held = heldout_set(modality, mel)
    res.heldout_inputs = int(len(held))
    rehearse = rehearsal_set(modality, mel) if cfg.rehearsal > 0 else None
    res.timings['shipped_data_s'] = time.monotonic() - t
    if should_stop():
        raise Preempted

    t = time.monotonic()
    res.day_before = recon_mse(base, modality, day_hold, should_stop)
    res.heldout_before = recon_mse(base, modality, held, should_stop)
    res.timings['score_before_s'] = time.monotonic() - t

    model = copy.deepcopy(base)
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sample = sampler(modality, day_train, rehearse, cfg.rehearsal, size, cfg.gain_jitter,
                     cfg.flip)
    rng = np.random.default_rng(cfg.seed)
    log.info('%s: training on %d day inputs (%d held back), at most %d steps in %.0f s',
             modality, len(day_train), len(day_hold), cfg.max_steps,
             max(0.0, deadline - time.monotonic()))
    t = time.monotonic()
    window = deadline - t
    acc, n_acc = 0.0, 0
    while res.steps < cfg.max_steps and time.monotonic() < deadline:
        if should_stop():
            raise Preempted
        step = res.steps + 1
        for g in opt.param_groups:
            g['lr'] = learning_rate(cfg, step, time.monotonic() - t, window)
        model.train()
        xb = torch.from_numpy(sample(rng))
        x_hat, z_e, codes = model(xb)
        recon = F.mse_loss(x_hat, xb)
        loss = recon + cfg.beta * F.mse_loss(z_e, model.codebook.lookup(codes))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not cfg.freeze_codebook:
            model.codebook.ema_update(z_e.detach(), codes)
        res.steps = step
        on_step(step)
        acc += recon.item()
        n_acc += 1
        if step % 25 == 0:
            res.losses.append({'step': step, 'recon_mse': acc / n_acc,
                               'elapsed_s': round(time.monotonic() - t, 2)})
            acc, n_acc = 0.0, 0
    res.timings['train_s'] = time.monotonic() - t
    res.timings['step_s'] = res.timings['train_s'] / res.steps if res.steps else math.nan
    if res.steps == 0:
        res.reason = (f'no training step within the {cfg.time_budget_s:g} s budget '
                      f'(data and scoring took {time.monotonic() - t0:.1f} s)')
        res.seconds = time.monotonic() - t0
        return res
    if n_acc:
        res.losses.append({'step': res.steps, 'recon_mse': acc / n_acc,
                           'elapsed_s': round(time.monotonic() - t, 2)})
    model.eval()
    t = time.monotonic()
    res.day_after = recon_mse(model, modality, day_hold, should_stop)
    res.heldout_after = recon_mse(model, modality, held, should_stop)
    res.timings['score_after_s'] = time.monotonic() - t
    res.model = model
    res.decision, res.reason = decide(res, cfg)
    res.seconds = time.monotonic() - t0
    return res


def write_model(res: FinetuneResult, cfg: FinetuneConfig, out_dir: Path, base_dir: Path,
                base_version: str) -> None:
    """Write the fine-tuned model's torch weights, codebook and metadata into out_dir.

    The metadata is the base's (config, preprocessing, how the packaged model was trained)
    with this fine-tune appended to its 'finetune' list. The ONNX graphs and the quality report
    come from export.export_puzzle(modality, out_dir), which reads only these files.
    """
    if res.model is None:
        raise ValueError('no fine-tuned model to write')
    m = res.modality
    out_dir.mkdir(parents=True, exist_ok=True)
    save(res.model, out_dir / f'{m}_vqvae.pt')
    np.save(out_dir / f'{m}_codebook.npy', res.model.codebook.embed.numpy().astype(np.float32))
    meta = read_meta(Path(base_dir), m)
    meta['finetune'] = list(meta.get('finetune', [])) + [{
        'base': base_version, 'steps': res.steps, 'seconds': round(res.seconds, 2),
        'lr': cfg.lr, 'rehearsal': cfg.rehearsal, 'seed': cfg.seed,
        'gain_jitter': cfg.gain_jitter, 'flip': cfg.flip,
        'day_inputs_trained': len(res.train_uuids), 'losses': res.losses,
        'validation': res.validation(cfg), 'torch': torch.__version__}]
    write_json(out_dir / f'{m}_vqvae.json', meta)
