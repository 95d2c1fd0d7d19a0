"""`cryosam batch`: many tomograms on dask.distributed."""

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
    RELION5_OPT,
    SEGMENTER_OPT,
    SET_OPT,
    SYMMETRY_OPT,
    TAU_SIM_OPT,
    TOMO_NAME_OPT,
    TOP_K_OPT,
    VOXEL_SIZE_OPT,
    map_classes,
    map_settings,
    method_config,
    out_option,
    progress_bar,
)
from cryosam.errors import CryosamError

REFERENCE_MAP_HELP = (
    "MAP.mrc[:CLASS], as `pick --reference` (--reference names a tomogram here). With no "
    "click in any tomogram, each tomogram's particles are found from the map alone."
)
INPUTS_HELP = "Tomograms: files, folders, glob patterns ('tomos/*.mrc') or a .txt list."
REFERENCE_HELP = (
    "The input that --point/--negative (and prompt rows naming no tomogram) are in: its file "
    "name or name without extensions. Default: the first input."
)
WORKERS_HELP = (
    "Local dask workers (processes); default: one per core, as memory allows. 0 runs "
    "everything in this process."
)
SCHEDULER_HELP = (
    "Address of a running dask scheduler (e.g. tcp://head:8786, from dask-jobqueue on SLURM) "
    "instead of a local cluster."
)


@app.command()
def batch(
    inputs: list[str] = typer.Argument(..., help=INPUTS_HELP),
    point: list[str] = POINT_OPT,
    reference: str | None = typer.Option(None, "--reference", "-r", help=REFERENCE_HELP),
    negative: list[str] = NEGATIVE_OPT,
    prompts: Path | None = PROMPTS_OPT,
    diameter: list[str] = DIAMETER_OPT,
    out: Path = out_option("cryosam-batch"),
    voxel_size: float | None = VOXEL_SIZE_OPT,
    invert: str = INVERT_OPT,
    top_k: int = TOP_K_OPT,
    tau_sim: float = TAU_SIM_OPT,
    relion5: bool = RELION5_OPT,
    tomo_name: str | None = TOMO_NAME_OPT,
    reference_map: list[str] = typer.Option([], "--reference-map", help=REFERENCE_MAP_HELP),
    symmetry: list[str] = SYMMETRY_OPT,
    segmenter: str = SEGMENTER_OPT,
    model: str | None = MODEL_OPT,
    encoder: str = ENCODER_OPT,
    encoder_model: str | None = ENCODER_MODEL_OPT,
    device: str = DEVICE_OPT,
    no_cache: bool = NO_CACHE_OPT,
    workers: int | None = typer.Option(None, "--workers", "-j", help=WORKERS_HELP),
    threads: int = typer.Option(1, "--threads-per-worker", help="Threads per local worker."),
    scheduler: str | None = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Pick many tomograms: one folder per input plus OUT/summary.csv, resumable.

    Takes every `pick` option. Prompt rows go to the tomogram they name (`tomogram`
    column of a CSV, rlnMicrographName/rlnTomoName in STAR); `--point` flags and rows
    naming no tomogram belong to the `--reference` input (default: the first).
    Tomograms without prompts of a class are searched with that class's query pooled
    from the prompted tomograms, so one clicked ribosome in one tomogram picks
    ribosomes in all of them. With no click at all, `--reference-map MAP.mrc:CLASS`
    finds each tomogram's particles from the map (its best matches become the prompts).

    Rerunning the same command skips tomograms that finished (same inputs and
    settings); a failing tomogram is reported in summary.csv and the others go on.
    Every finished tomogram's picks are also merged into OUT/particles.star (with
    --relion5 also OUT/relion5_import.star for RELION 5's import) and OUT/particles.tbl.
    Exit status 2 when any tomogram failed.
    """
    # the library is imported here, not at the top: `cryosam --help` stays instant
    from cryosam.app.batch import BatchSettings, collect_inputs, plan_jobs, run_batch

    backends = dict(segmenter=segmenter, model=model, encoder=encoder, device=device)
    backends["encoder_model"] = encoder_model
    config = method_config(set_, invert=invert, top_k=top_k, tau_sim=tau_sim, **backends)
    _check_options(workers, threads, out)
    found_by = map_classes(reference_map)
    jobs = plan_jobs(
        collect_inputs(inputs), point, negative, prompts, out, voxel_size, reference, found_by
    )
    settings = BatchSettings(
        list(diameter), config, voxel_size, relion5, not no_cache, overwrite, cli_app.command_line
    )
    settings.tomo_name = tomo_name
    _map_options(settings, jobs, reference_map, symmetry, diameter)
    n_prompted = sum(1 for j in jobs if j.classes)
    where = f" on {scheduler}" if scheduler else ""
    seeded = " (no clicks: each tomogram's particles found from the maps)" if not n_prompted else ""
    typer.echo(f"{len(jobs)} tomograms ({n_prompted} with prompts{seeded}) -> {out}/{where}")
    bar = progress_bar(len(jobs), "tomograms")

    def tick(row: dict) -> None:
        bar.update(1)
        bar.write(row_line(row))

    try:
        cluster = dict(scheduler=scheduler, workers=workers, threads=threads)
        rows = run_batch(jobs, settings, out, **cluster, progress=tick)
    finally:
        bar.close()
    report(rows, out)


def _map_options(settings, jobs, specs, symmetry, diameter) -> None:
    """``--reference-map`` and ``--symmetry`` into ``settings``; ``--diameter`` required
    unless every class is seeded from its map, whose size is then said."""
    from cryosam.app.inputs import map_diameters

    classes = list(dict.fromkeys(c for j in jobs for c in j.picked_classes))
    if not diameter and any(j.classes for j in jobs):
        raise CryosamError("--diameter is required: the approximate particle diameter in Å")
    settings.reference_maps, settings.symmetry, maps = map_settings(specs, symmetry, classes)
    seeded = {c for j in jobs for c in j.map_classes}
    for cls, angst in map_diameters({c: maps[c] for c in seeded}, [], diameter).items():
        typer.echo(f"{cls}: diameter {angst:.0f} Å, from its map (--diameter sets it)", err=True)


def _check_options(workers, threads, out: Path) -> None:
    if workers is not None and workers < 0:
        raise CryosamError("--workers must be 0 (this process) or more")
    if threads < 1:
        raise CryosamError("--threads-per-worker must be at least 1")
    if out.exists() and not out.is_dir():
        raise CryosamError(f"{out} exists and is not a folder; choose another --out")


def row_line(row: dict) -> str:
    """One finished tomogram, as the progress log shows it."""
    counts = ", ".join(f"{c} {n}" for c, n in row["picks"].items())
    line = f"{row['tomogram']}: {row['status']}"
    line += f" ({counts})" if counts else ""
    line += f" in {row['seconds']:g} s" if row["status"] == "done" else ""
    line += f": {row['message']}" if row["status"] == "failed" else ""
    return line


def report(rows: list[dict], out: Path) -> None:
    """The closing lines; exit status 2 when any tomogram failed."""

    failed = [r for r in rows if r["status"] == "failed"]
    n_done = sum(r["status"] == "done" for r in rows)
    n_skipped = sum(r["status"] == "skipped" for r in rows)
    typer.echo(f"{n_done} picked, {n_skipped} skipped (finished earlier), {len(failed)} failed")
    typer.echo(f"summary: {out / 'summary.csv'}")
    if failed:
        raise CryosamError(
            f"{len(failed)} of {len(rows)} tomograms failed (first: {failed[0]['tomogram']}: "
            f"{failed[0]['message']}); see {out / 'summary.csv'}"
        )
