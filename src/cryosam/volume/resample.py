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


def resample_map(density, map_voxel_size: float, voxel_size: float) -> np.ndarray:
    """A density map (an EMDB map, a previous average: any voxel size) at ``voxel_size`` Å:
    its background (the median of the box's faces) set to 0, low-passed first when the new
    grid is coarser (a 1 Å map decimated tenfold without it keeps every tenth voxel and
    aliases the rest into noise), then resampled (linear). ``float32``."""
    m = np.asarray(density, np.float64)
    faces = np.concatenate([m[[0, -1]].ravel(), m[:, [0, -1]].ravel(), m[..., [0, -1]].ravel()])
    m = m - float(np.median(faces))
    factor = float(map_voxel_size) / float(voxel_size)
    if abs(factor - 1.0) <= 1e-3:
        return m.astype(np.float32)
    if factor < 1.0:
        m = ndimage.gaussian_filter(m, 0.5 / factor)
    return ndimage.zoom(m, factor, order=1, mode="nearest").astype(np.float32)
