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


def fourier_resample(volume, shape, slab_voxels: float = 16e6) -> np.ndarray:
    """``volume`` (an array, or a lazy view that slices) on a grid of ``shape`` covering the
    same box, by cropping or zero-padding its spectrum one axis at a time
    (:func:`scipy.signal.resample`): sample ``j`` of an axis of ``m`` lies where sample
    ``j * n / m`` of the original's ``n`` did, and every frequency both grids hold is kept as
    it was (no interpolation blur). Each axis is done in slabs of about ``slab_voxels``, read
    from ``volume`` slab by slab on the first, so no full copy of the original is made.
    ``float32``."""
    from scipy.signal import resample

    out = volume
    for axis, m in enumerate(shape):
        if out.shape[axis] == m:
            continue
        new = list(out.shape)
        new[axis] = m
        result = np.empty(new, np.float32)
        other = 1 if axis == 0 else 0  # slabs along another axis
        per = max(1, int(slab_voxels // max(1, np.prod(new) // new[other])))
        for i0 in range(0, out.shape[other], per):
            part = [slice(None)] * 3
            part[other] = slice(i0, i0 + per)
            slab = np.asarray(out[tuple(part)], np.float32)
            result[tuple(part)] = resample(slab, m, axis=axis)
        out = result
    return np.asarray(out, np.float32)
