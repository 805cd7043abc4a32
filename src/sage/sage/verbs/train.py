"""Offline VQ-VAE training: `sage train`."""
from __future__ import annotations

from typing import Optional

import typer


# Lazy imports inside each command: `sage --help` and the other verbs start without loading
# what this one needs (rclpy, onnxruntime, torch, SQLAlchemy).


def train(ctx: typer.Context,
          modality: Optional[str] = typer.Argument(None, help='vision | audio')) -> None:
    """Train a puzzle VQ-VAE offline (options: sage train vision --help)."""
    from sage_encoders.train import main as train_main
    from sage.progress import progress_bar
    args = [*([modality] if modality else []), *ctx.args]
    asks_help = bool({'-h', '--help'} & set(args)) or modality is None
    with progress_bar(f'train {modality}', unit='steps', enabled=False if asks_help else None
                      ) as report:
        raise typer.Exit(train_main(args, prog='sage train', progress=report))

