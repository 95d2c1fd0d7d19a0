"""``cryosam evaluate``: picks (and masks) scored against the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cryosam.errors import CryosamError
from cryosam.eval.metrics import dice_iou, score_instances, score_pick_classes
from cryosam.eval.truth import Truth, load_truth
from cryosam.io.readers import read_any_picks
from cryosam.io.tomogram import read_header, read_tomogram


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    """``['A=B', ...]`` -> ``{'A': 'B'}``, with a one-line error for anything else."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CryosamError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def positive_angstrom(text: str, flag: str) -> float:
    """A positive number of Å, or a one-line error naming ``flag``."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise CryosamError(f"{flag} must be a positive number of Å, got {text!r}")
    return value


def evaluate_picks(
    picks: Path,
    truth: Path,
    diameters: list[str],
    radius_factor: float = 0.5,
    class_map: dict[str, str] | None = None,
    only: list[str] | None = None,
    beta: float = 4.0,
    voxel_size: float | None = None,
    tomogram: Path | None = None,
):
    """``(truth, rows, classes)``: one row of scores per true class (P, R, F1, F-beta, AP,
    best-threshold F1), picks matched one to one within ``radius_factor`` x diameter.
    ``tomogram``: the picked tomogram, whose header gives the shape and voxel size that
    RELION 5's centred coordinates (in the picks or the truth) need."""
    shape = None
    if tomogram is not None:
        shape, voxel_size = read_header(tomogram, voxel_size)
    gt = load_truth(truth, voxel_size, shape)
    pred = read_any_picks(picks, gt.shape, gt.voxel_size)
    mapping = class_map or {}
    diam = dict(gt.diameters_angst)
    for item in diameters:
        if "=" in item:
            k, v = parse_pairs([item], "--diameter").popitem()
            diam[k] = positive_angstrom(v, "--diameter")
        else:
            value = positive_angstrom(item, "--diameter")
            for c in set(gt.picks.class_name.tolist()) | set(pred.class_name.tolist()):
                diam[c] = value
    if gt.voxel_size is None:
        raise CryosamError("the voxel size is unknown; pass --voxel-size")
    picked = {mapping.get(c, c) for c in pred.class_name.tolist()}
    wanted = only or sorted(picked & set(gt.picks.class_name.tolist())) or list(gt.targets)
    if not wanted:
        raise CryosamError("no class of the picks is in the truth; map names with --class P=T")
    missing = [c for c in wanted if c not in diam]
    if missing:
        raise CryosamError(f"no diameter for {', '.join(missing)}; pass --diameter CLASS=Å")
    radius = {c: radius_factor * diam[c] / gt.voxel_size for c in wanted}
    scores = score_pick_classes(pred, gt.picks, radius, beta, mapping)
    return gt, [{"class": c, **s.as_row()} for c, s in scores.items()], wanted


def evaluate_masks(
    gt: Truth,
    semantic: Path | None,
    instances: Path | None,
    labels: dict[int, str],
    wanted: list[str],
    mapping: dict[str, str],
) -> list:
    """Dice/IoU per class of a semantic mask (ids named by ``labels``, else by the run.json
    beside it), and instance P/R/F1 at IoU 0.5 of an instance map."""
    if gt.labels_path is None:
        raise CryosamError("mask scores need a truth folder from 'cryosam simulate'")
    true_labels = read_tomogram(gt.labels_path).data
    rows = []
    if semantic is not None:
        ids = dict(labels)
        run_json = Path(semantic).parent.parent / "run.json"
        if not ids and run_json.exists():
            ids = {int(v): k for k, v in json.loads(run_json.read_text())["class_ids"].items()}
        pred = read_tomogram(semantic).data
        if pred.shape != true_labels.shape:
            raise CryosamError(f"{semantic}: shape {pred.shape} differs from the truth's")
        for pid, name in sorted(ids.items()):
            tname = mapping.get(name, name)
            if tname in gt.class_ids:
                d, i = dice_iou(pred == pid, true_labels == gt.class_ids[tname])
                rows.append({"class": tname, "dice": d, "iou": i})
    if instances is not None:
        pred_inst = read_tomogram(instances).data.astype(np.int64)
        true_inst = read_tomogram(gt.instances_path).data.astype(np.int64)
        target_ids = [gt.class_ids[c] for c in wanted if c in gt.class_ids]
        true_inst = np.where(np.isin(true_labels, target_ids), true_inst, 0)
        s = score_instances(pred_inst, true_inst)
        rows.append({"class": "instances(" + ",".join(wanted) + ")", **s})
    return rows
