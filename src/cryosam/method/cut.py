"""Each class's automatic, per-tomogram cut: one decision, by a named rule.

No threshold is carried between tomograms. The cut is made on the score the candidates are
ranked by: the shape-verification correlation (default) or, without verification, the
feature similarity. Which rule decided is recorded (``run.json``) with the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from skimage.filters import threshold_minimum, threshold_otsu

from cryosam.method.matching import similarity
from cryosam.models.features import FeatureVolume

MIN_DISTRIBUTION = 5
"""Fewer candidates than this are not a distribution: the floor is the cut."""


class CutRule(Enum):
    """The rule that decided a class's cut; its value is what ``run.json`` says."""

    FEATURE_TOO_FEW = "tau_sim (too few candidates for a distribution)"
    FEATURE_OTSU = "otsu on -log(1 - score) of the candidates"
    FEATURE_ONE_POPULATION = (
        "background level (the candidates form one population above the features' background)"
    )
    SHAPE_TOO_FEW = "floor (too few candidates for a distribution)"
    SHAPE_OTSU = "otsu of the shape-verification scores"
    SHAPE_VALLEY = "histogram valley of the shape-verification scores"
    SHAPE_FLOOR = "floor (a fraction of the reference's typical score)"
    SHAPE_ONE_POPULATION = (
        "floor (a fraction of the reference's typical score): the candidates form one "
        "population above the features' background"
    )


@dataclass(frozen=True)
class Cut:
    """A class's cut: candidates scoring at least ``value`` are accepted."""

    value: float
    rule: CutRule

    @property
    def how(self) -> str:
        return self.rule.value


def _spread_otsu(scores: np.ndarray) -> float:
    """Otsu's threshold of similarities taken on ``-log(1 - s)`` (which spreads the end near 1,
    where true matches crowd), mapped back to a similarity."""
    spread = -np.log(np.clip(1.0 - scores, 1e-6, None))
    return 1.0 - float(np.exp(-threshold_otsu(spread)))


def _too_few(scores: np.ndarray) -> bool:
    return len(scores) < MIN_DISTRIBUTION or float(np.ptp(scores)) == 0.0


def one_population(feature_scores, background: float | None) -> bool:
    """Whether the candidates' feature similarities form one population above the features'
    ``background`` level: Otsu would still split them in two, but the lower group's median
    scores above the background. In a large tomogram rich in the target nearly every
    candidate is a true match, and splitting them would halve the picks."""
    s = np.asarray(feature_scores, dtype=np.float64)
    if background is None or _too_few(s):
        return False
    lower = s[s < _spread_otsu(s)]
    return bool(len(lower)) and float(np.median(lower)) >= background


def feature_cut(scores, floor: float, background: float | None = None) -> Cut:
    """Cut on feature similarities (without shape verification), at least ``floor``:
    Otsu's threshold on ``-log(1 - s)``, or the ``background`` level when the candidates
    form :func:`one_population` above it."""
    s = np.asarray(scores, dtype=np.float64)
    if _too_few(s):
        return Cut(floor, CutRule.FEATURE_TOO_FEW)
    if one_population(s, background):
        return Cut(max(background, floor), CutRule.FEATURE_ONE_POPULATION)
    return Cut(max(_spread_otsu(s), floor), CutRule.FEATURE_OTSU)


def shape_cut(scores, floor: float = 0.0) -> Cut:
    """Cut on verification scores: the larger of Otsu's threshold and the valley of the
    smoothed histogram (true matches are often a small second mode that Otsu would split
    from the look-alikes' bulk), at least ``floor``."""
    x = np.asarray(scores, np.float64)
    if _too_few(x):
        return Cut(floor, CutRule.SHAPE_TOO_FEW)
    cut, rule = float(threshold_otsu(x)), CutRule.SHAPE_OTSU
    try:
        valley = float(threshold_minimum(x))
    except RuntimeError:  # the histogram never becomes bimodal
        valley = -np.inf
    if valley > cut:
        cut, rule = valley, CutRule.SHAPE_VALLEY
    if floor > cut:
        return Cut(floor, CutRule.SHAPE_FLOOR)
    return Cut(cut, rule)


def verified_cut(scores, floor: float, features_one_population: bool) -> Cut:
    """The cut on verification scores: :func:`shape_cut`, unless the features already showed
    one population above their background (then the floor: no distribution is split)."""
    if features_one_population:
        return Cut(floor, CutRule.SHAPE_ONE_POPULATION)
    return shape_cut(scores, floor)


def background_level(
    feats: FeatureVolume, query: np.ndarray, seed: int = 0, n: int = 20000, q: float = 0.99
) -> float:
    """The ``q`` quantile of the query's similarity to ``n`` random feature cells."""
    flat = feats.data.reshape(feats.data.shape[0], -1)
    idx = np.random.default_rng(seed).integers(0, flat.shape[1], size=min(n, flat.shape[1]))
    return float(np.quantile(similarity(flat[:, idx], np.asarray(query)[None]), q))
