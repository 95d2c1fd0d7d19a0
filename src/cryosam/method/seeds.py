"""Clicks found from a known structure: a class given a reference map and no prompt.

``cryosam pick TOMO --reference MAP.mrc:CLASS`` without a ``--point``: the map (resampled to
the tomogram, see :func:`~cryosam.method.verify.map_reference`) is correlated, over every
rotation of the verification's coarse set, with the strongest particle-sized blobs of the
prepared volume (the scale-normalised Laplacian of Gaussian at sigma 0.35 diameters, on the
volume binned so the particle spans about 8 voxels); the best few, re-centred by the
verification's climb and at least a diameter apart, become the class's prompts, and the
search goes on as from clicks, with the map as the reference.

Measured on the development tomograms (ribosome and 20S proteasome with their own maps, the
400 strongest blobs scored): the 10 best seeds were 10 / 10 true particles in dev1 (sparse)
for both, 9 / 10 (ribosome) and 6-7 / 10 (proteasome) in the crowded dev2 and dev3; the
blob response alone ranked 0-3 / 10 true among its best 10 there.

Without a ``--diameter`` the class's size is the map's: the mean axis of the ellipsoid with
the second moments of the map's volume above a tenth of its range (blurred by a voxel). On
the development maps: ribosome 239 Å (a user types 250), proteasome 171 (160), rubisco 130
(120), TRiC 276 (220). The diameter of the sphere of that volume was smaller (231 Å for the
ribosome) and too small: with it the crowded dev2 ribosome's cut fell on the knee of the
scores (F1 0.23; at 24-26 voxels 0.53-0.62).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cryosam.config import Config
from cryosam.method.centre import BLOB_SIGMA
from cryosam.method.verify import Reference, ShapeVerifier
from cryosam.volume.binning import bin_volume

SEED_BLOBS = 400
"""How many of the strongest particle-sized blobs are scored against the map."""
SEED_SHORTLIST = 20
"""How many of the best-scoring blobs are re-centred and scored at the fine rotations."""
BLOB_BIN_PX = 8.0
"""The blob search bins the volume so a particle spans about this many voxels."""


def map_diameter_angst(density: np.ndarray, voxel_size: float) -> float:
    """The mean axis (Å) of the solid ellipsoid with the second moments of the map above a
    tenth of its range (after a one-voxel blur): a solid ellipsoid's axis along an
    eigenvector of its covariance is ``2 sqrt(5 lambda)``."""
    m = ndimage.gaussian_filter(np.asarray(density, np.float32), 1.0)
    lo, hi = float(m.min()), float(m.max())
    if not np.isfinite([lo, hi]).all() or hi <= lo:
        raise ValueError("the reference map is constant or not finite")
    points = np.argwhere(m > lo + 0.1 * (hi - lo)).astype(np.float64)
    if len(points) < 4:
        raise ValueError("the reference map holds no molecule above a tenth of its range")
    spread = np.clip(np.linalg.eigvalsh(np.cov(points.T)), 0.0, None)
    return float(np.mean(2.0 * np.sqrt(5.0 * spread)) * float(voxel_size))


def blob_peaks(volume, diameter_px: float, n: int) -> np.ndarray:
    """The ``n`` strongest particle-sized blobs of ``volume`` (protein bright), at least
    half a diameter apart and a quarter diameter inside the volume: ``(k, 3)`` voxels,
    strongest first."""
    b = max(1, int(diameter_px // BLOB_BIN_PX))
    v = bin_volume(volume, b)
    d = diameter_px / b
    response = -ndimage.gaussian_laplace(v, BLOB_SIGMA * d)
    size = max(3, int(round(0.5 * d)) | 1)
    peaks = (response == ndimage.maximum_filter(response, size=size)) & (response > 0)
    zyx = np.argwhere(peaks)
    strength = response[peaks]
    zyx = zyx * b + (b - 1) / 2.0
    margin = 0.25 * diameter_px
    inside = np.all((zyx >= margin) & (zyx <= np.asarray(volume.shape) - 1 - margin), axis=1)
    zyx, strength = zyx[inside], strength[inside]
    return zyx[np.argsort(-strength)[:n]]


def map_seeds(
    volume, reference: Reference, diameter_px: float, config: Config, n: int, exclude=None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` places of ``volume`` (prepared: protein bright) most like ``reference``
    among its strongest blobs, re-centred, at least a diameter apart: ``(zyx (k, 3),
    correlation (k,))``, best first (fewer than ``n`` when the volume holds fewer blobs).
    ``exclude(zyx) -> mask``: blobs (and re-centred seeds) it marks are not taken (those on
    or beside gold fiducials: a bead's halo is a strong blob that a Pearson correlation with
    a molecule's envelope does not tell from one)."""
    blobs = blob_peaks(volume, diameter_px, SEED_BLOBS)
    if exclude is not None and len(blobs):
        blobs = blobs[~exclude(blobs)]
    if not len(blobs) or n < 1:
        return np.zeros((0, 3)), np.zeros(0)
    v = ShapeVerifier(volume, diameter_px, config)
    coarse, _ = v.score(reference, blobs, coarse=True)
    short = blobs[np.argsort(-coarse)[:SEED_SHORTLIST]]
    fine, _, centred = v.climb(reference, short, steps=2)
    barred = exclude(centred) if exclude is not None else np.zeros(len(centred), bool)
    chosen: list[int] = []
    for i in np.argsort(-fine):
        if len(chosen) == n:
            break
        if barred[i]:
            continue
        if chosen and np.linalg.norm(centred[chosen] - centred[i], axis=1).min() < diameter_px:
            continue
        chosen.append(int(i))
    return centred[chosen], fine[chosen]
