"""The Typer app every command module registers on (it imports no command)."""

from __future__ import annotations

import time

import typer

from cryosam import __version__

app = typer.Typer(
    name="cryosam",
    help=(
        "Training-free segmentation and particle picking in cryo-ET tomograms from point "
        "prompts (CryoSAM). Coordinates are 0-based voxel indices z,y,x of the input; "
        "sizes are in Å."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_started = time.perf_counter()
command_line: str | None = None
"""This run's command line, as ``run.json`` records it (set by :func:`cryosam.cli.main.main`)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cryosam {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks instead of one-line errors."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """cryosam: click one particle, get every particle like it."""


def tidy_help(command):
    """``--help`` without Python type names: flags show no value placeholder (typer would
    print ``<bool>``) and repeatable options without a metavar show their name with '...'
    (not ``<list[str]>``). ``command`` is the click command; returned as well."""
    for cmd in getattr(command, "commands", {}).values():
        tidy_help(cmd)
    make_help = getattr(command, "get_help_option", None)
    if make_help is not None:  # click makes --help when it prints the help

        def help_option(ctx, make_help=make_help):
            option = make_help(ctx)
            if option is not None and option.metavar is None:
                option.metavar = ""
            return option

        command.get_help_option = help_option
    for param in getattr(command, "params", []):
        # duck-typed: typer may bring its own copy of click's Option class
        if not hasattr(param, "is_flag") or param.metavar is not None:
            continue
        if param.is_flag:
            param.metavar = ""
        elif param.multiple:
            param.metavar = f"{param.name.upper().replace('_', '-')} ..."
    return command


_last_said: list[float] = []


def say(stage: str) -> None:
    """A library progress line on stderr, with the seconds since the previous one (or since
    the command started): a user sees which stage takes the time."""
    now = time.perf_counter()
    since = now - (_last_said[-1] if _last_said else _started)
    _last_said[:] = [now]
    typer.echo(f"  {stage} ({since:.1f} s)", err=True)


MANY_PROMPTS = 300
"""More positive prompts than this are warned about before the work starts."""


def warn_many_prompts(prompts) -> None:
    """Say at once (not after an hour) that very many prompts take long: each is segmented
    in 3D before the search starts."""
    n = sum(not p.negative for p in prompts)
    if n > MANY_PROMPTS:
        warn(
            [
                f"{n} prompts: each is segmented in 3D before the search (about a second each "
                "on 2 cores); tens of prompts per class are plenty, a sample of them would do"
            ]
        )


def warn(messages) -> None:
    """Warnings, one per line on stderr."""
    for w in messages:
        typer.echo(f"warning: {w}", err=True)
