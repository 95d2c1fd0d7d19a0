"""Per-voxel eigenvalues of symmetric 3 x 3 matrices (Hessians, structure and inertia
tensors), in closed form, and Gaussian Hessians of a volume."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

HESSIAN_ORDERS = [
    tuple(int(k == i) + int(k == j) for k in range(3)) for i in range(3) for j in range(i, 3)
]
"""Derivative orders of the six distinct Hessian entries xx, xy, xz, yy, yz, zz."""


def gaussian_hessian(v: np.ndarray, sigma: float) -> list[np.ndarray]:
    """The six distinct entries of the Gaussian Hessian of ``v`` at ``sigma`` voxels."""
    return [ndimage.gaussian_filter(v, sigma, order=o) for o in HESSIAN_ORDERS]


def sym_eigvalsh(comp: list[np.ndarray]) -> np.ndarray:
    """Sorted eigenvalues (ascending, last axis) of per-voxel symmetric 3x3 matrices given as
    xx, xy, xz, yy, yz, zz: the closed-form trigonometric solution, ~7x faster than batched
    LAPACK and without its 3x3 stacks in memory (float32, accurate to ~1e-6 of the scale)."""
    xx, xy, xz, yy, yz, zz = (np.asarray(c, dtype=np.float32) for c in comp)
    q = (xx + yy + zz) / np.float32(3)
    axx, ayy, azz = xx - q, yy - q, zz - q
    off = xy * xy + xz * xz + yz * yz
    p = np.sqrt((axx * axx + ayy * ayy + azz * azz + 2 * off) / np.float32(6))
    inv = np.divide(1, p, out=np.zeros_like(p), where=p > 0)
    # det(B) / 2 with B = (A - qI) / p, in (-1, 1) up to rounding
    det = axx * (ayy * azz - yz * yz) - xy * (xy * azz - yz * xz) + xz * (xy * yz - ayy * xz)
    r = np.clip(det * inv * inv * inv / np.float32(2), -1, 1)
    del det, axx, ayy, azz, off
    phi = np.arccos(r) / np.float32(3)
    hi = q + 2 * p * np.cos(phi)
    lo = q + 2 * p * np.cos(phi + np.float32(2 * np.pi / 3))
    mid = 3 * q - hi - lo
    return np.stack([lo, mid, hi], axis=-1)
