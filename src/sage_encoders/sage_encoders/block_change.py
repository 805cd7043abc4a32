"""What appeared in one place: the vision encoder's `colour_change` and `grey_change` features.

The puzzle codes describe local texture, so an object set down on a floor of like texture can
leave them almost as they were: a smooth blue box on grey carpet, or a grey clock on a grey
desk (on the realistic scenes such a clock moved the code grid no more than the pan does).
What changed is its colour or its brightness against its surroundings. Both features compare
a thumbnail of the frame with the previous frame's, in the same way:

- colour_change works on chromaticity (r and g over r + g + b, per cell), which does not move
  when the light, the exposure or the gain steps (all three scale r, g and b alike);
- grey_change works on luma over the frame's mean luma, which a light, exposure or gain step
  also leaves as it was, so those are left to the brightness features;
- a cell is new by how far its value lies outside the range (per channel, lowest to highest)
  of the previous frame's cells up to `shift` cells away: a pan or a jitter moves a cell by
  whole cells or mixes it with its neighbours, and either stays within that range. The
  `shift` cells along the edge are left out: a pan brings in there what the last frame did not
  hold (on the scenes, the largest calm grey_change halved without them);
- the differences are averaged over `block` x `block` cells, and the feature is the largest
  block less the median block: an object fills a block, sensor noise averages out in it, and
  a change of the whole frame (a camera's white balance settling, a tinted light switched on)
  moves the median block as much as the largest.

A dark offset is added to r, g and b before the chromaticity ratio, so the chromaticity of
near-black cells (mostly noise) stays close to grey.
"""
from __future__ import annotations

import cv2
import numpy as np


def chromaticity(thumb: np.ndarray, dark: float) -> np.ndarray:
    """(height, width, 2) r and g chromaticity of a (height, width, 3) uint8 RGB thumbnail.

    Args:
        thumb: the frame, shrunk (the vision encoder's motion thumbnail).
        dark: offset added to each channel (0..1 units) before the ratio.
    """
    rgb = thumb.astype(np.float32) / np.float32(255.0) + np.float32(dark)
    return rgb[:, :, :2] / rgb.sum(axis=2, keepdims=True)


def relative_luma(grey: np.ndarray) -> np.ndarray:
    """(height, width, 1) grey thumbnail (0..1) over its mean: a light or gain step scales
    every cell alike, so it leaves this as it was."""
    g = np.asarray(grey, np.float32)
    return (g / max(float(g.mean()), 1e-3))[:, :, None]


def block_change(prev: np.ndarray, cur: np.ndarray, block: int, shift: int) -> float:
    """Largest mean change of a block between two thumbnails, less the median block's.

    Args:
        prev: the previous frame's thumbnail, (height, width, channels) float.
        cur: this frame's, of the same shape.
        block: side of the blocks (cells) changes are averaged over; a thumbnail smaller
            than a block is one block.
        shift: cells a cell may have moved since the previous frame (and cells along the
            edge left out, where a pan brings in new content).
    """
    shape = cur.shape
    if shift > 0:
        kernel = np.ones((2 * shift + 1, 2 * shift + 1), np.uint8)
        # (cv2 drops a single channel: put it back)
        hi = cv2.dilate(prev, kernel, borderType=cv2.BORDER_REPLICATE).reshape(shape)
        lo = cv2.erode(prev, kernel, borderType=cv2.BORDER_REPLICATE).reshape(shape)
    else:
        hi = lo = prev
    # L1 over the channels of the distance to the neighbourhood's range.
    outside = (np.maximum(cur - hi, 0.0) + np.maximum(lo - cur, 0.0)).sum(axis=2)
    if shift > 0 and min(outside.shape) > 2 * shift:
        outside = outside[shift:-shift, shift:-shift]
    h, w = outside.shape
    bh, bw = min(block, h), min(block, w)
    # Block means at every position (a box filter), only where the block is whole.
    means = cv2.blur(outside, (bw, bh), borderType=cv2.BORDER_CONSTANT)
    top, left = bh // 2, bw // 2
    whole = means[top:top + h - bh + 1, left:left + w - bw + 1]
    return float(whole.max() - np.median(whole))
