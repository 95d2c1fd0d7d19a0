"""Hierarchical feature matching, 3D non-maximum suppression and top-K.

Features are pooled by each pyramid ratio (in input voxels; coarse to fine). The
coarsest level is compared with the query everywhere; every finer level only in
cells whose parent passed ``tau_sim`` (and their neighbours, so a particle on a
cell border is not lost). At the finest level, local maxima at least the NMS
radius apart are the matches, best first, at most ``top_k``.
:func:`naive_match` compares every voxel of the input at full resolution, the brute
force the paper measures its speed-up against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree


@dataclass
class MatchResult:
    """Similarity at the finest pyramid level.

    Attributes:
        similarity: ``(z, y, x)`` float32 over the finest level; ``-inf`` where pruned.
        cell: input voxels per cell of the finest level.
        evaluated: number of cell-query comparisons made, per level.
    """

    similarity: np.ndarray
    cell: int
    evaluated: list[int]

    def to_input(self, grid_zyx) -> np.ndarray:
        """Finest-level cell coordinates -> input voxel coordinates (cell centres)."""
        return np.asarray(grid_zyx, dtype=np.float64) * self.cell + (self.cell - 1) / 2.0


def pool(features: np.ndarray, factor: int) -> np.ndarray:
    """Mean-pool ``(C, z, y, x)`` by ``factor`` (edges padded by replication)."""
    if factor == 1:
        return features.astype(np.float32, copy=False)
    c, *shape = features.shape
    pad = [(0, 0)] + [(0, (-s) % factor) for s in shape]
    f = np.pad(features.astype(np.float32), pad, mode="edge")
    z, y, x = (s // factor for s in f.shape[1:])
    return f.reshape(c, z, factor, y, factor, x, factor).mean(axis=(2, 4, 6))


def similarity(feats: np.ndarray, queries: np.ndarray, kind: str = "cosine") -> np.ndarray:
    """Max over queries ``(Q, C)`` of the similarity to feature columns ``(C, N)`` -> ``(N,)``.

    ``cosine`` (paper) compares directions only. ``dice`` = 2 f.q / (|f|^2 + |q|^2)
    also penalises a magnitude mismatch; it equals the cosine when the norms agree.
    """
    q = np.atleast_2d(np.asarray(queries, np.float32))
    f = feats.astype(np.float32, copy=False)
    dots = q @ f
    f2 = (f * f).sum(axis=0)
    if kind == "cosine":
        sim = dots / (np.linalg.norm(q, axis=1)[:, None] * np.sqrt(f2)[None] + 1e-8)
    elif kind == "dice":
        sim = 2 * dots / ((q * q).sum(axis=1)[:, None] + f2[None] + 1e-8)
    else:
        raise ValueError(kind)
    return sim.max(axis=0)


def cosine(features: np.ndarray, queries: np.ndarray, kind: str = "cosine") -> np.ndarray:
    """Similarity map: ``(C, z, y, x)`` x ``(Q, C)`` -> ``(z, y, x)``."""
    flat = features.reshape(features.shape[0], -1)
    return similarity(flat, queries, kind).reshape(features.shape[1:]).astype(np.float32)


def level_factors(pyramid, stride: int) -> list[int]:
    """Pyramid ratios in input voxels -> pooling factors of the feature grid (unique, >= 1)."""
    out = []
    for r in pyramid:
        f = max(1, int(round(r / stride)))
        if not out or f < out[-1]:
            out.append(f)
    return out


def hierarchical_match(
    features: np.ndarray,
    stride: int,
    queries: np.ndarray,
    pyramid,
    tau_sim: float,
    kind: str = "cosine",
) -> MatchResult:
    """Coarse-to-fine matching of ``queries`` against ``(C, z, y, x)`` features."""
    factors = level_factors(pyramid, stride)
    q = np.atleast_2d(np.asarray(queries, np.float32))
    evaluated = []
    keep = None
    prev_factor = None
    sim = None
    for f in factors:
        level = pool(features, f)
        shape = level.shape[1:]
        if keep is None:
            sim = cosine(level, q, kind)
            evaluated.append(sim.size * len(q))
        else:
            ratio = prev_factor // f if prev_factor % f == 0 else prev_factor / f
            parents = ndimage.binary_dilation(keep, np.ones((3, 3, 3), bool))
            idx = np.argwhere(parents)
            r = int(np.ceil(ratio))
            offs = np.indices((r, r, r)).reshape(3, -1).T
            cells = (idx[:, None, :] * ratio).astype(int) + offs[None]
            cells = cells.reshape(-1, 3)
            ok = np.all(cells < np.asarray(shape), axis=1)
            # each cell once, in C order (what ``np.unique(axis=0)`` gives, without its
            # sort of rows: 11 of the real tomogram's 18 s of matching)
            marked = np.zeros(shape, bool)
            marked[tuple(cells[ok].T)] = True
            cells = np.argwhere(marked)
            sim = np.full(shape, -np.inf, dtype=np.float32)
            if len(cells):
                feats = level[:, cells[:, 0], cells[:, 1], cells[:, 2]]
                s = similarity(feats, q, kind)
                sim[cells[:, 0], cells[:, 1], cells[:, 2]] = s
            evaluated.append(len(cells) * len(q))
        keep = sim >= tau_sim
        prev_factor = f
    return MatchResult(sim, factors[-1] * stride, evaluated)


def naive_match(
    features: np.ndarray,
    stride: int,
    queries: np.ndarray,
    input_shape,
    kind: str = "cosine",
    chunk: int = 8,
) -> MatchResult:
    """Brute force, as the paper's baseline: the similarity at every voxel of the input.

    Features are interpolated (trilinear) from the feature grid to full resolution,
    a few slices at a time, so memory stays bounded. For comparison only.
    """
    nz, ny, nx = (int(s) for s in input_shape)
    sim = np.empty((nz, ny, nx), dtype=np.float32)
    feats = features.astype(np.float32, copy=False)
    gy = (np.arange(ny) - (stride - 1) / 2.0) / stride
    gx = (np.arange(nx) - (stride - 1) / 2.0) / stride
    for z0 in range(0, nz, chunk):
        gz = (np.arange(z0, min(z0 + chunk, nz)) - (stride - 1) / 2.0) / stride
        grid = np.stack(np.meshgrid(gz, gy, gx, indexing="ij"))
        block = np.stack([ndimage.map_coordinates(c, grid, order=1, mode="nearest") for c in feats])
        sim[z0 : z0 + len(gz)] = cosine(block, queries, kind)
    return MatchResult(sim, 1, [sim.size * len(np.atleast_2d(queries))])


def nms(
    points, scores, radius, top_k: int | None = None, *, keep_first: int = 0, groups=None
) -> np.ndarray:
    """Greedy non-maximum suppression, the one used by every stage.

    Points are taken best score first (after the first ``keep_first``, which are kept in
    order whatever their neighbours); a point closer than ``radius`` to a kept one is
    dropped. ``radius`` may be per point: two points conflict when closer than the smaller
    of their radii. With ``groups``, only points of different groups conflict (classes
    competing for a particle). At most ``top_k`` are kept. Returns kept indices in order.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(points)
    order = np.concatenate(
        [np.arange(keep_first), keep_first + np.argsort(-scores[keep_first:], kind="stable")]
    )
    top_k = n if top_k is None else top_k
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    if n == 0 or r.max() <= 0:
        return order[:top_k].astype(int)
    tree = cKDTree(points)
    rmax = float(r.max())
    suppressed = np.zeros(n, dtype=bool)
    kept = []
    for rank, i in enumerate(order):
        if suppressed[i] and rank >= keep_first:
            continue
        kept.append(i)
        if len(kept) >= top_k:
            break
        near = np.asarray(tree.query_ball_point(points[i], r=rmax), dtype=int)
        close = np.linalg.norm(points[near] - points[i], axis=1) < np.minimum(r[near], r[i])
        if groups is not None:
            close &= np.asarray(groups)[near] != np.asarray(groups)[i]
        suppressed[near[close]] = True
    return np.asarray(kept, dtype=int)


def find_peaks(result: MatchResult, radius_px: float, top_k: int, min_score: float):
    """Local maxima of the similarity (3x3x3 neighbourhood) above ``min_score``, then 3D NMS
    at ``radius_px`` input voxels (Euclidean), best ``top_k``.

    Returns input-voxel positions ``(N, 3)`` and scores, best first.
    """
    sim = result.similarity
    finite = np.where(np.isfinite(sim), sim, -np.inf).astype(np.float32)
    local_max = ndimage.maximum_filter(finite, size=3, mode="nearest") == finite
    peaks = np.argwhere(local_max & (finite >= min_score))
    if len(peaks) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    scores = finite[tuple(peaks.T)].astype(np.float64)
    keep = nms(peaks.astype(np.float64), scores, radius_px / result.cell, top_k)
    return result.to_input(peaks[keep]), scores[keep]
