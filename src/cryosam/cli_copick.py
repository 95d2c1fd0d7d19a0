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
    from cryosam.cli_common import parse_diameters, progress_bar
    from cryosam.config import Config
    from cryosam.copick_io import (
        load_runs,
        open_project,
        parse_prompt_source,
        refuse_existing,
        write_results,
    )
    from cryosam.errors import CryosamError
    from cryosam.pipeline import ClassQuery, pick_particles, prompt_queries

    method = Config(invert=invert).with_overrides(set_)
    if not prompt_object:
        raise CryosamError("--prompt-object OBJECT[:USER[:SESSION]] is required")
    sources = [parse_prompt_source(s) for s in prompt_object]
    classes = list(dict.fromkeys(s[0] for s in sources))
    diam = parse_diameters(diameter, classes, voxel_spacing)
    root = open_project(config)
    items = load_runs(root, voxel_spacing, tomo_type, sources, run, (user_id, session_id))
    if not overwrite:
        refuse_existing(items, user_id, session_id, classes)
    prompted = [i for i in items if i.prompts]
    if not prompted:
        raise CryosamError(
            f"no run has picks of {', '.join(prompt_object)}; check the object, user and session"
        )
    bar = progress_bar(len(items) + len(prompted), "runs")
    found: dict[str, list] = {c: [] for c in classes}
    for item in prompted:
        own = {p.class_name for p in item.prompts}
        qs = prompt_queries(item.volume, item.prompts, {c: diam[c] for c in own}, method)
        for c, q in qs.items():
            found[c].append(q)
        bar.update(1)
    pooled = {c: ClassQuery.pool(qs) for c, qs in found.items() if qs}
    for item in items:
        out = pick_particles(item.volume, item.prompts, diam, method,
                             queries={c: q for c, q in pooled.items()})  # fmt: skip
        write_results(item, out.picks, out.semantic, out.class_ids, user_id, session_id,
                      overwrite)  # fmt: skip
        counts = ", ".join(f"{r.name} {r.n_accepted}" for r in out.reports)
        bar.write(f"{item.name}: {counts} ({len(item.prompts)} prompts)")
        bar.update(1)
    bar.close()
    typer.echo(f"{len(items)} runs picked; written as {user_id}/{session_id} into {config}")
