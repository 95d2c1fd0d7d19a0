"""Each class's automatic, per-tomogram cut: one decision, by a named rule.

No threshold is carried between tomograms. The cut is made on the score the candidates are
ranked by: the shape-verification correlation (default) or, without verification, the
feature similarity. Which rule decided is recorded (``run.json``) with the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation
from skimage.filters import threshold_otsu

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
    SHAPE_VALLEY = "valley between the matches' mode and the rest of the verification scores"
    SHAPE_KNEE = "knee of the ranked verification scores"
    SHAPE_MAJORITY = (
        "valley below the knee: the matches are most of the candidates, so the knee of the "
        "ranked upper half fell among them"
    )
    SHAPE_OTSU = "otsu on the verification scores (too few candidates for a knee)"
    SHAPE_NO_KNEE = "floor: the ranked verification scores have no knee (one population, all kept)"
    SHAPE_FLOOR = "floor (a fraction of the reference's typical score)"
    SHAPE_ONE_POPULATION = (
        "floor: a small set whose feature similarities form one population above the "
        "features' background (every candidate a match)"
    )
    SHAPE_MASS_COUNT = (
        "mass count: the shape scores form one population (weak separation), so as many of "
        "the best as have the class's mass are kept"
    )
    SHAPE_MASS_MANY = (
        "mass count: the shape cut kept a few of many of the class's mass (the densest of one "
        "population), so as many of the best as have the class's mass are kept"
    )
    USER = "set by the user (cryosam recut --min-score)"


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


KNEE_DEPTH = 0.05
"""A knee must lie this far (of the score range) below the chord of the ranked scores."""


def knee(scores) -> tuple[float, float]:
    """``(score at the knee, depth)`` of the scores ranked best first (both axes scaled to
    [0, 1]; after Satopaa et al. 2011, "Kneedle"). Matches are the steep head of the curve and
    look-alikes and background its flat tail: the knee is the rank farthest below the straight
    line from the best to the worst. When the matches are a plateau that then drops (the curve
    never goes below that line), it is the end of the plateau: the rank farthest above it."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    rank = np.arange(len(s)) / max(len(s) - 1, 1)
    level = (s - s[-1]) / max(float(s[0] - s[-1]), 1e-12)
    below = (1.0 - rank) - level
    k = int(np.argmax(below))
    if below[k] >= KNEE_DEPTH:
        return float(s[k]), float(below[k])
    k = int(np.argmin(below))
    return float(s[k]), float(-below[k])


SMALL_SET = 40
"""Fewer candidates than this have no tail of junk for a knee to stand out from (their median
can lie among the matches, so the knee of the upper half falls inside them): the final cut is
Otsu's two-group break."""

VALLEY_DEPTH = 0.75
"""A valley counts when the score density there is at most this fraction of the lower of the
highest modes on either side ..."""
VALLEY_MASS = 3
VALLEY_FRACTION = 0.05
"""... and at least this many candidates, and this fraction of them, lie above it (a few
outliers at the top are not a population), and this many below it."""


def valley(scores, bandwidth: float | None = None, depth: float = VALLEY_DEPTH) -> float | None:
    """The deepest valley of the score density (a Gaussian kernel density, Silverman's
    bandwidth unless ``bandwidth`` is given) when one is deep enough (``depth``,
    :data:`VALLEY_DEPTH` unless given; :data:`VALLEY_MASS`, :data:`VALLEY_FRACTION`): the gap
    between a population of matches and the rest. ``None`` when the matches do not form their
    own mode."""
    x = np.asarray(scores, np.float64)
    bw = bandwidth if bandwidth is not None else 1.06 * float(np.std(x)) * len(x) ** -0.2
    if bw <= 0:
        return None
    grid = np.linspace(float(x.min()) - 3 * bw, float(x.max()) + 3 * bw, 512)
    hist, _ = np.histogram(x, bins=len(grid), range=(grid[0], grid[-1]))
    density = ndimage.gaussian_filter1d(hist.astype(np.float64), bw / (grid[1] - grid[0]))
    best, best_ratio = None, depth
    for m in range(1, len(grid) - 1):
        if not density[m] <= density[m - 1] or not density[m] < density[m + 1]:
            continue  # not a local minimum
        ratio = density[m] / max(min(density[:m].max(), density[m:].max()), 1e-12)
        above = int((x > grid[m]).sum())
        enough = above >= max(VALLEY_MASS, VALLEY_FRACTION * len(x))
        if ratio < best_ratio and enough and len(x) - above >= VALLEY_MASS:
            best, best_ratio = float(grid[m]), ratio
    return best


def _floored(value: float, rule: CutRule, floor: float) -> Cut:
    """``value`` by ``rule``, or the floor (:attr:`CutRule.SHAPE_FLOOR`) when that is higher."""
    return Cut(value, rule) if value >= floor else Cut(floor, CutRule.SHAPE_FLOOR)


def _upper_knee(x: np.ndarray) -> tuple[float, float]:
    """``(value, depth)`` of the :func:`knee` of the ranked upper half (depth 0 when too few)."""
    upper = x[x >= np.median(x)]
    return knee(upper) if not _too_few(upper) else (float(upper.min()), 0.0)


def confident_cut(scores, floor: float = 0.0) -> Cut:
    """The surest matches, at least ``floor``: the :func:`valley` when the matches form their
    own mode, else the :func:`knee` of the ranked upper half (the lower half is junk that would
    only stretch the curve's tail and pull the knee into it); without either (one population:
    nearly every candidate is a match) the floor (every candidate above it is kept). Precision
    first: the shape reference is refined with these."""
    x = np.asarray(scores, np.float64)
    if _too_few(x):
        return Cut(floor, CutRule.SHAPE_TOO_FEW)
    gap = valley(x)
    if gap is not None:
        return _floored(gap, CutRule.SHAPE_VALLEY, floor)
    value, depth = _upper_knee(x)
    if depth < KNEE_DEPTH:
        return Cut(max(floor, float(x.min())), CutRule.SHAPE_NO_KNEE)
    return _floored(value, CutRule.SHAPE_KNEE, floor)


def _knee_below(x: np.ndarray, cut: Cut, floor: float) -> Cut:
    """The :func:`knee` of the ranked upper half where it lies below a valley ``cut``."""
    if cut.rule is not CutRule.SHAPE_VALLEY:
        return cut
    value, depth = _upper_knee(x)
    if depth < KNEE_DEPTH or value >= cut.value:
        return cut
    return _floored(value, CutRule.SHAPE_KNEE, floor)


def shape_cut(
    scores, floor: float = 0.0, similarity=None, background=None, strays_follow: bool = False
) -> Cut:
    """The class's cut on verification scores, at least ``floor``: the :func:`confident_cut`
    (lowered to a valley below its knee where the matches are most of the candidates:
    :func:`_majority_below_knee`), except for a set smaller than :data:`SMALL_SET`. There
    Silverman's bandwidth, taken from the spread of both groups together, smooths the gap away
    and the knee of a dozen ranked scores falls among the matches: the cut is the valley of a
    density smoothed by the spread within Otsu's two groups, else Otsu's break itself. A small
    set whose feature ``similarity`` forms :func:`one_population` above the features'
    ``background`` is all matches (a few dozen particles alone in their tomogram, every
    candidate one of them): the floor keeps them all, where a split by shape would keep a
    handful.

    ``strays_follow`` (the :func:`strays` of the picks are dropped after the cut): of a valley
    and the knee of the ranked upper half, the lower. The valley of a density smoothed as
    wide as the matches' own spread lies inside their tail when they are a small mode beside
    many times as many look-alikes (dev1 20S proteasome, one click, verified from blob
    centres: it kept 125-134 of 152, where the best threshold keeps ~140); the knee keeps
    more, and the look-alikes it admits disagree with the class's average."""
    x = np.asarray(scores, np.float64)
    if _too_few(x) or len(x) >= SMALL_SET:
        cut = _majority_below_knee(x, confident_cut(x, floor), floor)
        return _knee_below(x, cut, floor) if strays_follow else cut
    if similarity is not None and one_population(similarity, background):
        return Cut(max(floor, float(x.min())), CutRule.SHAPE_ONE_POPULATION)
    gap = valley(x)
    if gap is None:
        gap = _valley_within(x)
    if gap is not None:
        return _floored(gap, CutRule.SHAPE_VALLEY, floor)
    return _floored(float(threshold_otsu(x)), CutRule.SHAPE_OTSU, floor)


def _valley_within(x: np.ndarray) -> float | None:
    """The :func:`valley` of a density smoothed by the spread within Otsu's two groups (not
    of both together, as Silverman's bandwidth is: a gap between two groups widens that and
    smooths itself away)."""
    otsu = float(threshold_otsu(x))
    high, low = x[x > otsu], x[x <= otsu]
    within = np.sqrt((high.var() * len(high) + low.var() * len(low)) / len(x))
    return valley(x, 1.06 * float(within) * len(x) ** -0.2) if within > 0 else None


MAJORITY_REST = 0.1
"""Below a valley that lowers a knee (:func:`_majority_below_knee`) lies at least this fraction
of the candidates: the rest the matches stand apart from."""
MAJORITY_KNEE_SEPARATION = 3.25
"""A knee whose accepted candidates stand this many robust spreads or more above the rest
(:func:`separation`) is the gap itself, not a knee among the matches, and no valley below it
lowers it (:func:`_majority_below_knee`). On our simulator's scenes of the real maps
(``benchmarks/other_samples.py``, the cut's inputs recorded in each run) the knee stood
1.04-2.82 above the rest on the seven runs the valley mended (a cell packed with ribosomes,
three clicks; the proteasome-rich cell's proteasome, three; the medium cell's ribosome, one)
and 3.72 on the one it cost (half the dose, proteasome click 0: 72 kept by the knee, F1 0.930
before stop 55; 273 by the valley, 0.828 after the strays and the size check). 3.25 lies
between, near their geometric mean (3.24). No dev run's cut is a valley below the knee."""


def _majority_below_knee(x: np.ndarray, cut: Cut, floor: float) -> Cut:
    """A knee ``cut`` lowered to the :func:`_valley_within` when that lies below it. The
    knee is taken on the ranked upper half, since the lower half is mostly junk; where the
    matches are most of the candidates (a cell packed with ribosomes: 240 of 446 candidates
    on our simulator's scene of the real maps) the upper half is all matches, its knee falls
    among them (0.60: 61 kept) and a gap below them is smoothed away by the spread of both
    groups together. Where the matches are a minority the valley, if any, lies above the
    knee (the dev tomograms), and the knee stands. A valley with fewer than
    :data:`MAJORITY_REST` of the candidates below it splits off a few outliers, not the rest
    (a drifted reference in a crowded cell, dev3 proteasome click 1: 11 of 3643); a knee that
    stands :data:`MAJORITY_KNEE_SEPARATION` or more above the rest is kept (a sparse
    proteasome at half the dose: the valley lay among the ribosomes and TRiC below it)."""
    if cut.rule is not CutRule.SHAPE_KNEE or separation(x, cut.value) >= MAJORITY_KNEE_SEPARATION:
        return cut
    gap = _valley_within(x)
    if gap is None or gap >= cut.value or gap < floor or np.mean(x < gap) < MAJORITY_REST:
        return cut
    return Cut(gap, CutRule.SHAPE_MAJORITY)


WEAK_SEPARATION = 2.25
"""Accepted candidates whose median stands fewer robust spreads than this above the rejected
ones' are no population of their own (measured on the dev tomograms: sparse ribosome and
proteasome 2.3-4.3, where the cut is near the best; crowded ribosome 1.6-2.6 and the real
tomogram 1.9-2.2, where it is not): the cut is then a guess, and the user is told."""


def separation(scores, cut: float) -> float:
    """How far the accepted candidates stand above the rejected: the difference of their
    median scores in robust spreads (1.4826 MAD) of the rejected; NaN with fewer than one
    accepted or five rejected."""
    x = np.asarray(scores, np.float64)
    acc, rej = x[x >= cut], x[x < cut]
    if not len(acc) or len(rej) < MIN_DISTRIBUTION:
        return float("nan")
    mad = float(median_abs_deviation(rej, scale="normal"))
    return (float(np.median(acc)) - float(np.median(rej))) / max(mad, 1e-12)


def background_level(
    feats: FeatureVolume, query: np.ndarray, seed: int = 0, n: int = 20000, q: float = 0.99
) -> float:
    """The ``q`` quantile of the query's similarity to ``n`` random feature cells."""
    flat = feats.data.reshape(feats.data.shape[0], -1)
    idx = np.random.default_rng(seed).integers(0, flat.shape[1], size=min(n, flat.shape[1]))
    return float(np.quantile(similarity(flat[:, idx], np.asarray(query)[None]), q))


NEAREST_SEPARATION = 3.0
"""Accepted candidates that stand at least this many robust spreads above the nearer of the
rejected's two groups (:func:`nearest_separation`) are a population of their own, however
weak their :func:`separation` from all the rejected reads. Measured on the cut's inputs of
every run whose cut the count by mass lowered: on the dev tomograms (the crowded ribosome's
nine clicks, where the count helps, and dev3 proteasome click 2) and the real 00254 the
accepted stood 1.9-2.7 above the nearer group; where the count kept a crowd of another
class (our simulator's scenes of the real maps, ``benchmarks/other_samples.py``: a cell
packed with 70S ribosomes, proteasome click 0, 311 kept for 73 proteasomes; a cell with 80S
look-alikes, proteasome clicks 0 and 2) 3.25-3.57. 3.0 lies between, near their geometric
mean (2.96)."""


def nearest_separation(scores, cut: float) -> float:
    """How far the accepted candidates stand above the nearer of the rejected: the
    :func:`separation` against the upper of the rejected's two Otsu groups alone. Where the
    rejected are two populations (the background, and a crowd of another class that
    correlates half as well: ribosomes beside a clicked proteasome) their joint spread is
    wide and the separation from all of them reads weak though the accepted stand clear of
    both; where the rejected are one tail, its upper group lies against the accepted and the
    two readings are alike. NaN as :func:`separation`."""
    x = np.asarray(scores, np.float64)
    rejected = x[x < cut]
    if len(rejected) < 2 * MIN_DISTRIBUTION or np.ptp(rejected) <= 0:
        return separation(x, cut)
    upper = rejected >= threshold_otsu(rejected)
    return separation(np.concatenate([x[x >= cut], rejected[upper]]), cut)


def mass_count_cut(
    scores, cut: Cut, of_class_mass, sep: float, floor: float = 0.0, nearest: float = 0.0
) -> Cut:
    """``cut``, or lower when it is a guess: when the candidates it accepts stand fewer than
    :data:`WEAK_SEPARATION` robust spreads above the rejected (``sep``, the
    :func:`separation` of ``scores`` at ``cut``: crowded cells, where shape correlation cannot
    tell a ribosome from an 80S or a mitoribosome and the knee of the ranked scores falls
    among the first few dozen matches), the particles are counted by their mass instead: the
    best-scoring candidates are kept, as many as have the class's mass (``of_class_mass``,
    per candidate, from :func:`~cryosam.method.verify.of_class_mass`). Not where they stand
    :data:`NEAREST_SEPARATION` or more above the nearer group of the rejected (``nearest``,
    :func:`nearest_separation`: the weak reading came from rejected of two populations).
    Counted too where ``cut`` is a knee that keeps under 1 / :data:`MASS_COUNT_RATIO` of the
    count, however far its few stand apart (:func:`many_of_class_mass`; ``SHAPE_MASS_MANY``).
    Never above ``cut`` (a cut that already keeps that many stays), never below ``floor``."""
    return _counted(cut, count_by_mass(scores, of_class_mass, floor), sep, nearest, scores)


MASS_COUNT_RATIO = 7.25
"""A knee of the shape scores (no valley: one population) that keeps under 1 / this of the
candidates that have the class's mass is taken for the knee of one population's densest few,
however far they stand above the rest, and the count by mass is taken instead. The count's
first reason (:data:`WEAK_SEPARATION`) missed the real tomogram from three clicks of five: the
knee kept 70-84 of its pool where 717-993 had the ribosome's mass (8.5-14 times), its few
2.4-2.7 robust spreads above the rest, as the crowded 20S proteasome's stand, where the count
is wrong. On the cut inputs of the dev tomograms and the other samples
(``benchmarks/cut_replay.py``), a knee the count would wrongly lower kept at least 1 / 6.2 of
the count (dev2 TRiC; 1 / 4.8 for the 20S proteasome); 7.25 lies between 6.2 and 8.5, at
their geometric mean. Only beside a knee that stands apart: the crowded rubisco's weak cuts read
1 / 8.5-10.6 (dev3), where the count is wrong too."""


def many_of_class_mass(scores, cut: float, by_mass: float | None) -> bool:
    """Whether the :func:`count_by_mass` cut ``by_mass`` keeps :data:`MASS_COUNT_RATIO` times
    or more as many of ``scores`` as ``cut`` does."""
    if by_mass is None:
        return False
    x = np.asarray(scores, np.float64)
    return np.sum(x >= by_mass) >= MASS_COUNT_RATIO * max(int(np.sum(x >= cut)), 1)


def _counted(cut: Cut, by_mass: float | None, sep: float, nearest: float, scores) -> Cut:
    """:func:`mass_count_cut` given the :func:`count_by_mass` cut ``by_mass``."""
    if by_mass is None or by_mass >= cut.value:
        return cut
    if weak_cut(sep, nearest):
        return Cut(by_mass, CutRule.SHAPE_MASS_COUNT)
    if cut.rule is CutRule.SHAPE_KNEE and many_of_class_mass(scores, cut.value, by_mass):
        return Cut(by_mass, CutRule.SHAPE_MASS_MANY)
    return cut


def weak_cut(sep: float, nearest: float = 0.0) -> bool:
    """Whether a cut's accepted candidates are no population of their own: they stand fewer
    than :data:`WEAK_SEPARATION` robust spreads above the rejected (``sep``) and fewer than
    :data:`NEAREST_SEPARATION` above the nearer group of them (``nearest``; NaN: not known,
    not in the way)."""
    if not np.isfinite(sep) or sep >= WEAK_SEPARATION:
        return False
    return not (np.isfinite(nearest) and nearest >= NEAREST_SEPARATION)


def count_by_mass(scores, of_class_mass, floor: float = 0.0) -> float | None:
    """The cut that keeps as many of the best ``scores`` as have the class's mass
    (``of_class_mass``), at least ``floor``: what :func:`mass_count_cut` sets where the shape
    cut is a guess, and what it would set elsewhere (``run.json`` keeps both, so a user can
    try the other with ``cryosam recut``). ``None`` without masses, with too few candidates
    for a distribution or fewer than :data:`MIN_DISTRIBUTION` of the class's mass."""
    x = np.asarray(scores, np.float64)
    if of_class_mass is None or _too_few(x):
        return None
    n = int(np.count_nonzero(of_class_mass))
    if n < MIN_DISTRIBUTION:
        return None
    return max(float(np.sort(x)[::-1][min(n, len(x)) - 1]), floor)


@dataclass(frozen=True)
class ClassCut:
    """A class's cut and what led to it (``run.json`` keeps each): the ``first`` rule's cut
    (:func:`shape_cut` on verification scores, :func:`feature_cut` without verification), the
    :func:`separation` and :func:`nearest_separation` of the scores at it, the
    :func:`count_by_mass` (``None``: none to count), and the ``final`` cut
    (:func:`mass_count_cut`)."""

    first: Cut
    separation: float
    nearest: float
    by_mass: float | None
    final: Cut


def verified_cut(
    scores,
    floor: float = 0.0,
    similarity=None,
    background=None,
    strays_follow: bool = False,
    of_class_mass=None,
) -> ClassCut:
    """The whole cut of one class's verified candidates (``scores``, the cut's pool), in the
    order the pick takes it: the shape rules, then the count by mass where that cut is a
    guess (``of_class_mass``: per candidate, ``None`` without a mass window). The one place
    that order lives: the pick and ``benchmarks/cut_replay.py`` both call it."""
    x = np.asarray(scores, np.float64)
    shape = shape_cut(x, floor, similarity, background, strays_follow)
    sep, near = separation(x, shape.value), nearest_separation(x, shape.value)
    by_mass = None if of_class_mass is None else count_by_mass(x, of_class_mass, floor)
    return ClassCut(shape, sep, near, by_mass, _counted(shape, by_mass, sep, near, x))


def unverified_cut(scores, floor: float, background: float | None = None) -> ClassCut:
    """The cut of feature similarities (verification off): :func:`feature_cut`, with its
    separations for the report; no count by mass."""
    x = np.asarray(scores, np.float64)
    cut = feature_cut(x, floor, background)
    return ClassCut(cut, separation(x, cut.value), nearest_separation(x, cut.value), None, cut)


def class_mass(mass, known, tolerance: float) -> tuple[float, float, float] | None:
    """``(median, robust spread, window)`` of the class's mass: the median mass of the
    ``known`` candidates (indices: the prompts and the confident matches), their robust
    spread (1.4826 MAD), and the window's half-width: that spread, but at least ``tolerance``
    of the median (mass is measured noisily, and the best matches are the heaviest, so their
    own spread is too narrow). ``None`` without known candidates, with ``tolerance`` 0 or a
    non-positive median."""
    known = np.asarray(known, int)
    if not tolerance or not len(known):
        return None
    m = np.asarray(mass, np.float64)[known]
    m_ref = float(np.median(m))
    if m_ref <= 0:
        return None
    robust = float(median_abs_deviation(m, scale="normal"))
    return m_ref, robust, max(robust, tolerance * m_ref)


MASS_COUNT_SPREAD = 0.8
"""The known matches' masses count particles only while their robust spread is at most this
fraction of their median: a hollow double ring (TRiC) has a mass near its background's, and
its known matches' spread (dev1: 1.1 of the median) says nothing about which candidates have
it; where counting by mass helped, the spread was 0.17-0.65 (crowded ribosome on dev2/dev3:
dev3 click 2 lies at 0.60-0.65 depending on which candidates the membranes remove; the real
tomogram 0.54-0.62). 0.8 lies between the two, near their geometric mean (0.85): 0.6, set
before the widest ribosome clicks were seen, let one rejected membrane candidate turn the
count off (dev3 click 2: F1 0.38 -> 0.08)."""


def mass_window(mass, known, tolerance: float) -> tuple[float, float] | None:
    """``(median, half-width)`` of the class's mass window (:func:`class_mass`) where mass is a
    measure: ``None`` without a window, or when the ``known`` matches' masses spread more than
    :data:`MASS_COUNT_SPREAD` of their median."""
    window = class_mass(mass, known, tolerance)
    if window is None or window[1] > MASS_COUNT_SPREAD * window[0]:
        return None
    return window[0], window[2]


STRAYS_MAX = 0.85
"""A separate low mode is dropped while it holds fewer than this fraction of the matches: the
particles that agree with the class's average must be at least about a seventh of them. The
average is of every match aligned to the class's reference; the particles align alike and
make it, look-alikes of another shape align at random and blur into its background, so
they may outnumber the particles. Our simulator, scenes of the real maps: a sparse cell's 20S
proteasome valley cut kept 70 proteasomes and 117 others, 79 of them ribosomes, whose score
and agreement formed a low mode of 66-69 % (kept under stop 53's limit of 0.5: F1
0.50-0.54); in a cell with a few ribosome-sized look-alikes (``benchmarks/other_samples.py``,
``medium``) one click's valley cut kept 71 proteasomes among 377 matches, and the low mode
held 78 % (kept under stop 54's 0.75: F1 0.32). On the dev tomograms the deepest low modes
hold under 0.1 or over 0.95 of the matches, so no dev run moves between 0.5 and this."""
STRAYS_NARROW_MAX = 0.5
"""The narrow mode (:data:`STRAYS_NARROW`), a dip the mass must confirm, stays a minority."""
STRAYS_MIN = 10
"""Fewer matches than this are not a distribution of agreement."""


def robust_bandwidth(x) -> float:
    """Silverman's robust rule of thumb (R's ``bw.nrd0``): ``0.9 min(sd, IQR / 1.34)
    n^-1/5``. The plain rule takes the spread of both groups together and smooths a small
    second mode away."""
    x = np.asarray(x, np.float64)
    q75, q25 = np.percentile(x, [75, 25])
    spread = min(float(np.std(x)), float(q75 - q25) / 1.34) or float(np.std(x))
    return 0.9 * spread * len(x) ** -0.2


def strays(score, agreement, mass=None, tolerance: float = 0.0) -> np.ndarray:
    """Which accepted matches are strays, by score and agreement with the class's average
    together (each in units of its spread over the matches): a separate low mode
    (:func:`valley`, with the :func:`robust_bandwidth`) holding fewer than
    :data:`STRAYS_MAX` of them, or outliers below the matches' median (:func:`outliers`). In
    a sparse cell the last matches the cut keeps include a few look-alikes of the right size
    (TRiC and the heaviest proteasomes beside the ribosomes): their score is near the cut,
    and their density does not agree with the average of the particles picked; a true
    particle's does. Where the two do not form two groups (crowded cells, where the
    look-alikes are as many and agree nearly as well) no mode stands apart, nothing lies
    far below the median, and nothing is dropped. ``agreement`` NaN: left out (kept).

    A handful of look-alikes (6-7 of 100 matches) is a mode the robust bandwidth
    smooths away; with ``mass`` (per match, :meth:`~cryosam.method.verify.ShapeVerifier.mass`) a
    mode found at half that bandwidth (:data:`STRAYS_NARROW`) counts too when the mass
    confirms it: its median lies outside the window (:func:`class_mass`, ``tolerance``) of
    the other matches' mass. Alone, the narrow bandwidth also splits the tail of one
    population (a few low-scoring true particles, of the class's mass): of that mode, only
    the members whose own mass lies outside the window are dropped."""
    s = np.asarray(score, np.float64)
    a = np.asarray(agreement, np.float64)
    out = np.zeros(len(s), bool)
    ok = np.isfinite(a) & np.isfinite(s)
    if ok.sum() < STRAYS_MIN or not np.std(s[ok]) or not np.std(a[ok]):
        return out
    z = sum((v[ok] - v[ok].mean()) / v[ok].std() for v in (s, a))
    bw = robust_bandwidth(z)
    low = _low_mode(z, bw, STRAYS_DEPTH, STRAYS_MAX)
    if low is None and mass is not None:
        low = _low_mode(z, STRAYS_NARROW * bw, STRAYS_NARROW_DEPTH, STRAYS_NARROW_MAX)
        low = off_mass(np.asarray(mass, np.float64)[ok], low, tolerance)
    far = outliers(s[ok], a[ok])
    out[np.flatnonzero(ok)[far if low is None else low | far]] = True
    return out


STRAYS_OUTLIER = 3.5
"""How far below the matches' median, in robust standard deviations, a stray lies: the cut of
Iglewicz and Hoaglin's modified z-score (1993). A valley needs the strays to pile up into a
mode of their own; a few dozen look-alikes spread over several standard deviations do not
(dev1 20S proteasome, one click: 25 look-alikes from 2.4 to 5.3 below the particles' mean,
in the units of the sum; the valley's depth was 0.74-0.78 of its flanks from run to run,
against the 0.75 a cut needs, so one look-alike more or less decided whether all were
dropped, F1 0.904 or 0.962). The median and the median absolute deviation are the
particles' whatever the strays do, so far outliers are dropped however they spread. On
dev1-dev3 (ribosome and proteasome, five clicks each) one match of the twenty crowded runs
lies this far below (a look-alike); of the dev1 proteasome's 10-25 look-alikes per click,
8-18 do, with 1-3 particles."""


def robust_z(x) -> np.ndarray:
    """``(x - median) / (1.4826 MAD)``: standard scores from the median and the median
    absolute deviation (a normal's standard deviation is 1.4826 of its MAD), which a
    minority of outliers does not move; zeros when the MAD is 0."""
    x = np.asarray(x, np.float64)
    scale = float(median_abs_deviation(x, scale="normal"))
    return (x - np.median(x)) / scale if scale > 0 else np.zeros_like(x)


def outliers(score, agreement) -> np.ndarray:
    """Which matches' score and agreement together (the sum of their :func:`robust_z`) lie
    more than :data:`STRAYS_OUTLIER` robust standard deviations below the median."""
    return robust_z(robust_z(score) + robust_z(agreement)) < -STRAYS_OUTLIER


STRAYS_NARROW = 0.5
"""The narrow bandwidth, a fraction of the robust one: about what a plug-in selector
(Botev's improved Sheather-Jones) takes on the dev1 ribosome matches (0.40-0.56 of it)."""


STRAYS_DEPTH = 0.8
"""How deep the valley of the strays' mode must be (a fraction of its flanks, as
:data:`VALLEY_DEPTH`, which a cut needs): the strays are a minority the cut already let
through, so a shallower valley counts. On dev1-dev3 (ribosome and proteasome, five clicks
each, the dev1 ones also at 8 A, at half the dose and a quarter diameter off) the valleys
whose low side was mostly look-alikes were 0.52-0.78 deep (0.777 and 0.768: 25 of 30 and
38 of 40 look-alikes, dev1 proteasome click 1 and a quarter-diameter click 2, which 0.75
kept: F1 0.904 and 0.859, 0.962 each without them); those that split particles from
particles 0.86-0.99 (half the dose: 14 ribosomes of 28; crowded ribosomes: 23 of 60, 22 of
99). 0.85 drops the same matches."""

STRAYS_NARROW_DEPTH = 0.9
"""How deep the narrow mode's valley must be (a fraction of its flanks, as
:data:`VALLEY_DEPTH`): a dip, not a shoulder. The mass, member by member (:func:`off_mass`),
decides what is dropped; at the depth of a valley that stands alone (0.75), one off-centre
dev1 ribosome click's 10 look-alikes (TRiC and proteasomes, of half the ribosome's mass)
stayed behind a valley of 0.752 (F1 0.918; 0.934 with them dropped). On dev1-dev3 (five
clicks each of ribosome and proteasome, the dev1 ones also at 8 A and half the dose) any
depth from 0.8 to 0.95 drops the same matches."""


def _low_mode(z: np.ndarray, bandwidth: float, depth: float, most: float) -> np.ndarray | None:
    """The values below the :func:`valley` of ``z`` at ``bandwidth`` (as deep as ``depth``)
    when they are fewer than ``most`` of them, else ``None``."""
    gap = valley(z, bandwidth, depth)
    if gap is None or np.mean(z < gap) >= most:
        return None
    return z < gap


def off_mass(mass: np.ndarray, low: np.ndarray | None, tolerance: float) -> np.ndarray | None:
    """The members of the ``low`` group whose own mass lies outside the window of the
    others' (:func:`mass_window`), when the group's median mass does; else ``None`` (also
    where mass is no measure or unknown). The narrow mode also takes in the low tail of the
    particles' own scores, whose mass is the class's: dev1 ribosome at half the dose, one
    click, 14 of the mode's 28 matches were ribosomes, 9 of them inside the window."""
    if low is None or not np.isfinite(mass).all():
        return None
    window = mass_window(mass, np.flatnonzero(~low), tolerance)
    if window is None or abs(float(np.median(mass[low])) - window[0]) <= window[1]:
        return None
    return low & (np.abs(mass - window[0]) > window[1])
