"""Prompts -> 3D instance masks (the ``segment`` command's engine).

Each positive prompt is propagated into one instance; instance id ``k`` in the
label map is the ``k``-th positive prompt. Negative prompts of the same class (or
of no class) steer the segmenter away from what they mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.prompts import Prompt, validate_prompts
from cryosam.method.propagate import InstanceMask, propagate_instance
from cryosam.models import build_segmenter
from cryosam.volume.prepare import asked_balance, prepare_volume


@dataclass
class SegmentOutcome:
    """Result of :func:`segment_prompts`."""

    instances: list[InstanceMask]
    prompts: list[Prompt]
    labels: np.ndarray
    inverted: bool
    warnings: list[str] = field(default_factory=list)
    balanced: bool = False  # the spectrum's low frequencies turned down before segmenting

    def summary(self) -> list[dict]:
        rows = []
        for k, (p, m) in enumerate(zip(self.prompts, self.instances), start=1):
            c = m.centroid()
            rows.append(
                {
                    "instance": k,
                    "class": p.class_name,
                    "prompt_z": p.zyx[0],
                    "prompt_y": p.zyx[1],
                    "prompt_x": p.zyx[2],
                    "z": round(float(c[0]), 2),
                    "y": round(float(c[1]), 2),
                    "x": round(float(c[2]), 2),
                    "voxels": m.voxels,
                    "score": round(m.score, 4),
                    "status": "empty" if m.empty else "ok",
                }
            )
        return rows


def label_dtype(n: int) -> type:
    return np.uint16 if n < 65535 else np.uint32


def check_diameters(volume_shape, diameters_px: dict[str, float], prompts=()) -> None:
    """Every prompted class has a diameter, and each is smaller than the volume."""
    missing = sorted({p.class_name for p in prompts if not p.negative} - set(diameters_px))
    if missing:
        raise CryosamError(f"no diameter for class {', '.join(missing)}; pass --diameter CLASS=Å")
    for name, d in diameters_px.items():
        if d >= min(volume_shape):
            raise CryosamError(
                f"the {name} diameter ({d:.0f} voxels) is not smaller than the volume "
                f"{tuple(volume_shape)}; check --diameter (Å) and the voxel size"
            )


def segment_prompts(
    volume: np.ndarray,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config | None = None,
    segmenter=None,
    progress=None,
    prepared: tuple[np.ndarray, bool] | None = None,
) -> SegmentOutcome:
    """Segment every positive prompt in 3D.

    Args:
        volume: the tomogram ``(z, y, x)`` as read (any contrast).
        prompts: positive and negative prompts (voxels).
        diameters_px: class name -> expected diameter in voxels.
        segmenter: a ready segmenter (default: ``config.segmenter`` built here).
        progress: called with the number of finished instances.
        prepared: ``(volume, inverted)`` from :func:`~cryosam.volume.prepare.prepare_volume`
            when the caller already has it.
    """
    config = config or Config()
    validate_prompts(prompts, volume.shape)
    check_diameters(volume.shape, diameters_px, prompts)
    positives, warnings = merge_duplicate_prompts(
        [p for p in prompts if not p.negative], diameters_px, config.nms_radius_factor
    )
    if prepared is None:
        pts = np.array([p.zyx for p in positives])
        d_min = min(diameters_px[p.class_name] for p in positives)
        prepared = prepare_volume(
            volume, config.invert, d_min, pts, balance=asked_balance(config.balance_spectrum)
        )
    prepared, inverted = prepared
    if segmenter is None:
        segmenter = build_segmenter(config)
    instances: list[InstanceMask | None] = [None] * len(positives)
    by_class: dict[str, list[int]] = {}
    for i, p in enumerate(positives):
        by_class.setdefault(p.class_name, []).append(i)
    for cls, idx in by_class.items():
        d = diameters_px[cls]
        segmenter.set_volume(prepared, d)
        negs = [p.zyx for p in prompts if p.negative and p.class_name in (None, cls)]
        for i in idx:
            instances[i] = propagate_instance(
                segmenter, volume.shape, positives[i].zyx, d, config, negs
            )
            if instances[i].empty:
                z, y, x = positives[i].zyx
                warnings.append(
                    f"prompt {i + 1} ({cls} at z,y,x={z:g},{y:g},{x:g}) segmented to nothing; "
                    "check that it is on a particle and the contrast (--invert)"
                )
            if progress is not None:
                progress(1)
    labels = np.zeros(volume.shape, dtype=label_dtype(len(positives)))
    for k, inst in enumerate(instances, start=1):
        inst.paste(labels, k)
    empty_classes = [c for c, idx in by_class.items() if all(instances[i].empty for i in idx)]
    if empty_classes:
        raise CryosamError(
            f"no prompt of class {', '.join(empty_classes)} segmented to anything; check that "
            "the points are on particles, --diameter and the contrast (--invert)"
        )
    balanced = bool(getattr(prepared, "balanced", False))
    return SegmentOutcome(instances, positives, labels, inverted, warnings, balanced)


def merge_duplicate_prompts(
    positives: list[Prompt], diameters_px: dict[str, float], radius_factor: float
) -> tuple[list[Prompt], list[str]]:
    """Positive prompts of one class closer than the NMS radius (``radius_factor`` diameters)
    are one particle: the first is kept, and a warning says how many were merged (without
    this, three clicks on one particle give three identical picks and two empty instances)."""
    keep = np.ones(len(positives), bool)
    for cls in dict.fromkeys(p.class_name for p in positives):
        idx = [i for i, p in enumerate(positives) if p.class_name == cls]
        zyx = np.array([positives[i].zyx for i in idx], np.float64)
        r = radius_factor * diameters_px[cls]
        near = cKDTree(zyx).query_ball_point(zyx, np.nextafter(r, 0))  # closer than r
        for k, i in enumerate(idx):  # in order: merged into an earlier kept prompt
            keep[i] = not any(keep[idx[j]] for j in near[k] if j < k)
    merged = int((~keep).sum())
    if not merged:
        return positives, []
    kept = [p for p, k in zip(positives, keep) if k]
    return kept, [
        f"{merged} prompt(s) lie within {radius_factor:g} diameters of an earlier prompt of "
        "their class and were merged into it (one particle, one pick)"
    ]
