"""Preparing a tomogram for the segmenters and encoders: contrast and scale.

Inside cryosam protein is bright and the volume is standardised (mean 0, std 1,
estimated on a subsample), whatever the file's contrast and units.
"""

from __future__ import annotations

import numpy as np

from cryosam.contrast import resolve_invert
from cryosam.errors import CryosamError


def standardise(volume: np.ndarray, invert: bool) -> np.ndarray:
    """float32 copy with mean 0 and std 1 (negated when ``invert``)."""
    vol = np.asarray(volume, dtype=np.float32)
    step = max(1, int(round((vol.size / 4e6) ** (1 / 3))))
    sample = np.asarray(vol[::step, ::step, ::step], dtype=np.float64)
    mean, std = float(sample.mean()), float(sample.std())
    if std == 0 or not np.isfinite(std):
        raise CryosamError("the volume is constant; there is nothing to segment")
    out = (vol - np.float32(mean)) / np.float32(std)
    return -out if invert else out


def prepare_volume(
    volume: np.ndarray, invert: str, diameter_px: float, points_zyx=None
) -> tuple[np.ndarray, bool]:
    """Standardised volume with bright protein, and whether it was inverted."""
    inverted = resolve_invert(invert, volume, diameter_px, points_zyx)
    return standardise(volume, inverted), inverted
