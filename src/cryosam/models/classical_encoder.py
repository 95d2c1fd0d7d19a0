"""The weight-free feature bank behind the encoder interface.

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

Each channel is standardised over the tomogram. The scales above define the encoder
(they are in its cache signature through ``version``), so they are constants here, not
tunables of :class:`~cryosam.config.Config`.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage

from cryosam.models.features import FeatureVolume, feature_stride
from cryosam.volume.binning import bin_volume
from cryosam.volume.hessian import gaussian_hessian, sym_eigvalsh


class ClassicalEncoder:
    """Rotation-invariant multi-scale features sized from the diameter (no weights)."""

    name = "classical"

    def __init__(self, **_):
        pass

    def signature(self) -> dict:
        return {"name": self.name, "version": 1}

    def encode(self, volume: np.ndarray, diameter_px: float, progress=None) -> FeatureVolume:
        return classical_features(volume, diameter_px, progress)


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
        out.append(
            res[
                half : half + vol.shape[0], half : half + vol.shape[1], half : half + vol.shape[2]
            ].astype(np.float32)
        )
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
    ev = sym_eigvalsh(gaussian_hessian(v, hs)) * hs**2
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
    iv = sym_eigvalsh(central) / (d * d)
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
