"""Gold fiducials: where a tomogram holds them, so that no pick lands on or beside one.

Real tomograms carry gold beads (5-15 nm) for tilt-series alignment. Gold is ~14 times
denser than protein: after a 1 nm low-pass a bead stands far above anything biological,
and the missing wedge stretches it in z and draws X-shaped streaks through the slices
around it. Those dark, round, particle-sized blobs correlate with a one-click reference
better than most true particles do (EMPIAR-10499 00254 at 10 Å: the eight best-scoring
candidates were all within 14-30 nm of a bead) and then drag the bootstrapped reference
to themselves.

So cryosam finds the beads first (:func:`find_gold`), erases them from the prepared volume
(the bead and a margin read as the volume's mean, before the prompts are segmented and the
features computed, as gold erasers do before reconstruction) and rejects the candidates
that stay within reach of one (:func:`near_gold`, :func:`gold_reach_px`): the streaks
remain.

A voxel is gold when its 1 nm low-pass exceeds :data:`GOLD_FACTOR` times the volume's 99th
percentile (the densest protein): 00254 holds 27 such beads (the low-passed gold reaches
12 times that percentile); the simulated cells of ``shared/data/dev``, which hold no gold,
peak at 2.4-3.2 times it, so nothing is found there.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

GOLD_FACTOR = 5.0
"""A voxel is gold above this many times the low-passed volume's 99th percentile."""
GOLD_LOWPASS_NM = 1.0
"""Gaussian low-pass (sigma, nm) before the threshold: single noisy voxels never pass it."""
GOLD_REACH_NM = 20.0
"""How far beyond a particle's radius a bead's elongation and streaks reach (nm)."""
SLAB = 32
"""z-slices low-passed at a time (with a halo), so no full float copy is made."""
ERASE_MARGIN_NM = 3.0
"""Erased around every gold voxel (the bead's low-passed rim lies below the threshold)."""
MAX_GOLD_VOXELS = 500_000
"""More gold voxels than this: the threshold found something else (a carbon edge, a
saturated region); the volume is then left as it is."""


def _lowpassed_slabs(volume, sigma: float):
    """``(z0, low-passed slab)`` over the volume, each slab filtered with a halo."""
    nz = volume.shape[0]
    halo = int(np.ceil(4 * sigma))
    for z0 in range(0, nz, SLAB):
        a, b = max(0, z0 - halo), min(nz, z0 + SLAB + halo)
        block = ndimage.gaussian_filter(np.asarray(volume[a:b], np.float32), sigma)
        yield z0, block[z0 - a : z0 - a + min(SLAB, nz - z0)]


def find_gold(volume, voxel_size: float | None) -> np.ndarray:
    """The ``(z, y, x)`` voxels of gold fiducials in a prepared (bright-protein) volume,
    ``(0, 3)`` when it holds none. ``voxel_size`` in Å (10 Å assumed when unknown)."""
    sigma = GOLD_LOWPASS_NM * 10.0 / (voxel_size or 10.0)
    step = max(1, int(round((np.prod(volume.shape) / 4e6) ** (1 / 3))))
    sample = [s[::step, ::step, ::step].ravel() for _, s in _lowpassed_slabs(volume, sigma)]
    top = float(np.percentile(np.concatenate(sample), 99))
    if not np.isfinite(top) or top <= 0:
        return np.zeros((0, 3), int)
    found = []
    for z0, s in _lowpassed_slabs(volume, sigma):
        hits = np.argwhere(s > GOLD_FACTOR * top)
        hits[:, 0] += z0
        found.append(hits)
    gold = np.concatenate(found)
    return gold if len(gold) <= MAX_GOLD_VOXELS else np.zeros((0, 3), int)


def erase_zone(gold: np.ndarray, shape, voxel_size: float | None) -> np.ndarray:
    """The voxels within :data:`ERASE_MARGIN_NM` of a gold voxel, ``(N, 3)``, inside
    ``shape``."""
    if not len(gold):
        return np.zeros((0, 3), int)
    r = ERASE_MARGIN_NM * 10.0 / (voxel_size or 10.0)
    k = int(np.ceil(r))
    g = np.indices((2 * k + 1,) * 3).reshape(3, -1).T - k
    ball = g[np.sqrt((g**2).sum(1)) <= r]
    zones = []
    for i0 in range(0, len(gold), 20_000):
        z = (gold[i0 : i0 + 20_000, None, :] + ball[None]).reshape(-1, 3)
        z = z[np.all((z >= 0) & (z < np.asarray(shape)), axis=1)]
        zones.append(np.unique(z, axis=0))
    return np.unique(np.concatenate(zones), axis=0)


def near_gold(zyx, gold: np.ndarray, radius_px: float) -> np.ndarray:
    """Per point, whether a gold voxel lies within ``radius_px``."""
    zyx = np.asarray(zyx, np.float64).reshape(-1, 3)
    if not len(gold) or not len(zyx):
        return np.zeros(len(zyx), bool)
    return cKDTree(gold).query(zyx, distance_upper_bound=radius_px)[0] <= radius_px


def gold_reach_px(diameter_px: float, voxel_size: float | None) -> float:
    """The distance from a bead within which a particle of ``diameter_px`` is rejected."""
    return 0.5 * diameter_px + GOLD_REACH_NM * 10.0 / (voxel_size or 10.0)


def count_beads(gold: np.ndarray) -> int:
    """How many separate beads (26-connected groups of gold voxels) ``gold`` holds."""
    if not len(gold):
        return 0
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = cKDTree(gold).query_pairs(np.sqrt(3) + 1e-6, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (len(gold),) * 2)
    return int(connected_components(graph, directed=False)[0])
