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
from matplotlib.patches import Circle, Patch
from scipy import ndimage

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


SLAB_NM = 5.0
"""Previews show slabs this thick (nm), as a person views a tomogram: single slices are noise."""
LOWPASS_ANGST = 20.0
"""... low-passed by a Gaussian of this sigma (Å)."""


def slab_view(volume, axis: int, index: int, half: int, sigma: float) -> np.ndarray:
    """The mean of the slices ``index - half .. index + half`` along ``axis`` of the volume
    low-passed by a Gaussian of ``sigma`` voxels (only the slab and its margin are read)."""
    n = volume.shape[axis]
    margin = int(np.ceil(3 * sigma))
    lo, hi = max(0, index - half - margin), min(n, index + half + margin + 1)
    key = [slice(None)] * 3
    key[axis] = slice(lo, hi)
    block = np.asarray(volume[tuple(key)], dtype=np.float32)
    if sigma > 0:
        block = ndimage.gaussian_filter(block, sigma)
    a, b = max(0, index - half) - lo, min(n, index + half + 1) - lo
    return np.take(block, np.arange(a, b), axis=axis).mean(axis=axis)


def slab_sizes(voxel_size: float | None) -> tuple[int, float]:
    """``(half thickness, low-pass sigma)`` in voxels for :data:`SLAB_NM` and
    :data:`LOWPASS_ANGST` (2 and 1.5 voxels when the voxel size is unknown)."""
    if not voxel_size:
        return 2, 1.5
    return max(1, int(round(5 * SLAB_NM / voxel_size))), max(0.7, LOWPASS_ANGST / voxel_size)


def write_preview(
    path: str | os.PathLike,
    volume: np.ndarray,
    labels: np.ndarray | None = None,
    class_names: dict[int, str] | None = None,
    points_zyx: np.ndarray | None = None,
    point_classes: list[int] | None = None,
    centre=None,
    title: str = "",
    overwrite: bool = False,
    voxel_size: float | None = None,
    radius_px: float | None = None,
) -> Path:
    """Write a PNG of the z, y and x slabs through ``centre`` (default: the middle).

    Each view is a low-passed slab a few nm thick (:func:`slab_view`); the bottom row adds
    the class labels of the central slice and the points within the slab as circles.

    Args:
        volume: ``(z, y, x)`` tomogram.
        labels: optional ``(z, y, x)`` class ids (0 = background), drawn in class colours.
        class_names: id -> name for the legend.
        points_zyx: optional ``(N, 3)`` picks, drawn in the colour of ``point_classes`` (ids)
            with ``radius_px`` (default 6 voxels).
        voxel_size: Å per voxel (sets the slab's thickness and low-pass).
    """
    shape = np.asarray(volume.shape)
    c = (shape // 2) if centre is None else np.clip(np.round(centre).astype(int), 0, shape - 1)
    half, sigma = slab_sizes(voxel_size)
    nm = f"{(2 * half + 1) * voxel_size / 10:.0f} nm slab" if voxel_size else "slab"
    views = [
        (0, (1, 2), f"xy {nm} at z={c[0]}"),
        (1, (0, 2), f"xz {nm} at y={c[1]}"),
        (2, (0, 1), f"yz {nm} at x={c[2]}"),
    ]
    # equal panel heights: each panel's width ratio is its aspect (width / height)
    widths = [shape[2] / shape[1], shape[2] / shape[0], shape[1] / shape[0]]
    fig = Figure(figsize=(4.5 * sum(widths) + 1, 10))
    axes = fig.subplots(2, 3, gridspec_kw={"width_ratios": widths}, squeeze=False)
    for col, (axis, (ra, ca), label) in enumerate(views):
        img = slab_view(volume, axis, int(c[axis]), half, sigma)
        lo, hi = _window(img)
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(label if row == 0 else label + " + overlay", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        if labels is not None:
            _draw_labels(axes[1, col], np.take(labels, int(c[axis]), axis=axis))
        if points_zyx is not None and len(points_zyx):
            pts = np.asarray(points_zyx, dtype=float).reshape(-1, 3)
            near = np.abs(pts[:, axis] - c[axis]) <= max(half, 2)
            ids = np.asarray(point_classes)[near] if point_classes is not None else None
            _draw_points(axes[1, col], pts[near][:, [ra, ca]], ids, radius_px or 6.0)
    if class_names:
        handles = [Patch(color=class_colour(i), label=n) for i, n in sorted(class_names.items())]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97), h_pad=2.5)
    return _save(fig, path, overwrite)


def _draw_labels(ax, lab: np.ndarray) -> None:
    n_ids = int(lab.max()) if lab.size else 0
    if n_ids < 1:
        return
    cmap = ListedColormap(["none"] + [class_colour(i) for i in range(1, n_ids + 1)])
    ax.imshow(
        np.ma.masked_equal(lab, 0),
        cmap=cmap,
        vmin=0,
        vmax=n_ids,
        alpha=0.35,
        interpolation="nearest",
    )


def _draw_points(ax, rc: np.ndarray, ids, radius: float) -> None:
    """Circles of ``radius`` (data units) at rows/columns ``rc`` in class colours."""
    for k, (r, c) in enumerate(rc):
        colour = class_colour(int(ids[k])) if ids is not None else "yellow"
        ax.add_patch(Circle((c, r), radius, fill=False, edgecolor=colour, linewidth=1.0))


def write_instance_preview(
    path: str | os.PathLike,
    volume: np.ndarray,
    labels: np.ndarray,
    points_zyx: np.ndarray,
    half_width: int,
    title: str = "",
    max_rows: int = 6,
    overwrite: bool = False,
    voxel_size: float | None = None,
) -> Path:
    """One row per prompt (at most ``max_rows``): z, y and x slabs through the prompt (low-
    passed, a few voxels thick), cropped to ``half_width`` voxels around it, with the
    instance's outline and the point."""
    pts = np.asarray(points_zyx, dtype=float).reshape(-1, 3)[:max_rows]
    rows = max(1, len(pts))
    fig = Figure(figsize=(10, 3.4 * rows))
    axes = fig.subplots(rows, 3, squeeze=False)
    shape = np.asarray(volume.shape)
    half, sigma = slab_sizes(voxel_size)
    half = max(1, min(half, half_width // 6))  # thinner than the particle
    for r, p in enumerate(pts):
        c = np.clip(np.round(p).astype(int), 0, shape - 1)
        lo = np.maximum(c - half_width, 0)
        hi = np.minimum(c + half_width + 1, shape)
        crop = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub, lab = volume[crop], labels[crop] == (r + 1)
        local = c - lo
        for col, axis in enumerate((0, 1, 2)):
            img = slab_view(sub, axis, int(local[axis]), half, sigma)
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
    voxel_size: float | None = None,
    radius_px: float | None = None,
) -> Path:
    """Orthogonal slabs with masks and picks, plus a score histogram per class with its cut."""
    tmp_slices = Path(path).with_name(f".{Path(path).stem}-slices.png")
    write_preview(
        tmp_slices,
        volume,
        semantic,
        class_names,
        picks_zyx,
        pick_class_ids,
        centre=centre,
        title=title,
        overwrite=True,
        voxel_size=voxel_size,
        radius_px=radius_px,
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
            above = int((np.asarray(scores) >= cuts[name]).sum())
            picked = int((np.asarray(pick_class_ids) == ids.get(name, -1)).sum())
            ax.set_title(
                f"{name}: {len(scores)} scored candidates, {above} at or above the cut "
                f"{cuts[name]:.3f}, {picked} picks (after the size check, with the prompts)",
                fontsize=9,
            )
        ax.set_xlabel("score (candidates.csv)")
    fig.tight_layout()
    return _save(fig, path, overwrite)


def write_gallery(
    path: str | os.PathLike,
    volume: np.ndarray,
    rows: list[tuple[str, np.ndarray, np.ndarray]],
    diameter_px: float,
    title: str = "",
    voxel_size: float | None = None,
    per_row: int = 10,
    overwrite: bool = False,
) -> Path:
    """Crops of picks, one row per group (e.g. best accepted, worst accepted, best rejected):
    ``rows`` are ``(label, zyx, scores)``. Each crop is an xy slab through the particle's
    centre, a third of a diameter thick, low-passed to a tenth of a diameter (at least the
    preview's low-pass: a ribosome's crop at 10 Å, low-passed to 2 nm, was noise to the eye;
    at 2.5 nm the particle shows), two diameters wide with the diameter drawn as a circle,
    all in one grey window so their contrast can be compared."""
    half_w = int(np.ceil(diameter_px))
    half_t = max(1, int(round(diameter_px / 6)))
    sigma = max(slab_sizes(voxel_size)[1], diameter_px / 10)
    crops = [
        [_crop_slab(volume, p, half_w, half_t, sigma) for p in zyx[:per_row]] for _, zyx, _ in rows
    ]
    values = np.concatenate([c.ravel() for row in crops for c in row] or [np.zeros(1)])
    lo, hi = np.percentile(values, [1, 99])
    fig = Figure(figsize=(1.3 * per_row, 1.6 * max(1, len(rows)) + 0.6))
    axes = fig.subplots(max(1, len(rows)), per_row, squeeze=False)
    for r, ((label, _, scores), row) in enumerate(zip(rows, crops)):
        for k in range(per_row):
            ax = axes[r, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(row):
                ax.imshow(row[k], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
                ring = Circle((half_w, half_w), diameter_px / 2, fill=False, lw=0.6, color="r")
                ax.add_patch(ring)
                ax.set_title(f"{scores[k]:.3f}", fontsize=8)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, overwrite)


def _crop_slab(volume, zyx, half_w: int, half_t: int, sigma: float) -> np.ndarray:
    """An xy slab (``2 half_t + 1`` thick, low-passed) of ``2 half_w + 1`` voxels square around
    ``zyx`` (zero-padded at the volume's edge; the slab-shaped twin of
    ``volume.binning.extract_boxes``, which io, a lower layer, cannot import)."""
    c = np.round(np.asarray(zyx, float)).astype(int)
    m = int(np.ceil(3 * sigma))
    size = (2 * (half_t + m) + 1, 2 * (half_w + m) + 1, 2 * (half_w + m) + 1)
    lo = c - np.asarray(size) // 2
    box = np.zeros(size, np.float32)
    src = tuple(slice(max(a, 0), min(a + n, s)) for a, n, s in zip(lo, size, volume.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
    if all(s.stop > s.start for s in src):
        box[dst] = np.asarray(volume[src], np.float32)
    img = ndimage.gaussian_filter(box, sigma)[m : m + 2 * half_t + 1].mean(0)
    return img[m : m + 2 * half_w + 1, m : m + 2 * half_w + 1]


def write_average_figure(
    path: str | os.PathLike,
    rows: list[tuple[str, int, np.ndarray, np.ndarray | None]],
    overwrite: bool = False,
) -> Path:
    """Per class, the central xy, xz and yz sections (a slab a tenth of the box thick) of the
    aligned average of its picks beside the same sections of its reference (the one-click
    reference, refined by its best matches, at its own binned sampling, drawn over the same
    extent). ``rows`` are ``(class, n picks, average, reference or None)``; bright protein."""
    fig = Figure(figsize=(9.0, 1.8 * max(1, len(rows)) + 0.5))
    axes = fig.subplots(max(1, len(rows)), 6, squeeze=False)
    names = ("xy", "xz", "yz")
    for r, (cls, n, avg, ref) in enumerate(rows):
        for k, (vol, what) in enumerate(((avg, "average"), (ref, "reference"))):
            for a in range(3):
                ax = axes[r, 3 * k + a]
                ax.set_xticks([])
                ax.set_yticks([])
                if vol is None:
                    ax.axis("off")
                    continue
                img = _central_section(vol, a)
                lo, hi = _window(img)
                ax.imshow(
                    img,
                    cmap="gray",
                    vmin=lo,
                    vmax=hi,
                    extent=(0, 1, 1, 0),
                    interpolation="bilinear",
                )
                ax.set_title(f"{what} {names[a]}", fontsize=8)
        axes[r, 0].set_ylabel(f"{cls}\n{n} picks", fontsize=9)
    fig.suptitle(
        "aligned average of the picks vs the class reference (protein bright)", fontsize=10
    )
    fig.tight_layout()
    return _save(fig, path, overwrite)


def _central_section(vol: np.ndarray, axis: int) -> np.ndarray:
    """Mean of the central slab (a tenth of the box, at least one voxel) across ``axis``
    (0: an xy section, 1: xz, 2: yz)."""
    n = vol.shape[axis]
    t = max(1, n // 10)
    lo = (n - t) // 2
    return np.take(vol, range(lo, lo + t), axis=axis).mean(axis)
