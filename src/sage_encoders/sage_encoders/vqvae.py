"""The puzzle VQ-VAE (torch; training, export and parity tests only, never the nano nodes).

One small convolutional VQ-VAE serves both puzzle encoders:

- vision: (B, 3, 240, 240) in [-1, 1] -> three stride-2 convs -> (B, D, 30, 30) latent ->
  nearest of K codes -> decoder (three transposed convs) -> (B, 3, 240, 240).
  224x224 camera frames are resized to 240 (see preprocess.preprocess_rgb) so the stride-8
  encoder gives the 30x30 puzzle grid; the model is fully convolutional (ONNX has dynamic
  H/W), so other sides give side/8 grids.
- audio: (B, 1, 64, 64) normalised log-mel -> two stride-2 convs -> (B, D, 16, 16) -> codes.

The codebook is trained with EMA updates and dead-code restarts so most codes stay in use.
Quantisation at inference is done in numpy (`quantize.nearest_codes`) on the encoder output,
so torch and every ONNX variant share one argmin.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from sage_encoders.errors import ModelError


@dataclass(frozen=True)
class VqVaeConfig:
    """Shape of one puzzle VQ-VAE.

    Attributes:
        modality: 'vision' or 'audio'.
        in_channels: 3 for RGB, 1 for log-mel.
        channels: encoder widths, one stride-2 conv (k4, s2, p1) per entry.
        code_dim: latent channels D.
        codebook_size: number of codes K.
        input_size: (H, W) the model is trained and calibrated at.
    """

    modality: str
    in_channels: int
    channels: tuple[int, ...]
    code_dim: int
    codebook_size: int
    input_size: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stride(self) -> int:
        """Pixels per code along each axis."""
        return 2 ** len(self.channels)

    @property
    def grid(self) -> tuple[int, int]:
        """Code grid (h, w) at input_size."""
        return (self.input_size[0] // self.stride, self.input_size[1] // self.stride)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        d = asdict(self)
        d['channels'] = list(self.channels)
        d['input_size'] = list(self.input_size)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> 'VqVaeConfig':
        """Inverse of to_json."""
        return cls(modality=d['modality'], in_channels=int(d['in_channels']),
                   channels=tuple(int(c) for c in d['channels']), code_dim=int(d['code_dim']),
                   codebook_size=int(d['codebook_size']),
                   input_size=(int(d['input_size'][0]), int(d['input_size'][1])),
                   extra=dict(d.get('extra', {})))


VISION_CONFIG = VqVaeConfig('vision', 3, (16, 32, 64), 32, 128, (240, 240))
AUDIO_CONFIG = VqVaeConfig('audio', 1, (32, 64), 32, 64, (64, 64))


class Encoder(nn.Module):
    """x (B, C, H, W) -> z_e (B, D, H/s, W/s)."""

    def __init__(self, cfg: VqVaeConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = cfg.in_channels
        for c in cfg.channels:
            layers += [nn.Conv2d(prev, c, 4, 2, 1), nn.ReLU()]
            prev = c
        layers.append(nn.Conv2d(prev, cfg.code_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """z_q (B, D, h, w) -> x_hat (B, C, h*s, w*s)."""

    def __init__(self, cfg: VqVaeConfig) -> None:
        super().__init__()
        widths = list(reversed(cfg.channels))  # e.g. 64, 32, 16
        layers: list[nn.Module] = [nn.Conv2d(cfg.code_dim, widths[0], 1), nn.ReLU()]
        outs = widths[1:] + [cfg.in_channels]
        for i, (cin, cout) in enumerate(zip(widths, outs)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class EmaCodebook(nn.Module):
    """Vector quantiser with an EMA-updated codebook (no codebook gradient)."""

    def __init__(self, cfg: VqVaeConfig, decay: float = 0.99) -> None:
        super().__init__()
        self.decay = decay
        embed = torch.randn(cfg.codebook_size, cfg.code_dim)
        self.register_buffer('embed', embed)  # (K, D)
        self.register_buffer('cluster_size', torch.ones(cfg.codebook_size))
        self.register_buffer('embed_sum', embed.clone())

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D, h, w) -> nearest code indices (B, h, w)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N, D)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t()
                + self.embed.pow(2).sum(1)[None])  # (N, K)
        return dist.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) -> z_q (B, D, h, w)."""
        return F.embedding(codes, self.embed).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        """Move each used code toward the mean of the latents assigned to it."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        onehot = F.one_hot(codes.reshape(-1), self.embed.shape[0]).type(flat.dtype)  # (N, K)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + 1e-5) / (n + self.embed.shape[0] * 1e-5) * n
        self.embed.copy_(self.embed_sum / size[:, None])

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, threshold: float, gen: torch.Generator) -> int:
        """Re-seed codes whose EMA usage fell below threshold with random batch latents."""
        dead = (self.cluster_size < threshold).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        pick = torch.randint(0, flat.shape[0], (dead.numel(),), generator=gen)
        self.embed[dead] = flat[pick]
        self.embed_sum[dead] = flat[pick]
        self.cluster_size[dead] = 1.0
        return int(dead.numel())


class VqVae(nn.Module):
    """Encoder + EMA codebook + decoder."""

    def __init__(self, cfg: VqVaeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.codebook = EmaCodebook(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (x_hat, z_e, codes); straight-through gradient from x_hat to the encoder."""
        z_e = self.encoder(x)
        codes = self.codebook.codes(z_e.detach())
        z_q = self.codebook.lookup(codes)
        z_st = z_e + (z_q - z_e).detach()
        return self.decoder(z_st), z_e, codes


def save(model: VqVae, path: Path) -> None:
    """Save the state dict and config together."""
    torch.save({'config': model.cfg.to_json(), 'state_dict': model.state_dict()}, path)


def load(path: Path) -> VqVae:
    """Load a saved model, checking every weight's shape against its config.

    Raises:
        ModelError: missing file, missing/extra weights or shape mismatch.
    """
    if not Path(path).is_file():
        raise ModelError(f'model file not found: {path}')
    blob = torch.load(path, map_location='cpu', weights_only=True)
    cfg = VqVaeConfig.from_json(blob['config'])
    model = VqVae(cfg)
    expected = model.state_dict()
    got = blob['state_dict']
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    bad = [f'{k}: {tuple(got[k].shape)} != {tuple(v.shape)}'
           for k, v in expected.items() if k in got and got[k].shape != v.shape]
    if missing or extra or bad:
        raise ModelError(f'{path}: weights do not match config (missing={missing}, '
                         f'extra={extra}, shape={bad})')
    model.load_state_dict(got)
    model.eval()
    return model
