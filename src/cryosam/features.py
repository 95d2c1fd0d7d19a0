"""Tomogram features for matching: the weight-free feature bank and feature volumes.

The classical bank is rotation invariant by construction and sized from the
particle diameter ``d``. It works on the volume binned so a particle spans about
eight voxels (``stride``), and holds, per voxel of that grid:

- Gaussian scale space at 0.1, 0.2 and 0.35 d (density at three scales);
- a radial density profile: mean density on spherical shells of radius 0 to
  0.75 d around the voxel (solid vs hollow, size, layering);
- Hessian eigenvalues at 0.25 d (blob, tube or sheet);
- local standard deviation (texture energy);
- eigenvalues of the density's second-moment tensor within the particle's ball
  (elongation, flatness: shape beyond size), and the length of its first moment
  (how far the local mass centre is from the voxel: zero at particle centres).

Each channel is standardised over the tomogram, so cosine similarities, and
``tau_sim``, mean the same in every tomogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage

from cryosam.errors import CryosamError

CELLS_PER_DIAMETER = 8.0
"""The feature grid is binned so one particle diameter spans about this many cells."""


@dataclass
class FeatureVolume:
    """Per-voxel features on a grid ``stride`` times coarser than the input.

    Attributes:
        data: ``(C, z, y, x)`` float16, standardised per channel.
        stride: input voxels per feature cell along each axis.
        names: channel names.
        input_shape: shape of the input volume.
    """

    data: np.ndarray
    stride: int
    names: list[str]
    input_shape: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])  # type: ignore[return-value]

    def to_grid(self, zyx) -> np.ndarray:
        """Input voxel coordinates -> feature grid coordinates (float)."""
        return (np.asarray(zyx, dtype=np.float64) - (self.stride - 1) / 2.0) / self.stride

    def to_input(self, grid_zyx) -> np.ndarray:
        """Feature grid coordinates -> input voxel coordinates."""
        return np.asarray(grid_zyx, dtype=np.float64) * self.stride + (self.stride - 1) / 2.0

    def sample(self, zyx) -> np.ndarray:
        """Features at input positions ``(N, 3)`` (nearest cell) -> ``(N, C)`` float32."""
        g = np.round(self.to_grid(np.asarray(zyx).reshape(-1, 3))).astype(int)
        g = np.clip(g, 0, np.asarray(self.shape) - 1)
        return self.data[:, g[:, 0], g[:, 1], g[:, 2]].T.astype(np.float32)

    def pool(self, mask: np.ndarray, offset, centre_weighted: bool = True) -> np.ndarray:
        """Masked average of the features over an instance mask given in input voxels.

        Args:
            mask: bool mask over a box of the input; ``offset`` is the box corner.
            centre_weighted: weight cells by their depth inside the mask (distance to
                its edge), so the descriptor is dominated by the particle's centre.
        """
        idx = np.argwhere(mask) + np.asarray(offset)
        if len(idx) == 0:
            raise CryosamError("cannot pool features over an empty mask")
        weights = np.ones(len(idx))
        if centre_weighted:
            depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
            weights = depth[mask] ** 2
        cells = np.clip(idx // self.stride, 0, np.asarray(self.shape) - 1)
        flat = np.ravel_multi_index(cells.T, self.shape)
        uniq, inv = np.unique(flat, return_inverse=True)
        w = np.bincount(inv, weights=weights)
        g = np.unravel_index(uniq, self.shape)
        feats = self.data[:, g[0], g[1], g[2]].astype(np.float64)
        return (feats * w).sum(axis=1) / w.sum()


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
        out[z0:z1] = v.reshape(z1 - z0, stride, shape[1], stride, shape[2], stride).mean(
            axis=(1, 3, 5)
        )
    return out


def feature_stride(diameter_px: float) -> int:
    """Binning that makes one diameter about :data:`CELLS_PER_DIAMETER` cells."""
    return max(1, int(round(diameter_px / CELLS_PER_DIAMETER)))


def _fft_correlate_many(vol: np.ndarray, kernels: list[np.ndarray]) -> list[np.ndarray]:
    """Same-size correlations of ``vol`` with small odd-sized kernels (one forward FFT)."""
    k = max(kk.shape[0] for kk in kernels)
    half = k // 2
    shape = [fft.next_fast_len(s + k - 1, real=True) for s in vol.shape]
    fv = fft.rfftn(vol, shape, workers=-1)
    out = []
    for kern in kernels:
        pad = (k - kern.shape[0]) // 2
        kk = np.pad(kern, pad)[::-1, ::-1, ::-1]
        res = fft.irfftn(fv * fft.rfftn(kk, shape, workers=-1), shape, workers=-1)
        out.append(res[half : half + vol.shape[0], half : half + vol.shape[1],
                       half : half + vol.shape[2]].astype(np.float32))  # fmt: skip
    return out


def _shell_kernels(radii: list[float], width: float, rmax: float):
    n = int(np.ceil(rmax + 2 * width))
    g = np.indices((2 * n + 1,) * 3, dtype=np.float32) - n
    r = np.sqrt((g**2).sum(0))
    kernels = []
    for r0 in radii:
        kern = np.exp(-0.5 * ((r - r0) / width) ** 2)
        kernels.append(kern / kern.sum())
    return kernels, g, r


def classical_features(volume: np.ndarray, diameter_px: float, progress=None) -> FeatureVolume:
    """The weight-free feature bank of a prepared (protein bright) volume."""
    stride = feature_stride(diameter_px)
    v = bin_volume(volume, stride)
    d = diameter_px / stride
    chans: list[np.ndarray] = []
    names: list[str] = []
    base = ndimage.gaussian_filter(v, 0.1 * d)
    for f in (0.1, 0.2, 0.35):
        chans.append(base if f == 0.1 else ndimage.gaussian_filter(v, f * d))
        names.append(f"gauss_{f:g}d")
    radii = [f * d for f in (0.0, 0.15, 0.3, 0.45, 0.6, 0.75)]
    shells, g, r = _shell_kernels(radii, max(0.6, 0.07 * d), 0.75 * d)
    ball = (r <= 0.5 * d).astype(np.float32)
    pos = np.maximum(base, 0)
    moment_kernels = [ball] + [ball * g[i] for i in range(3)]
    moment_kernels += [ball * g[i] * g[j] for i in range(3) for j in range(i, 3)]
    conv = _fft_correlate_many(base, shells)
    chans += conv
    names += [f"shell_{f:g}d" for f in (0.0, 0.15, 0.3, 0.45, 0.6, 0.75)]
    if progress:
        progress("radial profiles")
    hs = 0.25 * d
    hess = [
        ndimage.gaussian_filter(v, hs, order=tuple(int(k == i) + int(k == j) for k in range(3)))
        for i in range(3)
        for j in range(i, 3)
    ]
    ev = _sym_eigvalsh(hess) * hs**2
    chans += [ev[..., 0], ev[..., 1], ev[..., 2]]
    names += ["hessian_l1", "hessian_l2", "hessian_l3"]
    mean_sq = ndimage.gaussian_filter(v * v, hs)
    mean = ndimage.gaussian_filter(v, hs)
    chans.append(np.sqrt(np.maximum(mean_sq - mean**2, 0)))
    names.append("local_std")
    m = _fft_correlate_many(pos, moment_kernels)
    mass = np.maximum(m[0], 1e-6)
    first = np.stack(m[1:4]) / mass
    second = [mm / mass for mm in m[4:]]
    # central second moments: E[xx] - E[x]E[x]
    k = 0
    central = []
    for i in range(3):
        for j in range(i, 3):
            central.append(second[k] - first[i] * first[j])
            k += 1
    iv = _sym_eigvalsh(central) / (d * d)
    chans += [iv[..., 0], iv[..., 1], iv[..., 2]]
    names += ["inertia_l1", "inertia_l2", "inertia_l3"]
    chans.append(np.sqrt((first**2).sum(0)) / d)
    names.append("mass_offset")
    if progress:
        progress("shape moments")
    data = np.empty((len(chans),) + v.shape, dtype=np.float16)
    for i, c in enumerate(chans):
        mu, sd = float(c.mean()), float(c.std())
        data[i] = (c - mu) / (sd if sd > 0 else 1.0)
    return FeatureVolume(data, stride, names, tuple(volume.shape))


def _sym_eigvalsh(comp: list[np.ndarray]) -> np.ndarray:
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
