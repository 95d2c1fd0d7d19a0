"""``copick inference cryosam ...``: cryosam as a copick CLI plugin (needs copick, which
brings click). Every argument is passed on to ``cryosam copick``."""

from __future__ import annotations

import click


@click.command(
    "cryosam",
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    },
    short_help="Training-free picking from a few prompt picks (cryosam).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def cryosam_command(args) -> None:
    """Pick every run of the project from prompt picks in it (see `cryosam copick --help`)."""
    from cryosam.cli.main import main

    raise SystemExit(main(["copick", *args]))
