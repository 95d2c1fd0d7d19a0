"""`cryosam segment`: one 3D instance mask per prompt point."""

from __future__ import annotations

from pathlib import Path

import typer

import cryosam.cli.app as cli_app
from cryosam.cli.app import app
from cryosam.cli.options import (
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
    config_option,
    method_config,
    out_option,
    progress_bar,
    read_inputs,
)

EXTENDED_HELP = (
    "The prompts are on membranes or filaments: segment the whole connected structure under "
    "each (no particle-size bound). --diameter is then optional: the thickness in Å."
)


@app.command()
def segment(
    tomogram: Path = TOMOGRAM_ARG,
    point: list[str] = POINT_OPT,
    negative: list[str] = NEGATIVE_OPT,
    prompts: Path | None = PROMPTS_OPT,
    diameter: list[str] = DIAMETER_OPT,
    out: Path = out_option("cryosam-segment"),
    voxel_size: float | None = VOXEL_SIZE_OPT,
    invert: str = INVERT_OPT,
    segmenter: str = SEGMENTER_OPT,
    model: str | None = MODEL_OPT,
    device: str = DEVICE_OPT,
    combine: str = config_option("combine", "--combine"),
    axes: str = config_option("propagation_axes", "--axes"),
    tau_iou: float = config_option("tau_iou", "--tau-iou"),
    extended: bool = typer.Option(False, "--extended", help=EXTENDED_HELP),
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Segment the particle under each prompt in 3D (cross-plane self-prompting).

    Writes OUT/masks/instances.mrc (id k = k-th positive prompt, 0 = background),
    OUT/instances.csv (centre, voxels, score per prompt), OUT/preview.png and OUT/run.json.
    """
    # the library is imported here, not at the top: `cryosam --help` stays instant
    from cryosam.app.inputs import parse_diameters
    from cryosam.app.segment import SEGMENT_OUTPUTS
    from cryosam.app.segment import segment as run_segment
    from cryosam.io.outputs import check_outputs

    backends = dict(segmenter=segmenter, model=model, device=device)
    config = method_config(
        set_, invert=invert, combine=combine, propagation_axes=axes, tau_iou=tau_iou, **backends
    )
    check_outputs(out, SEGMENT_OUTPUTS, overwrite)
    tomo, all_prompts, classes = read_inputs(
        tomogram, voxel_size, point, negative, prompts, memory_check=False
    )
    vs = tomo.voxel_size
    diam = (
        parse_diameters(diameter, sorted(classes), vs, tomo.shape)
        if diameter or not extended
        else {}
    )
    bar = progress_bar(len([p for p in all_prompts if not p.negative]), "segmenting")
    try:
        run = run_segment(
            tomo,
            all_prompts,
            diam,
            config,
            out=out,
            overwrite=overwrite,
            extended=extended,
            progress=bar.update,
            command_line=cli_app.command_line,
        )
    finally:
        bar.close()
    cli_app.warn(run.warnings)
    seconds = run.record["timings_s"]["total"]
    typer.echo(f"segmented {run.n_ok}/{len(run.rows)} prompts in {seconds:.1f} s")
    typer.echo(f"instances: {out / 'masks' / 'instances.mrc'}")
    typer.echo(f"preview: {out / 'preview.png'}")
