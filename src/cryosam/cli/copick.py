"""`cryosam copick`: pick the runs of a copick project and write the results back."""

from __future__ import annotations

from pathlib import Path

import typer

from cryosam.cli.app import app
from cryosam.cli.options import (
    DIAMETER_OPT,
    INVERT_OPT,
    NO_CACHE_OPT,
    OVERWRITE_OPT,
    SET_OPT,
    SYMMETRY_OPT,
    map_settings,
    map_spec,
    method_config,
    progress_bar,
)
from cryosam.errors import CryosamError

PROMPT_OBJECT_HELP = (
    "Prompts: the picks of OBJECT[:USER[:SESSION]] in the project (e.g. ribosome:alice). "
    "Repeatable, one per object."
)
WORKERS_HELP = "Local dask workers, one run each at a time (0: all runs in this process)."
REFERENCE_MAP_HELP = (
    "MAP.mrc[:OBJECT]: a known structure (any voxel size and box) verifies the object and "
    "orients its picks in the map's frame, as `pick --reference`. Repeatable. Without "
    "--prompt-object, each run's OBJECT is found from its map alone (no picks needed)."
)


@app.command("copick")
def copick_command(
    config: Path | None = typer.Argument(None, help="The copick project's config.json."),
    config_opt: Path | None = typer.Option(
        None, "--config", "-c", help="The same, as copick's own commands take it."
    ),
    prompt_object: list[str] = typer.Option([], "--prompt-object", "-p", help=PROMPT_OBJECT_HELP),
    diameter: list[str] = DIAMETER_OPT,
    run: list[str] = typer.Option([], "--run", help="Only these runs (default: every run)."),
    voxel_spacing: float = typer.Option(10.0, "--voxel-spacing", help="Voxel spacing (Å)."),
    tomo_type: str = typer.Option("wbp", "--tomo-type", help="Tomogram type to read."),
    user_id: str = typer.Option("cryosam", "--user-id", help="User id of what is written."),
    session_id: str = typer.Option("0", "--session-id", help="Session id of what is written."),
    invert: str = INVERT_OPT,
    reference_map: list[str] = typer.Option([], "--reference-map", help=REFERENCE_MAP_HELP),
    symmetry: list[str] = SYMMETRY_OPT,
    workers: int = typer.Option(0, "--workers", "-j", help=WORKERS_HELP),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of a running dask scheduler instead."
    ),
    no_cache: bool = NO_CACHE_OPT,
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Pick every run of a copick project from prompts stored in it; write picks back.

    Runs with prompt picks of an object use their own; the other runs are searched with
    the query pooled from them (one clicked ribosome picks the whole project). With no
    --prompt-object, `--reference-map MAP.mrc:OBJECT` finds the object in every run
    from its map (the map's best matches become each run's prompts). Writes, as
    --user-id/--session-id, picks per object (Å, with scores) and a multilabel
    segmentation 'cryosam' whose values are the objects' copick labels.
    Needs `pip install 'cryosam[copick]'`.
    """
    # the library is imported here, not at the top: `cryosam --help` stays instant
    from cryosam.app.copick import plan_project, run_project

    if (config is None) == (config_opt is None):
        raise CryosamError(
            "give the copick project's config.json once: as the argument or with -c/--config"
        )
    config = config or config_opt
    if workers < 0:
        raise CryosamError("--workers must be 0 (this process) or more")
    where = dict(
        voxel_size=voxel_spacing,
        tomo_type=tomo_type,
        run_names=run,
        user_id=user_id,
        session_id=session_id,
    )
    objects = _objects(prompt_object, reference_map)
    maps, groups, _ = map_settings(reference_map, symmetry, objects)
    items, st = plan_project(
        config,
        prompt_object,
        diameter,
        method_config(set_, invert=invert),
        **where,
        overwrite=overwrite,
        use_cache=not no_cache,
        reference_maps=maps,
        symmetry=groups,
    )
    bar = progress_bar(len(items), "runs")
    try:
        rows = run_project(items, st, scheduler, workers, _ticker(bar))
    finally:
        bar.close()
    failed = [r for r in rows if r["status"] == "failed"]
    typer.echo(
        f"{len(rows) - len(failed)} of {len(items)} runs picked; written as "
        f"{user_id}/{session_id} into {config}"
    )
    if failed:
        raise CryosamError(
            f"{len(failed)} run(s) failed (first: {failed[0]['run']}: {failed[0]['message']})"
        )


def _objects(prompt_object: list[str], reference_map: list[str]) -> list[str]:
    """The objects picked: the prompted ones, else (the maps alone) those the maps name."""
    from cryosam.app.copick import parse_prompt_source

    objects = list(dict.fromkeys(parse_prompt_source(s)[0] for s in prompt_object))
    if objects:
        return objects
    objects = [map_spec(spec)[1] for spec in reference_map]
    if not all(objects):
        raise CryosamError(
            "--reference-map without --prompt-object: name the object each map is for "
            "(MAP.mrc:OBJECT)"
        )
    return objects


def _ticker(bar):
    """A progress callback that writes each finished run's line above ``bar``."""

    def tick(row: dict) -> None:
        counts = ", ".join(f"{c} {n}" for c, n in row["picks"].items())
        line = f"{row['run']}: {row['status']}" + (f" ({counts})" if counts else "")
        bar.write(line + (f": {row['message']}" if row["message"] else ""))
        bar.update(1)

    return tick
