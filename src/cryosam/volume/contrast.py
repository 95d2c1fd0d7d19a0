"""Contrast polarity: is protein dark (raw tomogram) or bright?

Raw tomograms have dark protein; many processed ones (denoised, inverted for
display) have bright protein. cryosam works internally with bright protein and
never assumes: ``--invert yes|no`` states it, ``--invert auto`` detects it here.

Detection (``auto``):
- with prompt points, compare the density within a quarter diameter of each prompt,
  band-passed at the particle's scale, with its block's median: prompts sit on protein, so
  the sign tells the polarity;
- without prompts, or when the prompts do not say it clearly (their mean evidence under
  :data:`CLEAR` standard deviations), use the skewness of the band-passed volume: particles
  are a sparse minority of voxels, so they form the long tail of the histogram, on the dark
  side when protein is dark.

The prompts' test once read the single voxel under the click, band-passed from an eighth of
the diameter. A click a quarter diameter off the centre of a lumpy ribosome, or on the
hollow centre of a TRiC barrel or a proteasome's channel, then read as bright protein: on the
development tomograms (dev1-dev3, five clicks per target: ribosome, proteasome, TRiC and
rubisco) 14 of 120 clicks on the listed centres or a quarter diameter off were read the wrong
way, and the quarter-diameter ribosome and proteasome picks among them scored F1 0.01-0.08
(0.06-0.54 with the contrast read right). The quarter-diameter ball at the particle's scale
reads all 120 the right way; 5 of 60 clicks a third of a diameter off read weakly (0.06-0.53),
and the skewness, dark on all three tomograms and on the real one (EMPIAR-10499 00254),
decides all but one of those (under :data:`CLEAR`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryosam.errors import CryosamError

_MAX_CROP = 160


MAX_VOTERS = 64
"""At most this many prompts (an even sample) vote on the contrast."""
CLEAR = 0.5
"""Prompts whose mean evidence (in standard deviations of the band-passed block) is weaker
than this leave the decision to the volume's skewness."""
CLICK_BALL = 0.25
"""The prompts' density is averaged within this many diameters of each prompt."""
CLICK_FINE = 0.25
"""...after a band-pass whose fine Gaussian has this many diameters' sigma (the particle's
scale, not its detail)."""


def _central_crop(volume: np.ndarray, size: int = _MAX_CROP) -> np.ndarray:
    starts = [max(0, (s - size) // 2) for s in volume.shape]
    return np.asarray(volume[tuple(slice(a, a + size) for a in starts)], dtype=np.float32)


def _bandpass(block: np.ndarray, diameter_px: float, fine_fraction: float = 0.125) -> np.ndarray:
    fine = max(0.7, diameter_px * fine_fraction)
    coarse = max(2.0 * fine, diameter_px)
    return ndimage.gaussian_filter(block, fine) - ndimage.gaussian_filter(block, coarse)


@dataclass(frozen=True)
class ContrastReading:
    """What ``--invert auto`` read: ``dark`` (protein darker than ice), the signed
    ``evidence`` that decided it (negative: dark), whether the prompts decided it
    (``by_prompts``; else the volume's skewness did), and the volume's band-pass ``skewness``
    when it was computed (None otherwise)."""

    dark: bool
    evidence: float
    by_prompts: bool
    skewness: float | None


def read_contrast(
    volume: np.ndarray, diameter_px: float = 10.0, points_zyx=None, skewness: bool = False
) -> ContrastReading:
    """Detect contrast polarity (the module's rules), computing the volume's skewness at most
    once: when the prompts do not decide, or when ``skewness`` asks for it anyway (for
    :func:`contrast_doubt`).

    Args:
        volume: ``(z, y, x)`` tomogram.
        diameter_px: approximate particle diameter in voxels (sets the band-pass).
        points_zyx: optional ``(N, 3)`` prompt positions on protein.
        skewness: also compute the skewness when the prompts decide.
    """
    evidence = 0.0
    if points_zyx is not None and len(points_zyx):
        pts = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
        if len(pts) > MAX_VOTERS:  # a vote: an even sample of thousands of prompts decides
            pts = pts[np.linspace(0, len(pts) - 1, MAX_VOTERS).round().astype(int)]
        evidence = float(np.mean([_prompt_evidence(volume, p, diameter_px) for p in pts]))
    by_prompts = abs(evidence) >= CLEAR  # else no prompts, or prompts that say little
    skew = _skewness(volume, diameter_px) if skewness or not by_prompts else None
    evidence = evidence if by_prompts else float(skew)
    return ContrastReading(evidence < 0, evidence, by_prompts, skew)


def protein_is_dark(
    volume: np.ndarray, diameter_px: float = 10.0, points_zyx=None
) -> tuple[bool, float]:
    """``(dark, evidence)`` of :func:`read_contrast`: ``dark`` is True when protein is darker
    than ice; ``evidence`` is the signed statistic used (negative means dark)."""
    reading = read_contrast(volume, diameter_px, points_zyx)
    return reading.dark, reading.evidence


def _prompt_evidence(volume, point, diameter_px: float) -> float:
    """The band-passed density within :data:`CLICK_BALL` diameters of ``point`` less its
    block's median, in the block's standard deviations (negative: the prompt is dark)."""
    half = int(np.ceil(3 * diameter_px))
    c = np.round(point).astype(int)
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, volume.shape)
    block = np.asarray(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], np.float32)
    bp = _bandpass(block, diameter_px, fine_fraction=CLICK_FINE)
    r = max(1.0, CLICK_BALL * diameter_px)
    at = np.clip(c - lo, 0, np.asarray(block.shape) - 1)  # the nearest voxel when outside
    near = tuple(slice(max(0, a - int(r)), a + int(r) + 1) for a in at)
    g = np.ogrid[tuple(slice(s.start - a, s.start - a + n) for s, a, n in
                       zip(near, at, bp[near].shape))]  # fmt: skip
    values = bp[near][sum(x**2 for x in g) <= r**2]
    scale = float(bp.std()) or 1.0
    return float(values.mean() - np.median(bp)) / scale


def _skewness(volume, diameter_px: float) -> float:
    """The skewness of the band-passed central crop (negative: a dark tail, dark protein)."""
    block = _central_crop(volume)
    if float(block.std()) == 0.0:
        raise CryosamError("the volume is constant; there is no contrast to work with")
    bp = _bandpass(block, diameter_px).ravel()
    bp = bp - bp.mean()
    return float(np.mean(bp**3) / (np.mean(bp**2) ** 1.5 + 1e-12))


SKEW_CLEAR = 0.3
"""The volume's skewness says the contrast clearly beyond this (dev1-dev3: -0.45 to -0.87 at a
12-voxel band; the real tomogram -0.61 at 25 voxels, -0.11 at 12)."""


def contrast_doubt(reading: ContrastReading) -> str | None:
    """A warning when the prompts decided the contrast against what the volume's skewness
    clearly says (a click on ice or on a hollow particle's centre reads the wrong way, and
    every later stage then works on an inverted tomogram); None when they agree, when the
    skewness decided, or when it was not computed."""
    skew = reading.skewness
    if not reading.by_prompts or skew is None or abs(skew) < SKEW_CLEAR:
        return None
    if (skew < 0) == reading.dark:
        return None
    said, other = ("dark", "bright") if reading.dark else ("bright", "dark")
    return (
        f"the prompts read as {said} protein but the tomogram's histogram says {other} "
        f"(band-pass skewness {skew:+.2f}): check that the clicks are on particles, or state "
        "the contrast with --invert yes|no"
    )


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
