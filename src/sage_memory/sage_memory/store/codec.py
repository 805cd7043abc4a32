"""Compact column encodings of embeddings and code grids (no schema change).

Embeddings are stored as little-endian float16 (half the bytes; recall@10 against float32 stays
>= 0.99, see test_codec) unless a value does not fit float16, then as float32. Code grids are
bit-packed at ceil(log2(codebook_size)) bits per code (9 bits for a 512-entry codebook instead
of 16). Each form is told apart by its byte length against the dimensions stored beside it
(embedding_dim, grid_h x grid_w), so rows written before this encoding (float32, uint16) read back
unchanged and an export file stays portable.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_F16_MAX = float(np.finfo(np.float16).max)


def encode_embedding(vec: np.ndarray) -> bytes:
    """Bytes of a (D,) embedding: float16, or float32 when a value would not survive float16."""
    v = np.asarray(vec, dtype=np.float32).ravel()
    if np.all(np.abs(v) <= _F16_MAX):
        return v.astype('<f2').tobytes()
    return v.astype('<f4').tobytes()


def encode_embeddings(vecs: Sequence[np.ndarray]) -> list[bytes]:
    """encode_embedding of each vector, the same bytes, converted a batch at a time (the
    writer's hot path: one numpy call per batch instead of several per row)."""
    out: list[bytes] = [b''] * len(vecs)
    by_size: dict[int, list[int]] = {}
    for i, v in enumerate(vecs):
        by_size.setdefault(int(np.size(v)), []).append(i)
    for size, rows in by_size.items():
        arr = np.stack([np.asarray(vecs[i], dtype=np.float32).ravel() for i in rows])
        fits = np.all(np.abs(arr) <= _F16_MAX, axis=1)
        with np.errstate(over='ignore', invalid='ignore'):  # rows that do not fit: unused
            half = arr.astype('<f2').tobytes()
        step = 2 * size
        for j, i in enumerate(rows):
            out[i] = (half[j * step:(j + 1) * step] if fits[j]
                      else arr[j].astype('<f4').tobytes())
    return out


def as_stored(vecs: np.ndarray) -> np.ndarray:
    """(N, D) float32 embeddings rounded as encode_embedding stores them, row by row."""
    v = np.asarray(vecs, dtype=np.float32)
    fits = np.all(np.abs(v) <= _F16_MAX, axis=-1)
    out: np.ndarray = np.where(fits[..., None], v.astype(np.float16).astype(np.float32), v)
    return out


def decode_embeddings(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """(N, dim) float32 from stored embeddings (float16 or float32 each, told by length)."""
    half = 2 * dim
    if set(map(len, blobs)) == {half}:  # the usual case: one conversion for all rows
        joined = b''.join(blobs)
        return np.frombuffer(joined, '<f2').reshape(len(blobs), dim).astype(np.float32)
    out = np.empty((len(blobs), dim), np.float32)
    for i, b in enumerate(blobs):
        out[i] = np.frombuffer(b, '<f2' if len(b) == half else '<f4', dim)
    return out


def decode_embedding(blob: bytes, dim: int) -> np.ndarray:
    """(dim,) float32 from one stored embedding."""
    out: np.ndarray = np.frombuffer(blob, '<f2' if len(blob) == 2 * dim else '<f4',
                                    dim).astype(np.float32)
    return out


def code_bits(codebook_size: int) -> int:
    """Bits per packed code for a codebook (16 = unpacked uint16)."""
    if codebook_size <= 1:
        return 16
    return min(16, max(1, int(codebook_size - 1).bit_length()))


def encode_codes(codes: np.ndarray, codebook_size: int) -> bytes:
    """Bytes of a code grid, bit-packed when every code is below codebook_size."""
    flat = np.ascontiguousarray(codes, dtype='<u2').ravel()
    bits = code_bits(codebook_size)
    if bits >= 16 or flat.size == 0 or int(flat.max()) >= codebook_size:
        return flat.tobytes()
    planes = (flat[:, None] >> np.arange(bits, dtype=np.uint16)) & 1
    return np.packbits(planes.astype(np.uint8).ravel(), bitorder='little').tobytes()


def decode_codes(blob: bytes, grid_h: int, grid_w: int, codebook_size: int) -> np.ndarray:
    """(grid_h, grid_w) uint16 codes from stored bytes (packed or plain uint16, by length)."""
    n = grid_h * grid_w
    if len(blob) == 2 * n:
        return np.frombuffer(blob, '<u2').astype(np.uint16).reshape(grid_h, grid_w)
    bits = code_bits(codebook_size)
    planes = np.unpackbits(np.frombuffer(blob, np.uint8), count=n * bits, bitorder='little')
    weights = (1 << np.arange(bits)).astype(np.uint16)
    codes = planes.reshape(n, bits).astype(np.uint16) @ weights
    return codes.astype(np.uint16).reshape(grid_h, grid_w)
