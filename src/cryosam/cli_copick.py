"""`cryosam copick`: pick the runs of a copick project and write the results back."""

from __future__ import annotations

from pathlib import Path

import typer

from cryosam.cli import app
from cryosam.cli_common import DIAMETER_OPT, INVERT_OPT, OVERWRITE_OPT, SET_OPT


@app.command("copick")
def copick_command(
    config: Path = typer.Argument(..., help="The copick project's config.json."),
    prompt_object: list[str] = typer.Option(
        [],
        "--prompt-object",
        "-p",
        help="Prompts: the picks of OBJECT[:USER[:SESSION]] in the project (e.g. "
        "ribosome:alice). Repeatable, one per object.",
    ),  # fmt: skip
    diameter: list[str] = DIAMETER_OPT,
    run: list[str] = typer.Option([], "--run", help="Only these runs (default: every run)."),
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", help="Voxel spacing (Å)."),
    tomo_type: str = typer.Option("wbp", "--tomo-type", help="Tomogram type to read."),
    user_id: str = typer.Option("cryosam", "--user-id", help="User id of what is written."),
    session_id: str = typer.Option("0", "--session-id", help="Session id of what is written."),
    invert: str = INVERT_OPT,
    workers: int = typer.Option(
        0,
        "--workers",
        "-j",
        help="Local dask workers, one run each at a time (0: all runs in this process).",
    ),  # fmt: skip
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of a running dask scheduler instead."
    ),
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Pick every run of a copick project from prompts stored in it; write picks back.

    Runs with prompt picks of an object use their own; the other runs are searched with
    the query pooled from them (one clicked ribosome picks the whole project). Writes, as
    --user-id/--session-id, picks per object (Å, with scores) and a multilabel
    segmentation 'cryosam' whose values are the objects' copick labels.
    Needs `pip install 'cryosam[copick]'`.
    """
    from cryosam.batch import Runner, pick_in_two_rounds
    from cryosam.cli_common import parse_diameters, progress_bar
    from cryosam.config import Config
    from cryosam.copick_io import (
        CopickSettings,
        copick_job,
        list_runs,
        open_project,
        parse_prompt_source,
        refuse_existing,
    )
    from cryosam.errors import CryosamError

    method = Config(invert=invert).with_overrides(set_)
    if not prompt_object:
        raise CryosamError("--prompt-object OBJECT[:USER[:SESSION]] is required")
    if workers < 0:
        raise CryosamError("--workers must be 0 (this process) or more")
    sources = [parse_prompt_source(s) for s in prompt_object]
    classes = list(dict.fromkeys(s[0] for s in sources))
    diam = parse_diameters(diameter, classes, voxel_spacing)
    root = open_project(config)
    items = list_runs(root, voxel_spacing, tomo_type, sources, run, (user_id, session_id))
    if not overwrite:
        refuse_existing(root, items, user_id, session_id, classes)
    prompted = [i for i in items if i.prompts]
    if not prompted:
        raise CryosamError(
            f"no run has picks of {', '.join(prompt_object)}; check the object, user and session"
        )
    st = CopickSettings(str(config), voxel_spacing, tomo_type, diam, method, user_id, session_id,
                        overwrite)  # fmt: skip

    def failed_row(item, message):
        return {"run": item.name, "status": "failed", "picks": {}, "seconds": 0.0,
                "message": message}  # fmt: skip

    def call(item, queries, query_only):
        return copick_job, (item, st, queries, query_only)

    runner = Runner(scheduler, workers, 1)
    bar = progress_bar(len(items), "runs")
    rows = []
    try:
        rounds = pick_in_two_rounds(
            runner, items, lambda i: i.classes, lambda i: i.name, lambda row: row["run"], call,
            lambda i: failed_row(i, "no query: every prompted run failed"),
            lambda args, message: failed_row(args[0], message),
        )  # fmt: skip
        for _, row in rounds:
            if row["status"] == "queried":
                continue
            rows.append(row)
            counts = ", ".join(f"{c} {n}" for c, n in row["picks"].items())
            line = f"{row['run']}: {row['status']}" + (f" ({counts})" if counts else "")
            bar.write(line + (f": {row['message']}" if row["message"] else ""))
            bar.update(1)
    finally:
        bar.close()
        runner.close()
    failed = [r for r in rows if r["status"] == "failed"]
    typer.echo(f"{len(rows) - len(failed)} of {len(items)} runs picked; written as "
               f"{user_id}/{session_id} into {config}")  # fmt: skip
    if failed:
        raise CryosamError(
            f"{len(failed)} run(s) failed (first: {failed[0]['run']}: {failed[0]['message']})"
        )
