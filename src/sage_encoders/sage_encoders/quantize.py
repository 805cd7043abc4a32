"""Nearest-code quantisation in numpy, shared by every runtime (torch and ONNX variants)."""
from __future__ import annotations

import numpy as np


def code_distances(z_e: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Squared distances of every latent cell to every code.

    Args:
        z_e: (D, h, w) encoder output.
        codebook: (K, D) code vectors.

    Returns:
        (h*w, K) float32 squared distances.
    """
    flat = z_e.reshape(z_e.shape[0], -1).T.astype(np.float32)  # (N, D)
    cb = codebook.astype(np.float32)
    return ((flat * flat).sum(1, keepdims=True) - 2.0 * flat @ cb.T
            + (cb * cb).sum(1)[None, :])


def nearest_codes(z_e: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """(D, h, w) latent -> (h, w) int64 index of the nearest code (first on ties)."""
    d = code_distances(z_e, codebook)
    return d.argmin(1).reshape(z_e.shape[1], z_e.shape[2])


def ranked_codes(z_e: np.ndarray, codebook: np.ndarray, r: int) -> np.ndarray:
    """(D, h, w) latent -> (h, w, r) int64 codes ordered nearest first.

    Ties go to the lower code index (same order as a stable argsort), so column 0 equals
    `nearest_codes`. r repeated argmins cost ~0.1 ms each; a full sort of 900 x 128 ~5 ms.
    """
    d = code_distances(z_e, codebook)  # (N, K)
    r = min(r, d.shape[1])
    rows = np.arange(d.shape[0])
    order = np.empty((d.shape[0], r), np.int64)
    for j in range(r):
        best = d.argmin(1)
        order[:, j] = best
        if j + 1 < r:
            d[rows, best] = np.inf
    return order.reshape(z_e.shape[1], z_e.shape[2], r)


def lookup(codes: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """(h, w) codes -> (1, D, h, w) float32 quantised latent."""
    return np.ascontiguousarray(codebook[codes].transpose(2, 0, 1)[None].astype(np.float32))
