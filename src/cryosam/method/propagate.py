"""Cross-Plane Self-Prompting: one point prompt -> one 3D instance mask.

The segmenter answers the three orthogonal slices through the prompt; from each,
propagation walks slice by slice in both directions, prompting the next slice with
the previous mask (as logits) and its most confident point. A direction stops when
the IoU of adjacent slice masks drops below ``tau_iou``, the mask vanishes, its
area exceeds the particle's size bound, or the walk leaves the bound of
``max_extent_factor`` diameters from the prompt. The stacks of the propagated
axes are merged by union (paper) or majority vote. The reference code propagates
along z only (``propagation_axes='z'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryosam.config import Config
from cryosam.models.base import PromptableSegmenter

AXES = {"z": 0, "y": 1, "x": 2}


@dataclass
class InstanceMask:
    """A 3D instance mask held in its bounding box.

    Attributes:
        mask: bool array over the box.
        offset: voxel index of the box's first corner in the volume, ``(z, y, x)``.
        point: the prompt, ``(z, y, x)``.
        score: mean predicted quality of the slice masks (0 when empty).
        slices: number of slices segmented per propagated axis.
    """

    mask: np.ndarray
    offset: np.ndarray
    point: np.ndarray
    score: float = 0.0
    slices: dict[str, int] = field(default_factory=dict)

    @property
    def voxels(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def empty(self) -> bool:
        return self.voxels == 0

    def box(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + s) for o, s in zip(self.offset, self.mask.shape))

    def centroid(self) -> np.ndarray:
        """Centre of the mask in volume voxel coordinates ``(z, y, x)``."""
        if self.empty:
            return np.asarray(self.point, dtype=np.float64)
        return np.argwhere(self.mask).mean(axis=0) + self.offset

    def paste(self, labels: np.ndarray, value: int, overwrite: bool = False) -> None:
        """Write ``value`` into ``labels`` where the mask is set (and, unless
        ``overwrite``, where ``labels`` is still 0)."""
        view = labels[self.box()]
        sel = self.mask if overwrite else self.mask & (view == 0)
        view[sel] = value


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _slice_prompt(point_uv, negs: np.ndarray, axis: int, index: int, lo: np.ndarray):
    """Positive point (window coords) plus the negatives lying in slice ``index``."""
    u, v = [a for a in range(3) if a != axis]
    pts = [point_uv]
    lab = [1]
    for n in negs:
        if abs(n[axis] - index) <= 0.5:
            pts.append((n[u] - lo[u], n[v] - lo[v]))
            lab.append(0)
    return np.asarray(pts, dtype=np.float64), np.asarray(lab)


def _propagate_axis(segmenter, axis, p, lo, hi, half, max_area, negs, tau_iou):
    """Masks of one axis' slices as a stack over the box, their scores and slice count."""
    u, v = [a for a in range(3) if a != axis]
    window = (slice(lo[u], hi[u]), slice(lo[v], hi[v]))
    stack = np.zeros(tuple(int(b - a) for a, b in zip(lo, hi)), dtype=bool)
    start = int(np.clip(round(p[axis]), lo[axis], hi[axis] - 1))
    pts, lab = _slice_prompt((p[u] - lo[u], p[v] - lo[v]), negs, axis, start, lo)
    first = segmenter.segment(axis, start, window, pts, lab)
    if not first.mask.any() or first.mask.sum() > max_area:
        return stack, [], 0
    np.moveaxis(stack, axis, 0)[start - lo[axis]] = first.mask
    scores = [first.score]
    for step in (1, -1):
        prev, index = first, start
        while lo[axis] <= index + step < hi[axis] and abs(index + step - p[axis]) <= half:
            index += step
            logits = np.where(prev.mask, prev.logits, -np.inf)
            best = np.unravel_index(int(np.argmax(logits)), logits.shape)
            pts, lab = _slice_prompt(best, negs, axis, index, lo)
            res = segmenter.segment(axis, index, window, pts, lab, prev.logits)
            if not res.mask.any() or res.mask.sum() > max_area:
                break
            if _iou(res.mask, prev.mask) < tau_iou:
                break
            np.moveaxis(stack, axis, 0)[index - lo[axis]] = res.mask
            scores.append(res.score)
            prev = res
    return stack, scores, len(scores)


def propagate_instance(
    segmenter: PromptableSegmenter,
    shape: tuple[int, int, int],
    point_zyx,
    diameter_px: float,
    config: Config | None = None,
    negatives_zyx=(),
) -> InstanceMask:
    """Segment the particle under ``point_zyx`` in 3D.

    Args:
        segmenter: a segmenter whose :meth:`set_volume` was called on the volume.
        shape: the volume's shape ``(z, y, x)``.
        point_zyx: the prompt in voxels.
        diameter_px: expected particle diameter in voxels (bounds the propagation).
        negatives_zyx: points on things that are not this particle.

    Returns:
        The instance mask (empty when the segmenter finds nothing at the prompt).
    """
    config = config or Config()
    p = np.asarray(point_zyx, dtype=np.float64)
    pi = np.clip(np.round(p).astype(int), 0, np.asarray(shape) - 1)
    half = int(np.ceil(config.max_extent_factor * diameter_px))
    lo = np.maximum(pi - half, 0)
    hi = np.minimum(pi + half + 1, shape)
    max_area = np.pi * (0.5 * config.max_area_factor * diameter_px) ** 2
    negs = np.asarray(negatives_zyx, dtype=np.float64).reshape(-1, 3)
    segmenter.begin_instance(p)
    stacks, scores, counts = [], [], {}
    for name in config.propagation_axes:
        stack, s, n = _propagate_axis(
            segmenter, AXES[name], p, lo, hi, half, max_area, negs, config.tau_iou
        )
        counts[name] = n
        if n:
            stacks.append(stack)
            scores += s
    if not stacks:
        return InstanceMask(np.zeros(tuple(hi - lo), bool), lo, p, 0.0, counts)
    votes = np.sum(stacks, axis=0)
    if config.combine == "vote":
        mask = votes * 2 > len(config.propagation_axes)
    else:
        mask = votes > 0
    grids = np.ogrid[tuple(slice(a - c, b - c) for a, b, c in zip(lo, hi, pi))]
    inside = sum(g.astype(np.float32) ** 2 for g in grids) <= half * half
    mask &= inside
    refine = getattr(segmenter, "refine", None)
    if refine is not None:
        mask = refine(mask, lo) & inside
    return InstanceMask(mask, lo, p, float(np.mean(scores)), counts)
