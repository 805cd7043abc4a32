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
    raise typer.Exit(train_main([*([modality] if modality else []), *ctx.args],
                                prog='sage train'))

