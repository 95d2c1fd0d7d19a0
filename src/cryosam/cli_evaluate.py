"""`cryosam evaluate`: score picks (and masks) against ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryosam.cli import app
from cryosam.errors import CryosamError


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CryosamError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain aligned text table (also valid Markdown)."""

    def fmt(v) -> str:
        if isinstance(v, float):
            return "nan" if v != v else f"{v:.3f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


@app.command()
def evaluate(
    picks: Path = typer.Argument(
        ..., help="Picks (CSV, STAR, copick JSON) or a pick output folder."
    ),
    truth: Path = typer.Option(
        ..., "--truth", help="A 'cryosam simulate' folder, or a true picks file (+ --diameter)."
    ),
    diameter: list[str] = typer.Option(
        [], "--diameter", help="CLASS=Å (or Å for all classes): sets the matching radius."
    ),
    radius_factor: float = typer.Option(
        0.5, "--radius-factor", help="Matching radius as a fraction of the diameter."
    ),
    class_map: list[str] = typer.Option(
        [], "--class", help="PRED=TRUE: score predicted class PRED against true class TRUE."
    ),
    classes: list[str] = typer.Option(
        [], "--only", help="Score only these true classes (default: those picked, or targets)."
    ),
    beta: float = typer.Option(4.0, "--beta", help="Beta of the F-beta score (CZII uses 4)."),
    voxel_size: float | None = typer.Option(None, "--voxel-size", help="Å per voxel."),
    semantic: Path | None = typer.Option(
        None, "--semantic", help="Predicted class-id mask (MRC) to score Dice/IoU."
    ),
    instances: Path | None = typer.Option(
        None, "--instances", help="Predicted instance mask (MRC) for instance P/R/F1."
    ),
    label: list[str] = typer.Option(
        [], "--label", help="ID=CLASS naming the ids of --semantic (default: run.json beside it)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the scores as JSON."),
) -> None:
    """Score picks against the truth: precision, recall, F1, F-beta, AP and best-threshold F1.

    Picks and true particles are matched one to one (Hungarian) within radius =
    factor x diameter, per class. With --semantic/--instances, masks are scored too.
    """
    from cryosam.evaluate import score_pick_classes
    from cryosam.io.atomic import write_text_atomic
    from cryosam.io.readers import read_any_picks
    from cryosam.truth import load_truth

    gt = load_truth(truth, voxel_size)
    pred = read_any_picks(picks, gt.shape, gt.voxel_size)
    mapping = parse_pairs(class_map, "--class")
    diam = dict(gt.diameters_angst)
    for item in diameter:
        if "=" in item:
            k, v = parse_pairs([item], "--diameter").popitem()
            diam[k] = _positive(v, "--diameter")
        else:
            value = _positive(item, "--diameter")
            for c in set(gt.picks.class_name.tolist()) | set(pred.class_name.tolist()):
                diam[c] = value
    if gt.voxel_size is None:
        raise CryosamError("the voxel size is unknown; pass --voxel-size")
    picked = {mapping.get(c, c) for c in pred.class_name.tolist()}
    wanted = classes or sorted(picked & set(gt.picks.class_name.tolist())) or list(gt.targets)
    if not wanted:
        raise CryosamError("no class of the picks is in the truth; map names with --class P=T")
    missing = [c for c in wanted if c not in diam]
    if missing:
        raise CryosamError(f"no diameter for {', '.join(missing)}; pass --diameter CLASS=Å")
    radius = {c: radius_factor * diam[c] / gt.voxel_size for c in wanted}
    scores = score_pick_classes(pred, gt.picks, radius, beta, mapping)
    rows = [{"class": c, **s.as_row()} for c, s in scores.items()]
    cols = ["class", "n_pred", "n_true", "tp", "fp", "fn", "precision", "recall", "f1",
            f"f{beta:g}", "ap", "best_f1", "mean_distance_px"]  # fmt: skip
    typer.echo(format_table(rows, cols))
    result: dict = {"picks": rows}
    if semantic is not None or instances is not None:
        result["masks"] = _score_masks(gt, semantic, instances, label, wanted, mapping)
        for kind in ("dice", "f1"):
            rows = [r for r in result["masks"] if kind in r]
            if rows:
                typer.echo(format_table(rows, list(rows[0])))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=1), overwrite=True)


def _positive(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise CryosamError(f"{flag} must be a positive number of Å, got {text!r}")
    return value


def _score_masks(gt, semantic, instances, label, wanted, mapping) -> list[dict]:
    import numpy as np

    from cryosam.evaluate import dice_iou, score_instances
    from cryosam.io.tomogram import read_tomogram

    if gt.labels_path is None:
        raise CryosamError("mask scores need a truth folder from 'cryosam simulate'")
    true_labels = read_tomogram(gt.labels_path).data
    rows = []
    if semantic is not None:
        ids = {int(k): v for k, v in parse_pairs(label, "--label").items()}
        if not ids:
            run_json = Path(semantic).parent.parent / "run.json"
            if run_json.exists():
                ids = {int(v): k for k, v in json.loads(run_json.read_text())["class_ids"].items()}
        pred = read_tomogram(semantic).data
        if pred.shape != true_labels.shape:
            raise CryosamError(f"{semantic}: shape {pred.shape} differs from the truth's")
        for pid, name in sorted(ids.items()):
            tname = mapping.get(name, name)
            if tname not in gt.class_ids:
                continue
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
