"""Scoring picks and masks against ground truth.

Picks: one-to-one matching (Hungarian, exact, per connected group of candidates)
within a radius, per class: precision, recall, F1 and F-beta (beta = 4 as in the
CZII cryo-ET challenge). With scores: the precision-recall curve (picks ranked by
score, each matched greedily to the nearest free true particle within the radius,
as detection benchmarks do), average precision and the best-threshold F1.
Masks: Dice and IoU per class; instances matched at IoU >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def match_points(
    pred: np.ndarray, true: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum one-to-one matching of ``pred`` to ``true`` points within ``radius``.

    Among maximum matchings, the total distance is minimal. Returns index arrays
    ``(pred_idx, true_idx)`` of the matched pairs.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 3)
    if len(pred) == 0 or len(true) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    pairs = cKDTree(pred).query_ball_tree(cKDTree(true), r=radius)
    rows = np.repeat(np.arange(len(pred)), [len(p) for p in pairs])
    cols = np.fromiter((j for p in pairs for j in p), dtype=np.int64, count=len(rows))
    if len(rows) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    n_p = len(pred)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + n_p)), shape=(n_p + len(true),) * 2)
    _, comp = connected_components(graph, directed=False)
    dist = np.linalg.norm(pred[rows] - true[cols], axis=1)
    out_p, out_t = [], []
    order = np.argsort(comp[rows], kind="stable")
    rows, cols, dist = rows[order], cols[order], dist[order]
    bounds = np.flatnonzero(np.diff(comp[rows])) + 1
    for r, c, d in zip(np.split(rows, bounds), np.split(cols, bounds), np.split(dist, bounds)):
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        # a pair within the radius costs its distance minus a big constant, so that the
        # assignment first maximises the number of pairs, then minimises the distance
        big = 1e6 * (radius + 1.0)
        cost = np.zeros((len(ur), len(uc)))
        cost[ri, ci] = d - big
        pr, pc = linear_sum_assignment(cost)
        keep = cost[pr, pc] < 0
        out_p.append(ur[pr[keep]])
        out_t.append(uc[pc[keep]])
    return np.concatenate(out_p), np.concatenate(out_t)


@dataclass
class PickScores:
    """Scores of one class of picks."""

    n_pred: int
    n_true: int
    tp: int
    radius: float
    beta: float = 4.0
    average_precision: float = float("nan")
    best_f1: float = float("nan")
    best_threshold: float = float("nan")
    curve: dict = field(default_factory=dict, repr=False)
    mean_distance: float = float("nan")

    @property
    def fp(self) -> int:
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        return self.n_true - self.tp

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_true if self.n_true else 0.0

    @property
    def f1(self) -> float:
        return f_beta(self.precision, self.recall, 1.0)

    @property
    def fbeta(self) -> float:
        return f_beta(self.precision, self.recall, self.beta)

    def as_row(self) -> dict:
        return {
            "n_pred": self.n_pred,
            "n_true": self.n_true,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            f"f{self.beta:g}": round(self.fbeta, 4),
            "ap": round(self.average_precision, 4),
            "best_f1": round(self.best_f1, 4),
            "best_threshold": self.best_threshold,
            "mean_distance_px": round(self.mean_distance, 3),
            "radius_px": round(self.radius, 3),
        }


def f_beta(precision: float, recall: float, beta: float) -> float:
    """F-beta; 0 when both are 0."""
    b2 = beta * beta
    denom = b2 * precision + recall
    return (1 + b2) * precision * recall / denom if denom > 0 else 0.0


def pr_curve(pred: np.ndarray, scores: np.ndarray, true: np.ndarray, radius: float) -> dict:
    """Precision-recall curve of score-ranked picks (greedy nearest free match).

    Returns ``precision``, ``recall``, ``threshold`` arrays (one per rank), ``ap``
    (area under the interpolated curve), ``best_f1`` and ``best_threshold``.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 3)
    order = np.argsort(-np.asarray(scores), kind="stable")
    hit = np.zeros(len(pred), dtype=bool)
    if len(true) and len(pred):
        tree = cKDTree(true)
        free = np.ones(len(true), dtype=bool)
        k = min(len(true), 32)
        for rank, i in enumerate(order):
            dist, idx = tree.query(pred[i], k=k, distance_upper_bound=radius)
            for d, j in zip(np.atleast_1d(dist), np.atleast_1d(idx)):
                if np.isfinite(d) and free[j]:
                    free[j] = False
                    hit[rank] = True
                    break
    tp = np.cumsum(hit)
    n = np.arange(1, len(pred) + 1)
    precision = tp / n if len(pred) else np.zeros(0)
    recall = tp / len(true) if len(true) else np.zeros(len(pred))
    thresholds = np.asarray(scores, dtype=np.float64)[order]
    # AP: precision made monotone from the right, summed over recall steps
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(pred) else precision
    steps = np.diff(np.concatenate([[0.0], recall]))
    ap = float((envelope * steps).sum()) if len(pred) else 0.0
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall + 1e-12), 0)
    # the best cut must keep every pick with the same score: evaluate at the last of ties
    last_of_tie = np.r_[thresholds[1:] != thresholds[:-1], True] if len(pred) else []
    best = int(np.argmax(np.where(last_of_tie, f1, -1))) if len(pred) else -1
    return {
        "precision": precision,
        "recall": recall,
        "threshold": thresholds,
        "ap": ap,
        "best_f1": float(f1[best]) if best >= 0 else 0.0,
        "best_threshold": float(thresholds[best]) if best >= 0 else float("nan"),
    }


def score_picks(pred_zyx, true_zyx, radius: float, scores=None, beta: float = 4.0) -> PickScores:
    """Score one class of picks against the truth within ``radius`` voxels."""
    pred = np.asarray(pred_zyx, dtype=np.float64).reshape(-1, 3)
    true = np.asarray(true_zyx, dtype=np.float64).reshape(-1, 3)
    pi, ti = match_points(pred, true, radius)
    result = PickScores(len(pred), len(true), len(pi), radius, beta)
    if len(pi):
        result.mean_distance = float(np.linalg.norm(pred[pi] - true[ti], axis=1).mean())
    if scores is not None and len(pred) and np.isfinite(np.asarray(scores, float)).all():
        curve = pr_curve(pred, np.asarray(scores, float), true, radius)
        result.average_precision = curve["ap"]
        result.best_f1 = curve["best_f1"]
        result.best_threshold = curve["best_threshold"]
        result.curve = curve
    return result


def score_pick_classes(
    pred, truth, radius_px: dict[str, float], beta: float = 4.0, class_map=None
) -> dict[str, PickScores]:
    """Score :class:`~cryosam.io.Picks` per class.

    Args:
        radius_px: truth class -> matching radius in voxels (classes absent from it
            are not scored).
        class_map: predicted class name -> truth class name (default: same names).
    """
    class_map = class_map or {}
    pred_truth_names = np.array([class_map.get(c, c) for c in pred.class_name], dtype=object)
    out = {}
    for cls, radius in radius_px.items():
        sel = pred_truth_names == cls
        true_sel = truth.class_name == cls
        out[cls] = score_picks(pred.zyx[sel], truth.zyx[true_sel], radius, pred.score[sel], beta)
    return out


def dice_iou(pred_mask: np.ndarray, true_mask: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks (1.0 when both are empty)."""
    p = np.asarray(pred_mask, dtype=bool)
    t = np.asarray(true_mask, dtype=bool)
    inter = int(np.count_nonzero(p & t))
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    if total == 0:
        return 1.0, 1.0
    return 2 * inter / total, inter / (total - inter)


def instance_matches(pred_inst: np.ndarray, true_inst: np.ndarray, min_iou: float = 0.5):
    """Pairs of instance ids with IoU >= ``min_iou`` (unique when ``min_iou`` >= 0.5).

    Returns ``(pred_ids, true_ids, ious)`` and the sets of all ids on each side.
    """
    p = np.asarray(pred_inst).ravel()
    t = np.asarray(true_inst).ravel()
    both = (p > 0) & (t > 0)
    pid, p_area = np.unique(p[p > 0], return_counts=True)
    tid, t_area = np.unique(t[t > 0], return_counts=True)
    pairs, inter = np.unique(np.stack([p[both], t[both]]), axis=1, return_counts=True)
    pa = dict(zip(pid.tolist(), p_area.tolist()))
    ta = dict(zip(tid.tolist(), t_area.tolist()))
    ious = np.array(
        [i / (pa[a] + ta[b] - i) for (a, b), i in zip(pairs.T.tolist(), inter.tolist())]
    )
    keep = ious >= min_iou if len(ious) else np.zeros(0, bool)
    return pairs[0][keep], pairs[1][keep], ious[keep], pid, tid


def score_instances(pred_inst: np.ndarray, true_inst: np.ndarray, min_iou: float = 0.5) -> dict:
    """Instance precision, recall and F1 at IoU >= ``min_iou``, and the mean matched IoU."""
    mp, mt, ious, pid, tid = instance_matches(pred_inst, true_inst, min_iou)
    tp = len(mp)
    precision = tp / len(pid) if len(pid) else 0.0
    recall = tp / len(tid) if len(tid) else 0.0
    return {
        "n_pred": int(len(pid)),
        "n_true": int(len(tid)),
        "tp": int(tp),
        "precision": precision,
        "recall": recall,
        "f1": f_beta(precision, recall, 1.0),
        "mean_iou": float(ious.mean()) if tp else 0.0,
    }
