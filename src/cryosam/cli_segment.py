"""`cryosam segment`: one 3D instance mask per prompt point."""

from __future__ import annotations

from pathlib import Path

import typer

from cryosam.cli import app
from cryosam.cli_common import (
    DEVICE_OPT,
    DIAMETER_OPT,
    INVERT_OPT,
    MODEL_OPT,
    NEGATIVE_OPT,
    OVERWRITE_OPT,
    POINT_OPT,
    PROMPTS_OPT,
    SEGMENTER_OPT,
    SET_OPT,
    TOMOGRAM_ARG,
    VOXEL_SIZE_OPT,
)


@app.command()
def segment(
    tomogram: Path = TOMOGRAM_ARG,
    point: list[str] = POINT_OPT,
    negative: list[str] = NEGATIVE_OPT,
    prompts: Path | None = PROMPTS_OPT,
    diameter: list[str] = DIAMETER_OPT,
    out: Path = typer.Option(Path("cryosam-segment"), "--out", "-o", help="Output folder."),
    voxel_size: float | None = VOXEL_SIZE_OPT,
    invert: str = INVERT_OPT,
    segmenter: str = SEGMENTER_OPT,
    model: str | None = MODEL_OPT,
    device: str = DEVICE_OPT,
    combine: str = typer.Option("vote", "--combine", help="Merge of the 3 stacks: vote|union."),
    axes: str = typer.Option("zyx", "--axes", help="Propagation axes (z = reference code)."),
    tau_iou: float = typer.Option(0.5, "--tau-iou", help="Stop when adjacent-slice IoU < this."),
    extended: bool = typer.Option(
        False,
        "--extended",
        help="The prompts are on membranes or filaments: segment the whole connected "
        "structure under each (no particle-size bound). --diameter is then optional: the "
        "thickness in Å.",
    ),  # fmt: skip
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Segment the particle under each prompt in 3D (cross-plane self-prompting).

    Writes OUT/masks/instances.mrc (id k = k-th positive prompt, 0 = background),
    OUT/instances.csv (centre, voxels, score per prompt), OUT/preview.png and OUT/run.json.
    """
    from cryosam.cli_common import load_prompts, parse_diameters, progress_bar
    from cryosam.config import Config
    from cryosam.io.atomic import atomic_path
    from cryosam.io.outputs import output_set
    from cryosam.io.tomogram import read_tomogram, write_volume
    from cryosam.models import build_segmenter
    from cryosam.preview import write_instance_preview
    from cryosam.runinfo import Timer, check_outputs, input_record, write_run_json
    from cryosam.segmentation import segment_prompts

    timer = Timer()
    config = Config(
        segmenter=segmenter, model=model, invert=invert, combine=combine,
        propagation_axes=axes, tau_iou=tau_iou, device=device,
    ).with_overrides(set_)  # fmt: skip
    names = ["masks/instances.mrc", "instances.csv", "preview.png", "run.json"]
    check_outputs(out, names, overwrite)
    with timer.stage("read"):
        tomo = read_tomogram(tomogram, voxel_size=voxel_size)
        vs = tomo.require_voxel_size()
        all_prompts = load_prompts(point, negative, prompts, tomo.shape, vs, tomogram)
        classes = sorted({p.class_name for p in all_prompts if not p.negative})
        diam = parse_diameters(diameter, classes, vs) if diameter or not extended else {}
    if extended:
        _segment_extended(tomogram, tomo, all_prompts, diam, config, out, timer)
        return
    seg = build_segmenter(config)
    n_pos = sum(not p.negative for p in all_prompts)
    bar = progress_bar(n_pos, "segmenting")
    with timer.stage("segment"):
        outcome = segment_prompts(tomo.data, all_prompts, diam, config, seg, bar.update)
    bar.close()
    for w in outcome.warnings:
        typer.echo(f"warning: {w}", err=True)
    final = out
    with output_set(final) as out, timer.stage("write"):  # fresh staging folder
        write_volume(out / "masks" / "instances.mrc", outcome.labels, vs, tomo.origin,
                     kind="instance", overwrite=True)  # fmt: skip
        import pandas as pd

        with atomic_path(out / "instances.csv", overwrite=True) as tmp:
            pd.DataFrame(outcome.summary()).to_csv(tmp, index=False)
        half = int(max(diam.values()))
        write_instance_preview(
            out / "preview.png", tomo.data, outcome.labels,
            [p.zyx for p in outcome.prompts], half,
            title=f"{tomogram.name}: {n_pos} prompt(s), {config.segmenter} segmenter",
            overwrite=True,
        )  # fmt: skip
        write_run_json(out / "run.json", {
            "command": "segment",
            "input": input_record(tomogram, tomo, outcome.inverted),
            "config": config.to_dict(),
            "diameters_px": diam,
            "prompts": [p.__dict__ for p in all_prompts],
            "instances": outcome.summary(),
            "warnings": outcome.warnings,
            "timings_s": {**timer.seconds, "total": timer.total()},
        })  # fmt: skip
    ok = sum(not m.empty for m in outcome.instances)
    typer.echo(f"segmented {ok}/{n_pos} prompts in {timer.total():.1f} s")
    typer.echo(f"instances: {final / 'masks' / 'instances.mrc'}")
    typer.echo(f"preview: {final / 'preview.png'}")


def _segment_extended(tomogram, tomo, prompts, thickness, config, final, timer) -> None:
    """``segment --extended``: the connected membrane/filament under each prompt."""
    import numpy as np
    import pandas as pd

    from cryosam.extended import segment_extended_classes
    from cryosam.io.atomic import atomic_path
    from cryosam.io.outputs import output_set
    from cryosam.io.tomogram import write_volume
    from cryosam.preview import write_instance_preview
    from cryosam.runinfo import input_record, write_run_json

    vs = tomo.voxel_size
    with timer.stage("segment"):
        result = segment_extended_classes(tomo.data, prompts, vs, config, thickness,
                                          only_prompted=True)  # fmt: skip
    positives = [p for p in prompts if not p.negative]
    counts = np.bincount(result.instances.ravel(), minlength=len(positives) + 1)
    rows = [{"instance": k, "class": p.class_name, "prompt_z": p.zyx[0], "prompt_y": p.zyx[1],
             "prompt_x": p.zyx[2], "voxels": int(counts[k]),
             "kind": result.outcomes[p.class_name].kind,
             "status": "ok" if counts[k] else "empty"}
            for k, p in enumerate(positives, start=1)]  # fmt: skip
    with output_set(final) as out, timer.stage("write"):
        write_volume(out / "masks" / "instances.mrc", result.instances, vs, tomo.origin,
                     kind="instance", overwrite=True)  # fmt: skip
        with atomic_path(out / "instances.csv", overwrite=True) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
        write_instance_preview(
            out / "preview.png", tomo.data, result.instances, [p.zyx for p in positives],
            int(min(tomo.shape) // 2), title=f"{tomogram.name}: extended structures",
            overwrite=True,
        )  # fmt: skip
        write_run_json(out / "run.json", {
            "command": "segment", "mode": "extended",
            "input": input_record(tomogram, tomo, result.inverted),
            "config": config.to_dict(),
            "prompts": [p.__dict__ for p in prompts],
            "instances": rows,
            "classes": {n: {"kind": o.kind, "scale_angst": o.sigma_px * vs,
                            "warnings": o.warnings} for n, o in result.outcomes.items()},
            "timings_s": {**timer.seconds, "total": timer.total()},
        })  # fmt: skip
    for o in result.outcomes.values():
        for w in o.warnings:
            typer.echo(f"warning: {w}", err=True)
    ok = sum(r["status"] == "ok" for r in rows)
    typer.echo(f"segmented {ok}/{len(rows)} prompts in {timer.total():.1f} s")
    typer.echo(f"instances: {final / 'masks' / 'instances.mrc'}")
    typer.echo(f"preview: {final / 'preview.png'}")
