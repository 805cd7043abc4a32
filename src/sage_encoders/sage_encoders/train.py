"""Train a puzzle VQ-VAE offline: `python -m sage_encoders.train vision|audio`.

Runs on one CPU thread in a few minutes, then writes into the model directory the torch
weights, codebook, ONNX graphs (FP32/FP16/INT8), the quality report and a JSON record of how
the model was made (data, seed, steps, losses, held-out evaluation against an untrained model).
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sage_encoders import data
from sage_encoders.export import export_puzzle
from sage_encoders.model_files import PACKAGED_DIR, write_json
from sage_encoders.preprocess import MODEL_MEL
from sage_encoders.vqvae import AUDIO_CONFIG, VISION_CONFIG, VqVae, VqVaeConfig, save

Sampler = Callable[[np.random.Generator], np.ndarray]
DEFAULT_STEPS = {'vision': 2500, 'audio': 2000}  # what the packaged models were trained with


@torch.no_grad()
def evaluate(model: VqVae, x: np.ndarray, batch: int = 8) -> dict[str, float]:
    """Reconstruction MSE (normalised units), codebook usage and perplexity on inputs x."""
    model.eval()
    k = model.cfg.codebook_size
    counts = np.zeros(k)
    se, n = 0.0, 0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i:i + batch])
        x_hat, _, codes = model(xb)
        se += float(F.mse_loss(x_hat, xb, reduction='sum'))
        n += xb.numel()
        counts += np.bincount(codes.numpy().ravel(), minlength=k)
    p = counts / counts.sum()
    nz = p[p > 0]
    return {'recon_mse': se / n, 'codes_used': int((counts > 0).sum()),
            'codebook_usage': float((counts > 0).mean()),
            'perplexity': float(np.exp(-(nz * np.log(nz)).sum()))}


def train(cfg: VqVaeConfig, sample: Sampler, steps: int, seed: int, lr: float = 2e-3,
          beta: float = 0.25, log_every: int = 50,
          progress: Callable[[float, float | None], None] | None = None
          ) -> tuple[VqVae, list[dict[str, float]]]:
    """Train with Adam (cosine decay), EMA codebook and dead-code restarts.

    Args:
        cfg: model shape.
        sample: returns one training batch (B, C, h, w) float32 from a numpy Generator.
        steps: optimiser steps.
        seed: seeds torch and numpy.
        lr: peak learning rate.
        beta: commitment loss weight.
        log_every: steps between loss records.
        progress: called with (steps done, steps) after each step (a progress bar).

    Returns:
        The trained model (eval mode) and the loss log.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = VqVae(cfg)
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    log: list[dict[str, float]] = []
    acc = {'recon': 0.0, 'commit': 0.0, 'n': 0}
    restarted = 0
    with torch.no_grad():  # seed the codebook with real latents
        z0 = model.encoder(torch.from_numpy(sample(rng)))
        model.codebook.restart_dead(z0, threshold=math.inf, gen=gen)
    t0 = time.monotonic()
    for step in range(1, steps + 1):
        model.train()
        for g in opt.param_groups:
            g['lr'] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        x = torch.from_numpy(sample(rng))
        x_hat, z_e, codes = model(x)
        z_q = model.codebook.lookup(codes)
        recon = F.mse_loss(x_hat, x)
        commit = F.mse_loss(z_e, z_q)
        loss = recon + beta * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.codebook.ema_update(z_e.detach(), codes)
        if step % 25 == 0 and step < 0.9 * steps:
            restarted += model.codebook.restart_dead(z_e.detach(), 1.0, gen)
        acc['recon'] += recon.item()
        acc['commit'] += commit.item()
        acc['n'] += 1
        if step % log_every == 0 or step == steps:
            entry = {'step': step, 'recon_mse': acc['recon'] / acc['n'],
                     'commit_mse': acc['commit'] / acc['n'],
                     'codes_used_batch': int(codes.unique().numel()),
                     'restarted_total': restarted,
                     'elapsed_s': round(time.monotonic() - t0, 1)}
            log.append(entry)
            print(f"step {step}/{steps} recon {entry['recon_mse']:.4f} "
                  f"commit {entry['commit_mse']:.4f} used {entry['codes_used_batch']} "
                  f"({entry['elapsed_s']} s)", flush=True)
            acc = {'recon': 0.0, 'commit': 0.0, 'n': 0}
        if progress is not None:
            progress(step, steps)
    model.eval()
    return model, log


def _vision(steps: int, seed: int) -> tuple[VqVaeConfig, Sampler, np.ndarray, dict[str, Any]]:
    pool = data.vision_pool(400, seed)
    size = VISION_CONFIG.input_size[0]

    def sample(rng: np.random.Generator) -> np.ndarray:
        return data.vision_crops(pool, rng, batch=16, crop=96, size=size)

    desc = {'train_images': list(data.VISION_TRAIN_IMAGES),
            'heldout_images': list(data.VISION_HELDOUT_IMAGES),
            'pool': '400 augmented frames (half scikit-image photos, half synthetic scenes), '
                    'augment: crop 15-100% area, aspect 0.6-1.6, flip, brightness/contrast, '
                    'channel swap, grey, noise, blur',
            'batch': '16 random 96x96 crops of frames preprocessed to 240x240',
            'heldout': 'whole + 4 quarter crops of each held-out photo, 16 synthetic scenes '
                       f'(seed {data.HELDOUT_SEED})'}
    return VISION_CONFIG, sample, data.vision_heldout(size), desc


def _audio(steps: int, seed: int) -> tuple[VqVaeConfig, Sampler, np.ndarray, dict[str, Any]]:
    mel = MODEL_MEL
    train_x = data.audio_mels(data.audio_train_windows(mel, seed), mel)
    held = data.audio_mels(data.audio_heldout_windows(mel), mel)

    def sample(rng: np.random.Generator) -> np.ndarray:
        return train_x[rng.integers(0, len(train_x), 32)]

    desc = {'speech_train': {'phrases': len(data.SPEECH_TRAIN),
                             'voices': list(data.VOICES_TRAIN), 'takes_per_phrase': 3},
            'speech_heldout': {'phrases': list(data.SPEECH_HELDOUT),
                               'voices': list(data.VOICES_HELDOUT)},
            'synth_train_clips': '60 x 4 s: tones, chirps, buzzes, noise bursts, claps, '
                                 'clicks, hums over a -80..-40 dBFS floor',
            'synth_heldout_clips': f'10 x 4 s (seed {data.HELDOUT_SEED})',
            'windows_train': int(len(train_x)), 'windows_heldout': int(len(held)),
            'batch': '32 whole windows', 'mel': mel.__dict__}
    return AUDIO_CONFIG, sample, held, desc


def run(modality: str, out_dir: Path, steps: int, seed: int, export: bool = True,
        progress: Callable[[float, float | None], None] | None = None) -> dict[str, Any]:
    """Train, evaluate against an untrained model, save, export; return the record
    (progress: see `train`)."""
    torch.set_num_threads(1)
    t0 = time.monotonic()
    cfg, sample, held, desc = (_vision if modality == 'vision' else _audio)(steps, seed)
    t_data = time.monotonic() - t0
    torch.manual_seed(seed)
    untrained = VqVae(cfg)
    with torch.no_grad():
        z0 = untrained.encoder(torch.from_numpy(sample(np.random.default_rng(seed))))
        untrained.codebook.restart_dead(z0, math.inf, torch.Generator().manual_seed(seed))
    base = evaluate(untrained, held)
    model, log = train(cfg, sample, steps, seed, progress=progress)
    t_train = time.monotonic() - t0 - t_data
    trained = evaluate(model, held)
    out_dir.mkdir(parents=True, exist_ok=True)
    save(model, out_dir / f'{modality}_vqvae.pt')
    np.save(out_dir / f'{modality}_codebook.npy',
            model.codebook.embed.numpy().astype(np.float32))
    record: dict[str, Any] = {
        'format': 1, 'modality': modality, 'config': cfg.to_json(),
        'preprocess': ({'kind': 'rgb', 'size': cfg.input_size[0], 'scale': 'x/127.5 - 1',
                        'function': 'sage_encoders.preprocess.preprocess_rgb'}
                       if modality == 'vision' else
                       {'kind': 'log_mel', 'mel': MODEL_MEL.__dict__,
                        'function': 'sage_encoders.preprocess.preprocess_audio'}),
        'training': {'command': f'python -m sage_encoders.train {modality} --steps {steps} '
                                f'--seed {seed}',
                     'data': desc, 'seed': seed, 'steps': steps, 'optimizer': 'Adam, cosine',
                     'lr': 2e-3, 'commitment_beta': 0.25, 'codebook': 'EMA 0.99, dead-code '
                     'restart every 25 steps (first 90%)', 'losses': log,
                     'data_seconds': round(t_data, 1), 'train_seconds': round(t_train, 1),
                     'threads': 1, 'torch': torch.__version__, 'numpy': np.__version__,
                     'python': platform.python_version(), 'machine': platform.machine()},
        'evaluation': {'heldout_inputs': int(len(held)), 'trained': trained,
                       'untrained': base,
                       'recon_ratio_untrained_over_trained':
                           base['recon_mse'] / max(trained['recon_mse'], 1e-12)},
    }
    write_json(out_dir / f'{modality}_vqvae.json', record)
    print(f"held-out recon {trained['recon_mse']:.4f} vs untrained {base['recon_mse']:.4f}; "
          f"codes used {trained['codes_used']}/{cfg.codebook_size}", flush=True)
    if export:
        export_puzzle(modality, out_dir)
    return record


def main(argv: list[str] | None = None, prog: str | None = None,
         progress: Callable[[float, float | None], None] | None = None) -> int:
    """Command line: train one modality into the packaged model directory.

    `prog` names the command in usage and --help (`sage train` when called by the sage CLI),
    which also passes `progress` (see `train`).
    """
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('modality', choices=('vision', 'audio'), help='which puzzle VQ-VAE')
    ap.add_argument('--out', type=Path, default=PACKAGED_DIR,
                    help='model directory to write (default: the packaged models, %(default)s)')
    ap.add_argument('--steps', type=int, default=None,
                    help='training steps (default: '
                    + ', '.join(f'{n} for {m}' for m, n in DEFAULT_STEPS.items()) + ')')
    ap.add_argument('--seed', type=int, default=data.TRAIN_SEED,
                    help='seed of the data sampler and the weights (default: %(default)s)')
    ap.add_argument('--no-export', action='store_true',
                    help='skip the ONNX export (FP32/FP16/INT8) after training')
    args = ap.parse_args(argv)
    steps = args.steps or DEFAULT_STEPS[args.modality]
    run(args.modality, args.out, steps, args.seed, export=not args.no_export,
        progress=progress)
    return 0


if __name__ == '__main__':
    sys.exit(main())
