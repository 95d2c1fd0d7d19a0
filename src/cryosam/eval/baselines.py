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
from skimage.feature import peak_local_max

from cryosam.method.rotations import rotation_grid
from cryosam.volume.binning import block_mean, extract_boxes
from cryosam.volume.correlate import MaskedCorrelation, normalise_template


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
    v = block_mean(vol[tuple(slice(0, (s // b) * b) for s in vol.shape)], b)
    d = diameter_px / b
    half = int(np.ceil(0.65 * d))
    n = 2 * half + 1
    grid = np.indices((n, n, n)) - half
    mask = (np.sqrt((grid**2).sum(0)) <= 0.5 * d + 0.5).astype(np.float32)
    pts = np.asarray(prompts_zyx, dtype=np.float64).reshape(-1, 3) / b
    tpl = extract_boxes(v, pts, n).mean(axis=0)
    fshape = [fft.next_fast_len(s + n - 1, real=True) for s in v.shape]
    crop = tuple(slice(0, s) for s in v.shape)
    ncc = MaskedCorrelation(v, mask, fshape, crop, centred=True)
    best = np.full(v.shape, -np.inf, dtype=np.float32)
    rots = rotation_grid(angular_step)
    centre = np.full(3, half, dtype=np.float64)
    for k, rot in enumerate(rots):
        inv = rot.inv().as_matrix()
        t = ndimage.affine_transform(tpl, inv, offset=centre - inv @ centre, order=1)
        np.maximum(best, ncc(normalise_template(t, mask)), out=best)
        if progress is not None:
            progress(k + 1, len(rots))
    zyx, scores = _peaks(best, 0.5 * d, max_peaks)
    cutoff = null_cutoff(best, 1.0, len(rots))
    return zyx * b + (b - 1) / 2.0, scores, cutoff
