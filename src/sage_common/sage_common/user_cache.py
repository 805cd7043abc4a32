"""Where SAGE keeps what it can make again (scenes, encoded replays, TensorRT engines).

One root for all of them, so a user who moves or clears the cache finds everything in one
place: $XDG_CACHE_HOME/sage, else ~/.cache/sage. No rclpy here.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """$XDG_CACHE_HOME/sage/<parts> (else ~/.cache/sage/<parts>); not created here."""
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base, 'sage', *parts)
