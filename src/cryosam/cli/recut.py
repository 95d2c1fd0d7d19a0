"""`cryosam recut`: a finished pick cut again at the user's score."""

from __future__ import annotations

from pathlib import Path

import typer

import cryosam.cli.app as cli_app
from cryosam.cli.app import app


@app.command()
def recut(
    out: Path = typer.Argument(..., help="The --out folder of a finished cryosam pick."),
    min_score: list[str] = typer.Option(
        [],
        "--min-score",
        metavar="S|CLASS=S",
        help="Accept the candidates scoring at least S (every class, or CLASS=S for one; "
        "repeatable). The scores are candidates.csv's 'score' column; preview.png shows "
        "their histogram with the automatic cut.",
    ),
    tomogram: Path | None = typer.Option(
        None,
        "--tomogram",
        help="The pick's input, when it is no longer where run.json says (it must be the "
        "same file: its checksum is checked).",
    ),
) -> None:
    """Move a pick's cut without searching again: rewrites OUT's picks, STAR file, masks,
    previews and run.json, which keeps the automatic cut under 'recut'.

    Look at OUT/gallery.png (the worst accepted picks and the best rejected candidates)
    and OUT/preview.png (the score histogram): when the rejected ones look like the
    particle, lower the cut; when the worst accepted do not, raise it. Only the newly
    accepted candidates are segmented: seconds to a minute, not a new search."""
    from cryosam.app.recut import recut as run_recut

    run = run_recut(
        out, min_score, tomogram, progress=cli_app.say, command_line=cli_app.command_line
    )
    cli_app.warn(run.warnings)
    auto = run.record["recut"]["automatic"]
    for rep in run.outcome.reports:
        was = auto.get(rep.name, {}).get("value")
        note = f" (automatic cut {was:.3f})" if was is not None else ""
        typer.echo(f"{rep.name}: {rep.n_accepted} picks at cut {rep.cut:.3f}{note}")
    typer.echo(f"picks: {out / 'picks.csv'}")
    typer.echo(f"preview: {out / 'preview.png'}")
