"""Preview pictures: orthogonal slices with masks and picks overlaid.

One PNG a person can look at to see whether a result is right: the top row shows
the raw slices (percentile window), the bottom row the same slices with class
colours and pick markers, with a legend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.patches import Patch

from cryosam.io.atomic import atomic_path

CLASS_COLOURS = [
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#fffac8",
    "#800000",
]


def class_colour(i: int) -> str:
    """Colour of class id ``i`` (1-based) in every picture cryosam draws."""
    return CLASS_COLOURS[(i - 1) % len(CLASS_COLOURS)]


def _window(img: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(img, [1, 99])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def _save(fig: Figure, path, overwrite: bool) -> Path:
    """Write a figure as PNG atomically (a plain Figure: no pyplot state, no GUI backend)."""
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return Path(path)


def write_preview(
    path: str | os.PathLike,
    volume: np.ndarray,
    labels: np.ndarray | None = None,
    class_names: dict[int, str] | None = None,
    points_zyx: np.ndarray | None = None,
    point_classes: list[int] | None = None,
    centre=None,
    slab: float = 3.0,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Write a PNG of the z, y and x slices through ``centre`` (default: the middle).

    Args:
        volume: ``(z, y, x)`` tomogram.
        labels: optional ``(z, y, x)`` class ids (0 = background), drawn in class colours.
        class_names: id -> name for the legend.
        points_zyx: optional ``(N, 3)`` picks; those within ``slab`` voxels of a slice
            are drawn as circles on it, in the colour of ``point_classes`` (ids).
    """
    shape = np.asarray(volume.shape)
    c = (shape // 2) if centre is None else np.clip(np.round(centre).astype(int), 0, shape - 1)
    views = [
        ("z", lambda a: a[c[0]], (1, 2), f"xy slice at z={c[0]}"),
        ("y", lambda a: a[:, c[1]], (0, 2), f"xz slice at y={c[1]}"),
        ("x", lambda a: a[:, :, c[2]], (0, 1), f"yz slice at x={c[2]}"),
    ]
    # equal panel heights: each panel's width ratio is its aspect (width / height)
    widths = [shape[2] / shape[1], shape[2] / shape[0], shape[1] / shape[0]]
    fig = Figure(figsize=(4.5 * sum(widths) + 1, 10))
    axes = fig.subplots(2, 3, gridspec_kw={"width_ratios": widths}, squeeze=False)
    n_ids = int(labels.max()) if labels is not None and labels.size else 0
    cmap = ListedColormap(["none"] + [class_colour(i) for i in range(1, max(n_ids, 1) + 1)])
    pts = None if points_zyx is None else np.asarray(points_zyx, dtype=float).reshape(-1, 3)
    pcls = None if point_classes is None else np.asarray(point_classes)
    for col, (axis_name, take, (ra, ca), label) in enumerate(views):
        img = np.asarray(take(volume), dtype=np.float32)
        lo, hi = _window(img)
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(label if row == 0 else label + " + overlay", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[1, col]
        if labels is not None:
            lab = np.asarray(take(labels))
            ax.imshow(
                np.ma.masked_equal(lab, 0),
                cmap=cmap,
                vmin=0,
                vmax=max(n_ids, 1),
                alpha=0.45,
                interpolation="nearest",
            )
        if pts is not None and len(pts):
            axis = "zyx".index(axis_name)
            near = np.abs(pts[:, axis] - c[axis]) <= slab
            colours = [class_colour(int(k)) for k in pcls[near]] if pcls is not None else "yellow"
            ax.scatter(
                pts[near, ca],
                pts[near, ra],
                s=60,
                facecolors="none",
                edgecolors=colours,
                linewidths=1.2,
            )
    if class_names:
        handles = [Patch(color=class_colour(i), label=n) for i, n in sorted(class_names.items())]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97), h_pad=2.5)
    return _save(fig, path, overwrite)


def write_instance_preview(
    path: str | os.PathLike,
    volume: np.ndarray,
    labels: np.ndarray,
    points_zyx: np.ndarray,
    half_width: int,
    title: str = "",
    max_rows: int = 6,
    overwrite: bool = False,
) -> Path:
    """One row per prompt (at most ``max_rows``): z, y and x planes through the prompt,
    cropped to ``half_width`` voxels around it, with the instance's outline and the point."""
    pts = np.asarray(points_zyx, dtype=float).reshape(-1, 3)[:max_rows]
    rows = max(1, len(pts))
    fig = Figure(figsize=(10, 3.4 * rows))
    axes = fig.subplots(rows, 3, squeeze=False)
    shape = np.asarray(volume.shape)
    for r, p in enumerate(pts):
        c = np.clip(np.round(p).astype(int), 0, shape - 1)
        lo = np.maximum(c - half_width, 0)
        hi = np.minimum(c + half_width + 1, shape)
        crop = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub, lab = volume[crop], labels[crop] == (r + 1)
        local = c - lo
        for col, axis in enumerate((0, 1, 2)):
            img = np.take(sub, local[axis], axis=axis)
            mask = np.take(lab, local[axis], axis=axis)
            u, v = [a for a in range(3) if a != axis]
            ax = axes[r, col]
            lo_w, hi_w = _window(img)
            ax.imshow(img, cmap="gray", vmin=lo_w, vmax=hi_w, interpolation="nearest")
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors=[class_colour(r + 1)])
            ax.plot(local[v], local[u], "+", color="yellow", markersize=12, mew=2)
            name = "zyx"[axis]
            ax.set_title(
                f"#{r + 1} {name}={c[axis]} ({'zyx'[u]} down, {'zyx'[v]} across)", fontsize=9
            )
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path, overwrite)


def write_pick_preview(
    path: str | os.PathLike,
    volume: np.ndarray,
    semantic: np.ndarray,
    class_names: dict[int, str],
    picks_zyx: np.ndarray,
    pick_class_ids: list[int],
    candidate_scores: dict[str, np.ndarray],
    cuts: dict[str, float],
    centre=None,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Orthogonal slices with masks and picks, plus a score histogram per class with its cut."""
    tmp_slices = Path(path).with_name(f".{Path(path).stem}-slices.png")
    write_preview(
        tmp_slices,
        volume,
        semantic,
        class_names,
        picks_zyx,
        pick_class_ids,
        centre=centre,
        slab=4.0,
        title=title,
        overwrite=True,
    )
    slices = imread(tmp_slices)
    tmp_slices.unlink(missing_ok=True)
    n = max(1, len(candidate_scores))
    fig = Figure(figsize=(slices.shape[1] / 80, slices.shape[0] / 80 + 2.6))
    grid = fig.add_gridspec(2, n, height_ratios=[slices.shape[0] / 80, 2.2])
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(slices)
    ax.axis("off")
    ids = {v: k for k, v in class_names.items()}
    for i, (name, scores) in enumerate(candidate_scores.items()):
        ax = fig.add_subplot(grid[1, i])
        colour = class_colour(ids.get(name, i + 1))
        ax.hist(scores, bins=40, color=colour, alpha=0.8)
        if name in cuts and np.isfinite(cuts[name]):
            ax.axvline(cuts[name], color="black", linestyle="--")
            kept = int((np.asarray(scores) >= cuts[name]).sum())
            ax.set_title(
                f"{name}: {len(scores)} candidates, cut {cuts[name]:.3f} keeps {kept}", fontsize=9
            )
        ax.set_xlabel("similarity score")
    fig.tight_layout()
    return _save(fig, path, overwrite)
