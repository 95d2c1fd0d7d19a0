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
    from cryosam.runinfo import Timer, check_outputs, sha256_file, write_run_json
    from cryosam.segmentation import segment_prompts

    timer = Timer()
    config = Config(
        segmenter=segmenter, model=model, invert=invert, combine=combine,
        propagation_axes=axes, tau_iou=tau_iou, device=device,
    )  # fmt: skip
    names = ["masks/instances.mrc", "instances.csv", "preview.png", "run.json"]
    check_outputs(out, names, overwrite)
    with timer.stage("read"):
        tomo = read_tomogram(tomogram, voxel_size=voxel_size)
        vs = tomo.require_voxel_size()
        all_prompts = load_prompts(point, negative, prompts, tomo.shape, vs, tomogram)
        classes = sorted({p.class_name for p in all_prompts if not p.negative})
        diam = parse_diameters(diameter, classes, vs)
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
            "input": {"path": str(tomogram), "sha256": sha256_file(tomogram),
                      "shape": list(tomo.shape), "voxel_size": vs,
                      "protein_dark_inverted": outcome.inverted},
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
