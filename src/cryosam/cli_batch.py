"""`cryosam batch`: many tomograms on dask.distributed."""

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
    VOXEL_SIZE_OPT,
)


@app.command()
def batch(
    inputs: list[str] = typer.Argument(
        ..., help="Tomograms: files, folders, glob patterns ('tomos/*.mrc') or a .txt list."
    ),
    point: list[str] = POINT_OPT,
    reference: str | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="The input that --point/--negative (and prompt rows naming no tomogram) are "
        "in: its file name or name without extensions. Default: the first input.",
    ),  # fmt: skip
    negative: list[str] = NEGATIVE_OPT,
    prompts: Path | None = PROMPTS_OPT,
    diameter: list[str] = DIAMETER_OPT,
    out: Path = typer.Option(Path("cryosam-batch"), "--out", "-o", help="Output folder."),
    voxel_size: float | None = VOXEL_SIZE_OPT,
    invert: str = INVERT_OPT,
    top_k: int = typer.Option(512, "--top-k", help="At least this many candidates per class."),
    tau_sim: float = typer.Option(0.5, "--tau-sim", help="Similarity kept at each level."),
    relion5: bool = typer.Option(False, "--relion5", help="Write RELION 5 STAR files."),
    segmenter: str = SEGMENTER_OPT,
    model: str | None = MODEL_OPT,
    encoder: str = typer.Option("classical", "--encoder", help="classical or dinov2."),
    encoder_model: str | None = typer.Option(None, "--encoder-model", help="DINOv2 checkpoint."),
    device: str = DEVICE_OPT,
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the feature cache."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-j",
        help="Local dask workers (processes); default: one per core, as memory allows. "
        "0 runs everything in this process.",
    ),  # fmt: skip
    threads: int = typer.Option(1, "--threads-per-worker", help="Threads per local worker."),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Address of a running dask scheduler (e.g. tcp://head:8786, from dask-jobqueue "
        "on SLURM) instead of a local cluster.",
    ),  # fmt: skip
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Pick many tomograms: one folder per input plus OUT/summary.csv, resumable.

    Takes every `pick` option. Prompt rows go to the tomogram they name (`tomogram`
    column of a CSV, rlnMicrographName/rlnTomoName in STAR); `--point` flags and rows
    naming no tomogram belong to the `--reference` input (default: the first).
    Tomograms without prompts of a class are searched with that class's query pooled
    from the prompted tomograms, so one clicked ribosome in one tomogram picks
    ribosomes in all of them.

    Rerunning the same command skips tomograms that finished (same inputs and
    settings); a failing tomogram is reported in summary.csv and the others go on.
    Exit status 2 when any tomogram failed.
    """
    from cryosam.batch import BatchSettings, collect_inputs, plan_jobs, run_batch
    from cryosam.cli_common import progress_bar
    from cryosam.config import Config
    from cryosam.errors import CryosamError

    config = Config(invert=invert, top_k=top_k, tau_sim=tau_sim, segmenter=segmenter,
                    model=model, encoder=encoder, encoder_model=encoder_model,
                    device=device).with_overrides(set_)  # fmt: skip
    if not diameter:
        raise CryosamError("--diameter is required: the approximate particle diameter in Å")
    if workers is not None and workers < 0:
        raise CryosamError("--workers must be 0 (this process) or more")
    if threads < 1:
        raise CryosamError("--threads-per-worker must be at least 1")
    if out.exists() and not out.is_dir():
        raise CryosamError(f"{out} exists and is not a folder; choose another --out")
    paths = collect_inputs(inputs)
    jobs = plan_jobs(paths, point, negative, prompts, out, voxel_size, reference)
    settings = BatchSettings(list(diameter), config, voxel_size, relion5, not no_cache, overwrite)
    n_prompted = sum(1 for j in jobs if j.classes)
    typer.echo(
        f"{len(jobs)} tomograms ({n_prompted} with prompts) -> {out}/"
        + (f" on {scheduler}" if scheduler else "")
    )
    bar = progress_bar(len(jobs), "tomograms")

    def tick(row: dict) -> None:
        bar.update(1)
        counts = ", ".join(f"{c} {n}" for c, n in row["picks"].items())
        line = f"{row['tomogram']}: {row['status']}"
        line += f" ({counts})" if counts else ""
        line += f" in {row['seconds']:g} s" if row["status"] == "done" else ""
        line += f": {row['message']}" if row["status"] == "failed" else ""
        bar.write(line)

    try:
        rows = run_batch(jobs, settings, out, scheduler=scheduler, workers=workers,
                         threads=threads, progress=tick)  # fmt: skip
    finally:
        bar.close()
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
