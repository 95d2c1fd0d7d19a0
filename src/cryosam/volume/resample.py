"""Resizing images with aligned pixel centres (what SAM's and DINO's processors do).

torchvision is not available beside the pinned torch, so cryosam resizes itself.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resize_2d(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a 2D array to ``shape`` (half-pixel convention)."""
    factors = np.asarray(shape, float) / np.asarray(image.shape, float)
    coords = [(np.arange(n) + 0.5) / f - 0.5 for n, f in zip(shape, factors)]
    grid = np.meshgrid(*coords, indexing="ij")
    return ndimage.map_coordinates(image, grid, order=1, mode="nearest").astype(np.float32)
