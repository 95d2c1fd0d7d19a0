"""`cryosam evaluate`."""

from __future__ import annotations

import typer

from cryosam.cli import _PASSTHROUGH, _not_yet, app


@app.command(context_settings=_PASSTHROUGH)
def evaluate(ctx: typer.Context) -> None:
    """Not available yet."""
    _not_yet("evaluate", "planned")
