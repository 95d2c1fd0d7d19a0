"""Pickers a user would otherwise use, as baselines for cryosam's benchmarks.

- :func:`log_blob_pick`: a scale-normalised Laplacian-of-Gaussian blob detector
  sized from the particle diameter (scikit-image peak finding).
- :func:`exemplar_template_match`: exemplar template matching from the prompt
  point(s): the template is the subvolume around the prompt, scored by locally
  normalised cross-correlation under a spherical mask over a grid of rotations
  (FFT, scipy). The benchmarks use the third-party ``pytme`` where it is installed
  and this implementation otherwise (it is cryosam's own baseline, not pytme).

Both return candidate centres with scores; :func:`null_cutoff` is their fixed,
per-tomogram threshold rule (expected number of false positives under a Gaussian
null of the score map).
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage, stats
from scipy.spatial.transform import Rotation
from skimage.feature import peak_local_max


def null_cutoff(score_map: np.ndarray, n_false_positives: float = 1.0, n_tests: int = 1) -> float:
    """Score above which ``n_false_positives`` peaks are expected from noise alone.

    The map's mean and standard deviation define a Gaussian null; ``n_tests`` counts
    independent tests per voxel (e.g. rotations).
    """
    p = n_false_positives / (score_map.size * max(n_tests, 1))
    return float(score_map.mean() + score_map.std() * stats.norm.isf(p))


def _peaks(score_map: np.ndarray, radius_px: float, max_peaks: int):
    zyx = peak_local_max(
        score_map,
        min_distance=max(1, int(round(radius_px))),
        exclude_border=False,
        num_peaks=max_peaks,
    )
    return zyx.astype(np.float64), score_map[tuple(zyx.T)].astype(np.float64)


def log_blob_pick(
    volume: np.ndarray, diameter_px: float, dark: bool = True, max_peaks: int = 5000
) -> tuple[np.ndarray, np.ndarray, float]:
    """LoG blob picker: ``(zyx, scores, cutoff)``.

    The LoG scale ``sigma = r / sqrt(3)`` responds most to a ball of radius ``r``;
    the response is scale-normalised (``sigma**2``) and signed so protein scores high.
    ``cutoff`` is :func:`null_cutoff` of the response.
    """
    vol = np.asarray(volume, dtype=np.float32)
    sigma = max(0.8, diameter_px / (2.0 * np.sqrt(3.0)))
    sign = 1.0 if dark else -1.0  # dark protein -> positive LoG at the centre
    response = sign * sigma**2 * ndimage.gaussian_laplace(vol, sigma)
    zyx, scores = _peaks(response, 0.5 * diameter_px, max_peaks)
    return zyx, scores, null_cutoff(response)


def rotation_grid(step_deg: float) -> Rotation:
    """Roughly uniform rotations ~``step_deg`` apart (Fibonacci axes x in-plane angles)."""
    n_dir = max(1, int(round(4 * np.pi / np.deg2rad(step_deg) ** 2)))
    i = np.arange(n_dir) + 0.5
    polar = np.arccos(1 - 2 * i / (2 * n_dir))  # upper hemisphere is enough with full psi
    azim = np.pi * (1 + 5**0.5) * i
    n_psi = max(1, int(round(360.0 / step_deg)))
    psi = np.arange(n_psi) * 2 * np.pi / n_psi
    eul = np.array([(a, p, s) for a, p in zip(azim, polar) for s in psi])
    return Rotation.from_euler("ZYZ", eul)


def exemplar_template_match(
    volume: np.ndarray,
    prompts_zyx,
    diameter_px: float,
    angular_step: float = 30.0,
    max_peaks: int = 5000,
    target_diameter_px: float = 12.0,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Exemplar template matching: ``(zyx, scores, cutoff)``.

    The template is the mean of the subvolumes around the prompts (box 1.3 x diameter,
    spherical mask of the diameter). Volume and template are binned so the particle
    spans about ``target_diameter_px`` voxels. Scores are the maximum over rotations of
    the locally normalised cross-correlation (Pearson correlation under the mask).
    """
    vol = np.asarray(volume, dtype=np.float32)
    b = max(1, int(np.floor(diameter_px / target_diameter_px)))
    if b > 1:
        crop = tuple(slice(0, (s // b) * b) for s in vol.shape)
        v = vol[crop]
        v = v.reshape(v.shape[0] // b, b, v.shape[1] // b, b, v.shape[2] // b, b).mean((1, 3, 5))
    else:
        v = vol
    d = diameter_px / b
    half = int(np.ceil(0.65 * d))
    n = 2 * half + 1
    grid = np.indices((n, n, n)) - half
    mask = (np.sqrt((grid**2).sum(0)) <= 0.5 * d + 0.5).astype(np.float32)
    tpl = np.zeros((n, n, n), np.float32)
    pts = np.asarray(prompts_zyx, dtype=np.float64).reshape(-1, 3) / b
    for p in pts:
        c = np.round(p).astype(int)
        tpl += _extract(v, c, half)
    tpl /= len(pts)
    m_sum = mask.sum()
    shape = v.shape
    fshape = [fft.next_fast_len(s + n - 1, real=True) for s in shape]
    fv = fft.rfftn(v, fshape, workers=-1)
    fm = fft.rfftn(mask, fshape, workers=-1)
    local_mean = _crop_valid(fft.irfftn(fv * fm, fshape, workers=-1), shape, half) / m_sum
    fv2 = fft.rfftn(v * v, fshape, workers=-1)
    local_sq = _crop_valid(fft.irfftn(fv2 * fm, fshape, workers=-1), shape, half) / m_sum
    local_std = np.sqrt(np.maximum(local_sq - local_mean**2, 1e-12))
    del fv2, fm
    best = np.full(shape, -np.inf, dtype=np.float32)
    rots = rotation_grid(angular_step)
    centre = np.full(3, half, dtype=np.float64)
    for k, rot in enumerate(rots):
        inv = rot.inv().as_matrix()
        t = ndimage.affine_transform(tpl, inv, offset=centre - inv @ centre, order=1)
        sel = mask > 0
        t = np.where(sel, (t - t[sel].mean()) / (t[sel].std() + 1e-12), 0).astype(np.float32)
        # correlation = convolution with the flipped template
        ft = fft.rfftn(t[::-1, ::-1, ::-1], fshape, workers=-1)
        cc = _crop_valid(fft.irfftn(fv * ft, fshape, workers=-1), shape, half)
        np.maximum(best, cc / (m_sum * local_std), out=best)
        if progress is not None:
            progress(k + 1, len(rots))
    zyx, scores = _peaks(best, 0.5 * d, max_peaks)
    cutoff = null_cutoff(best, 1.0, len(rots))
    return zyx * b + (b - 1) / 2.0, scores, cutoff


def _extract(v: np.ndarray, c: np.ndarray, half: int) -> np.ndarray:
    out = np.zeros((2 * half + 1,) * 3, np.float32)
    lo = c - half
    src = tuple(slice(max(a, 0), min(a + 2 * half + 1, s)) for a, s in zip(lo, v.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
    out[dst] = v[src]
    return out


def _crop_valid(full: np.ndarray, shape, half: int) -> np.ndarray:
    """Part of a linear convolution that is centred on each input voxel."""
    return full[tuple(slice(half, half + s) for s in shape)].astype(np.float32)
