"""The tomogram's radial power spectrum: a tomogram whose low frequencies were boosted
(deconvolved as Warp and IsoNet do before picking) is brought back to the balance of a raw one.

A raw weighted back-projection has a nearly flat radial power spectrum: over the dev
tomograms and the real EMPIAR-10499 reconstruction, the log10 power at 0.025-0.075 cycles per
voxel lies 0.0-0.3 decades above that at 0.125-0.25 (the contrast transfer is weak at the
lowest frequencies). A deconvolution divides by that transfer and lifts the low band by
1.5-2 decades: every particle then sits in a broad dark halo, and a shape correlation sees
blobs of a size, not shapes (dev1, one ribosome click: F1 0.984 raw, 0.648 deconvolved,
with 59 proteasomes and 38 TRiC rings among the picks). Where the low band stands more than
:data:`MAX_LOW_EXCESS` decades above the mid band, :func:`balance_spectrum` turns every
frequency down to that cap, and leaves the rest as it is: a tomogram just over the line
changes little. A low-passed or denoised tomogram (its fine frequencies cut, the low band
unchanged) is left alone: the pipeline handles it as it is (dev1 smoothed by a 1-voxel
Gaussian: F1 0.964).
"""

from __future__ import annotations

import numpy as np
from scipy import fft

CROP = 128
"""The central box whose spectrum decides spans up to this many voxels along each axis."""
LOW_BAND = (0.025, 0.075)
"""Cycles per voxel: the band a deconvolution lifts most (structures of 13-40 voxels)."""
MID_BAND = (0.125, 0.25)
"""Cycles per voxel: the band of a particle's shape at the verification's sampling."""
MAX_LOW_EXCESS = 1.0
"""Decades of power the low band may stand above the mid band before the spectrum is
balanced: raw tomograms 0.10-0.38, the dev tomograms smoothed by a 1-voxel Gaussian
0.69-0.86, deconvolved (Warp's default strength and fall-off) 1.59-1.74."""
N_BINS = 64
"""Radial bins of the profile from 0 to 0.5 cycles per voxel."""


def central_cube(volume, crop: int = CROP) -> np.ndarray | None:
    """The volume's central box of up to ``crop`` voxels a side (float32), or ``None`` where
    an axis is under 16 voxels or the box is not finite or constant."""
    sides = [min(crop, s) for s in volume.shape]
    if min(sides) < 16:
        return None
    lo = [(s - k) // 2 for s, k in zip(volume.shape, sides)]
    cube = np.asarray(volume[tuple(slice(a, a + k) for a, k in zip(lo, sides))], np.float32)
    if not np.all(np.isfinite(cube)) or float(cube.std()) == 0.0:
        return None
    return cube


def tapered(cube: np.ndarray) -> np.ndarray:
    """``cube`` less its mean, times a Hanning window along each axis (its edges would
    streak the spectrum)."""
    c = np.asarray(cube, np.float32) - float(np.mean(cube))
    for ax, n in enumerate(c.shape):
        shape = [1, 1, 1]
        shape[ax] = n
        c = c * np.hanning(n).astype(np.float32).reshape(shape)
    return c


def _radius_bins(shape) -> np.ndarray:
    """Each component's radial bin (of :data:`N_BINS` up to 0.5 cycles per voxel) in the
    real-input spectrum (``scipy.fft.rfftn`` order) of a box of ``shape``."""
    axes = [fft.fftfreq(n) for n in shape[:-1]] + [fft.rfftfreq(shape[-1])]
    k = np.sqrt(sum(g**2 for g in np.meshgrid(*axes, indexing="ij", sparse=True)))
    return np.minimum((k / 0.5 * N_BINS).astype(np.int32), N_BINS)


def radial_power(spectrum: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Mean power of ``spectrum`` (a real-input transform) in each radial bin."""
    p = np.bincount(bins.ravel(), (np.abs(spectrum) ** 2).ravel(), N_BINS + 1)
    return p / np.maximum(np.bincount(bins.ravel(), None, N_BINS + 1), 1)


def _band(power: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    lo, hi = (int(round(f / 0.5 * N_BINS)) for f in band)
    return power[lo:hi]


def low_excess(volume) -> float | None:
    """Decades by which the mean log power of the :data:`LOW_BAND` stands above that of the
    :data:`MID_BAND`, in the volume's central box; ``None`` where there is no usable box."""
    cube = central_cube(volume)
    if cube is None:
        return None
    c = tapered(cube)
    power = radial_power(fft.rfftn(c, workers=-1), _radius_bins(c.shape))
    low, mid = _band(power, LOW_BAND), _band(power, MID_BAND)
    if not (low > 0).all() or not (mid > 0).all():
        return None
    return float(np.log10(low).mean() - np.log10(mid).mean())


def is_lifted(excess: float | None) -> bool:
    """Whether a :func:`low_excess` reading is a deconvolved tomogram's (over
    :data:`MAX_LOW_EXCESS`)."""
    return excess is not None and excess > MAX_LOW_EXCESS


def balance_spectrum(volume, max_excess: float = MAX_LOW_EXCESS) -> np.ndarray:
    """``volume`` (float32, same shape) with every radial frequency whose power stands more
    than ``max_excess`` decades above the :data:`MID_BAND`'s (the mean of its log power)
    turned down to that cap; the other frequencies, and the mean, unchanged. One transform
    of the whole volume (a float32 copy and its complex spectrum in memory)."""
    v = np.asarray(volume, np.float32)
    mean = float(v.mean())
    spec = fft.rfftn(v - mean, workers=-1)
    bins = _radius_bins(v.shape)
    power = radial_power(spec, bins)
    mid = _band(power, MID_BAND)
    cap = 10.0 ** (float(np.log10(mid[mid > 0]).mean()) + max_excess)
    gain = np.sqrt(np.minimum(1.0, cap / np.maximum(power, 1e-30))).astype(np.float32)
    spec *= gain[bins]
    del bins
    out = fft.irfftn(spec, s=v.shape, workers=-1)
    out += np.float32(mean)
    return out.astype(np.float32, copy=False)
