"""Contrast polarity: is protein dark (raw tomogram) or bright?

Raw tomograms have dark protein; many processed ones (denoised, inverted for
display) have bright protein. cryosam works internally with bright protein and
never assumes: ``--invert yes|no`` states it, ``--invert auto`` detects it here.

Detection (``auto``):
- with prompt points, compare the band-passed density at the prompts with the
  volume's median: prompts sit on protein, so the sign tells the polarity;
- without prompts, use the skewness of the band-passed volume: particles are a
  sparse minority of voxels, so they form the long tail of the histogram, on the
  dark side when protein is dark.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cryosam.errors import CryosamError

_MAX_CROP = 160


MAX_VOTERS = 64
"""At most this many prompts (an even sample) vote on the contrast."""


def _central_crop(volume: np.ndarray, size: int = _MAX_CROP) -> np.ndarray:
    starts = [max(0, (s - size) // 2) for s in volume.shape]
    return np.asarray(volume[tuple(slice(a, a + size) for a in starts)], dtype=np.float32)


def _bandpass(block: np.ndarray, diameter_px: float) -> np.ndarray:
    fine = max(0.7, diameter_px / 8.0)
    coarse = max(2.0 * fine, diameter_px)
    return ndimage.gaussian_filter(block, fine) - ndimage.gaussian_filter(block, coarse)


def protein_is_dark(
    volume: np.ndarray, diameter_px: float = 10.0, points_zyx=None
) -> tuple[bool, float]:
    """Detect contrast polarity.

    Args:
        volume: ``(z, y, x)`` tomogram.
        diameter_px: approximate particle diameter in voxels (sets the band-pass).
        points_zyx: optional ``(N, 3)`` prompt positions on protein.

    Returns:
        ``(dark, evidence)``: ``dark`` is True when protein is darker than ice;
        ``evidence`` is the signed statistic used (negative means dark).
    """
    if points_zyx is not None and len(points_zyx):
        pts = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
        if len(pts) > MAX_VOTERS:  # a vote: an even sample of thousands of prompts decides
            pts = pts[np.linspace(0, len(pts) - 1, MAX_VOTERS).round().astype(int)]
        half = int(np.ceil(1.5 * diameter_px))
        values = []
        for p in pts:
            c = np.round(p).astype(int)
            lo = np.maximum(c - 2 * half, 0)
            hi = np.minimum(c + 2 * half + 1, volume.shape)
            block = np.asarray(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], np.float32)
            bp = _bandpass(block, diameter_px)
            local = tuple(int(v) for v in c - lo)
            scale = float(bp.std()) or 1.0
            values.append(float(bp[local] - np.median(bp)) / scale)
        evidence = float(np.mean(values))
    else:
        block = _central_crop(volume)
        if float(block.std()) == 0.0:
            raise CryosamError("the volume is constant; there is no contrast to work with")
        bp = _bandpass(block, diameter_px).ravel()
        bp = bp - bp.mean()
        evidence = float(np.mean(bp**3) / (np.mean(bp**2) ** 1.5 + 1e-12))
    return evidence < 0, evidence


def resolve_invert(
    invert: str, volume: np.ndarray, diameter_px: float = 10.0, points_zyx=None
) -> bool:
    """Turn ``--invert auto|yes|no`` into a decision (True: negate so protein is bright)."""
    if invert == "yes":
        return True
    if invert == "no":
        return False
    if invert != "auto":
        raise CryosamError(f"--invert must be auto, yes or no, got {invert!r}")
    dark, _ = protein_is_dark(volume, diameter_px, points_zyx)
    return dark
