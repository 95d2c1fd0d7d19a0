"""`cryosam evaluate`: score picks (and masks) against ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryosam.cli.app import app


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
    tomogram: Path | None = typer.Option(
        None,
        "--tomogram",
        help="The picked tomogram: its header gives the shape and voxel size that RELION 5 "
        "centred coordinates need.",
    ),
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
    # the library is imported here, not at the top: `cryosam --help` stays instant
    from cryosam.app.evaluate import evaluate_masks, evaluate_picks, parse_pairs
    from cryosam.eval.tables import format_table
    from cryosam.io.atomic import write_text_atomic

    mapping = parse_pairs(class_map, "--class")
    gt, rows, wanted = evaluate_picks(
        picks, truth, diameter, radius_factor, mapping, classes, beta, voxel_size, tomogram
    )
    cols = [
        "class",
        "n_pred",
        "n_true",
        "tp",
        "fp",
        "fn",
        "precision",
        "recall",
        "f1",
        f"f{beta:g}",
        "ap",
        "best_f1",
        "mean_distance_px",
    ]
    typer.echo(format_table(rows, cols))
    result: dict = {"picks": rows}
    if semantic is not None or instances is not None:
        ids = {int(k): v for k, v in parse_pairs(label, "--label").items()}
        result["masks"] = evaluate_masks(gt, semantic, instances, ids, wanted, mapping)
        for kind in ("dice", "f1"):
            shown = [r for r in result["masks"] if kind in r]
            if shown:
                typer.echo(format_table(shown, list(shown[0])))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=1), overwrite=True)
