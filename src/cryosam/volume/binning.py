"""Block-mean binning: the one implementation every stage uses.

:func:`block_mean` bins the last three axes of an array whose sizes are multiples of
the bin; :func:`bin_volume` bins a whole (possibly memory-mapped or lazy) tomogram in
z-slabs, dropping the edge remainder.
"""

from __future__ import annotations

import numpy as np

from cryosam.errors import CryosamError


def block_mean(a: np.ndarray, b: int) -> np.ndarray:
    """Mean of ``b``^3 blocks over the last three axes (their sizes are multiples of ``b``)."""
    if b == 1:
        return a
    *lead, z, y, x = a.shape
    n = len(lead)
    blocks = a.reshape(*lead, z // b, b, y // b, b, x // b, b)
    return blocks.mean(axis=(n + 1, n + 3, n + 5))


def bin_volume(volume, stride: int, slab_voxels: float = 32e6) -> np.ndarray:
    """Mean of ``stride``^3 blocks (the edge remainder is dropped), read in z-slabs of
    about ``slab_voxels`` so a lazy or memory-mapped volume is never copied whole."""
    if stride == 1:
        return np.asarray(volume, dtype=np.float32)
    shape = tuple(int(s) // stride for s in volume.shape)
    if min(shape) < 1:
        raise CryosamError("the volume is smaller than one feature cell; use a smaller diameter")
    ny, nx = shape[1] * stride, shape[2] * stride
    cells = max(1, int(slab_voxels // (stride * ny * nx)))  # binned z-planes per slab
    out = np.empty(shape, dtype=np.float32)
    for z0 in range(0, shape[0], cells):
        z1 = min(shape[0], z0 + cells)
        v = np.asarray(volume[z0 * stride : z1 * stride, :ny, :nx], dtype=np.float32)
        out[z0:z1] = block_mean(v, stride)
    return out


def extract_boxes(volume, points, size: int, b: int = 1) -> np.ndarray:
    """``(len(points), size, size, size)`` boxes binned by ``b``, centred on the (rounded)
    points; zero outside the volume (the standardised mean). ``volume`` may be lazy."""
    full = size * b
    shape = volume.shape
    out = np.zeros((len(points), full, full, full), np.float32)
    for i, p in enumerate(np.round(np.asarray(points, np.float64)).astype(int)):
        lo = p - full // 2
        src = tuple(slice(max(a, 0), min(a + full, s)) for a, s in zip(lo, shape))
        if any(s.start >= s.stop for s in src):
            continue
        dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
        out[(i, *dst)] = volume[src]
    return block_mean(out, b)
