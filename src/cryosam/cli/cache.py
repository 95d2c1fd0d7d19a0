"""`cryosam cache`: list and clear cached feature volumes."""

from __future__ import annotations

import typer

from cryosam.cli.app import app

cache_app = typer.Typer(help="Cached feature volumes: ls, clear.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def ls() -> None:
    """Every cached feature volume: key, size, encoder, when, complete."""
    from cryosam.eval.tables import format_table
    from cryosam.models.cache import FeatureCache

    cache = FeatureCache()
    rows = cache.entries()
    if rows:
        typer.echo(format_table(rows, list(rows[0])))
    typer.echo(f"{len(rows)} feature volume(s) in {cache.root}")


@cache_app.command()
def clear() -> None:
    """Remove every cached feature volume."""
    from cryosam.models.cache import FeatureCache

    cache = FeatureCache()
    typer.echo(f"removed {cache.clear()} feature volume(s) from {cache.root}")
