"""`cryosam pick`: every particle like the prompted ones (or, --extended, every membrane)."""

from __future__ import annotations

from pathlib import Path

import typer

import cryosam.cli.app as cli_app
from cryosam.cli.app import app
from cryosam.cli.options import (
    DEVICE_OPT,
    DIAMETER_OPT,
    ENCODER_MODEL_OPT,
    ENCODER_OPT,
    INVERT_OPT,
    MODEL_OPT,
    NEGATIVE_OPT,
    NO_CACHE_OPT,
    OVERWRITE_OPT,
    POINT_OPT,
    PROMPTS_OPT,
    REFERENCE_MAP_OPT,
    RELION5_OPT,
    SEGMENTER_OPT,
    SET_OPT,
    SYMMETRY_OPT,
    TAU_SIM_OPT,
    TOMO_NAME_OPT,
    TOMOGRAM_ARG,
    TOP_K_OPT,
    VOXEL_SIZE_OPT,
    method_config,
    out_option,
    parse_symmetry,
    read_inputs,
    read_reference_maps,
)

EXTENDED_HELP = (
    "The prompted classes are membranes or filaments: find every such structure as a mask "
    "(masks/semantic.mrc, components in masks/instances.mrc and components.csv), no particle "
    "picks. --diameter is then optional: the thickness in Å."
)


@app.command()
def pick(
    tomogram: Path = TOMOGRAM_ARG,
    point: list[str] = POINT_OPT,
    negative: list[str] = NEGATIVE_OPT,
    prompts: Path | None = PROMPTS_OPT,
    diameter: list[str] = DIAMETER_OPT,
    out: Path = out_option("cryosam-pick"),
    voxel_size: float | None = VOXEL_SIZE_OPT,
    invert: str = INVERT_OPT,
    top_k: int = TOP_K_OPT,
    tau_sim: float = TAU_SIM_OPT,
    relion5: bool = RELION5_OPT,
    tomo_name: str | None = TOMO_NAME_OPT,
    reference: list[str] = REFERENCE_MAP_OPT,
    symmetry: list[str] = SYMMETRY_OPT,
    segmenter: str = SEGMENTER_OPT,
    model: str | None = MODEL_OPT,
    encoder: str = ENCODER_OPT,
    encoder_model: str | None = ENCODER_MODEL_OPT,
    device: str = DEVICE_OPT,
    naive: bool = typer.Option(False, "--naive", help="Brute-force matching (comparison only)."),
    extended: bool = typer.Option(False, "--extended", help=EXTENDED_HELP),
    no_cache: bool = NO_CACHE_OPT,
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Find every particle like the prompted ones: picks, masks and a preview.

    Click one particle (--point z,y,x) and give its approximate --diameter in Å. Writes
    OUT/picks.csv (accepted picks: z,y,x,score,class,instance and their orientation
    rot,tilt,psi: RELION's angles relative to OUT/references/CLASS.mrc), OUT/candidates.csv
    (every scored candidate and its status), OUT/picks.star (RELION 3, or 5 with --relion5,
    then also OUT/relion5_import.star for RELION 5's Import -> Coordinates), OUT/picks.tbl
    (Dynamo), OUT/masks/semantic.mrc, OUT/masks/instances.mrc, OUT/preview.png,
    OUT/gallery.png and OUT/run.json (config, cut, timings).
    """
    # the library is imported here, not at the top: `cryosam --help` stays instant
    from cryosam.app.extended import EXTENDED_OUTPUTS
    from cryosam.app.pick import PICK_OUTPUTS
    from cryosam.app.pick import pick as run_pick
    from cryosam.io.outputs import check_outputs

    backends = dict(
        segmenter=segmenter,
        model=model,
        encoder=encoder,
        encoder_model=encoder_model,
        device=device,
    )
    config = method_config(set_, invert=invert, top_k=top_k, tau_sim=tau_sim, **backends)
    check_outputs(out, EXTENDED_OUTPUTS if extended else PICK_OUTPUTS, overwrite)
    tomo, all_prompts, classes = read_inputs(
        tomogram, voxel_size, point, negative, prompts, maps=[] if extended else reference
    )
    if extended:
        _pick_extended(tomo, all_prompts, classes, diameter, config, out, overwrite, relion5)
        return
    maps = read_reference_maps(reference, classes)
    options = dict(out=out, overwrite=overwrite, relion5=relion5, naive=naive, cache=not no_cache)
    options.update(tomo_name=tomo_name, reference_maps=maps)
    options["symmetry"] = parse_symmetry(symmetry, classes)
    diam = _diameters(maps, all_prompts, diameter, classes, tomo)
    run = run_pick(
        tomo,
        all_prompts,
        diam,
        config,
        **options,
        progress=cli_app.say,
        command_line=cli_app.command_line,
    )
    cli_app.warn(run.warnings)
    for rep in run.outcome.reports:
        typer.echo(
            f"{rep.name}: {rep.n_accepted} picks ({rep.n_prompts} prompted, "
            f"{rep.n_candidates} candidates, cut {rep.cut:.3f} by {rep.cut_method})"
        )
    typer.echo(f"picks: {out / 'picks.csv'}")
    typer.echo(f"preview: {out / 'preview.png'}")


def _diameters(maps, prompts, diameter, classes, tomo) -> dict[str, float]:
    """Each class's diameter in voxels: ``--diameter``, else (a class its map prompts) the
    map's size, said on the terminal."""
    from cryosam.app.inputs import map_diameters, parse_diameters

    sizes = map_diameters(maps, prompts, diameter)
    for cls, angst in sizes.items():
        typer.echo(f"{cls}: diameter {angst:.0f} Å, from its map (--diameter sets it)", err=True)
    return parse_diameters(diameter, classes, tomo.voxel_size, tomo.shape, sizes)


def _pick_extended(tomo, prompts, classes, diameter, config, out, overwrite, relion5) -> None:
    """``pick --extended``: every membrane or filament like the prompted ones."""
    from cryosam.app.extended import pick_extended
    from cryosam.app.inputs import parse_diameters

    vs = tomo.voxel_size
    thickness = parse_diameters(diameter, classes, vs) if diameter else {}
    result = pick_extended(
        tomo,
        prompts,
        thickness,
        config,
        out=out,
        overwrite=overwrite,
        relion5=relion5,
        progress=cli_app.say,
        command_line=cli_app.command_line,
    )
    for name, o in result.outcomes.items():
        typer.echo(
            f"{name}: {len(o.table)} {o.kind} component(s), "
            f"{int(o.mask.sum())} voxels (scale {o.sigma_px * vs:.0f} Å)"
        )
        cli_app.warn(o.warnings)
    typer.echo(f"masks: {out / 'masks' / 'semantic.mrc'}")
    typer.echo(f"preview: {out / 'preview.png'}")
