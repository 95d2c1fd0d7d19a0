"""The ``cryosam`` command line.

Heavy imports (scipy, pandas, torch, dask) happen inside the commands so that
``cryosam --help`` is instant. User errors (:class:`~cryosam.errors.CryosamError`)
print one line on stderr and exit with status 2; ``--debug`` (anywhere on the
command line) shows the traceback instead.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer

from cryosam.errors import CryosamError

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

_DEBUG = False


def _version(value: bool) -> None:
    if value:
        from cryosam import __version__

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


VoxelSizeOpt = typer.Option(
    None,
    "--voxel-size",
    help="Voxel size in Å; overrides the MRC header (needed when the header says 0 or 1 Å).",
)


@app.command()
def info(
    tomogram: Path = typer.Argument(..., help="Tomogram (.mrc, .rec, .map, .st; .gz/.bz2 too)."),
    voxel_size: float | None = VoxelSizeOpt,
    diameter: float | None = typer.Option(
        None, "--diameter", help="Particle diameter in Å, to show it in voxels."
    ),
) -> None:
    """Print shape, data type, voxel size, statistics, contrast and the memory a run needs."""
    from cryosam.contrast import protein_is_dark
    from cryosam.io.coords import diameter_to_voxels
    from cryosam.io.tomogram import read_tomogram, volume_stats
    from cryosam.resources import estimate_run_bytes, human_bytes

    tomo = read_tomogram(tomogram, voxel_size=voxel_size)
    z, y, x = tomo.shape
    stats = volume_stats(tomo.data)
    typer.echo(f"file: {tomogram}")
    typer.echo(f"shape (z, y, x): {z} x {y} x {x}")
    typer.echo(f"dtype: {tomo.file_dtype} (MRC mode {tomo.mode})")
    if tomo.voxel_size is None:
        typer.echo("voxel size: unknown (header says 0 or 1 Å); pass --voxel-size ANGSTROM")
    else:
        typer.echo(f"voxel size: {tomo.voxel_size:g} Å")
        typer.echo(
            "physical size (z, y, x): "
            + " x ".join(f"{s * tomo.voxel_size / 10:.1f}" for s in tomo.shape)
            + " nm"
        )
    oz, oy, ox = tomo.origin
    typer.echo(f"origin (z, y, x): {oz:g}, {oy:g}, {ox:g} Å")
    typer.echo(
        f"min / max / mean / std: {stats['min']:.4g} / {stats['max']:.4g} / "
        f"{stats['mean']:.4g} / {stats['std']:.4g}"
    )
    d_px = 10.0
    if diameter is not None:
        d_px = diameter_to_voxels(diameter, tomo.require_voxel_size())
        typer.echo(f"diameter: {diameter:g} Å = {d_px:.1f} voxels")
    if stats["std"] > 0:
        dark, evidence = protein_is_dark(tomo.data, d_px)
        typer.echo(
            f"contrast (auto): {'dark' if dark else 'bright'} protein "
            f"(band-pass skewness {evidence:+.2f}); --invert auto would "
            f"{'invert' if dark else 'not invert'}"
        )
    else:
        typer.echo("contrast: none (constant volume)")
    typer.echo(f"size on disk: {human_bytes(tomogram.stat().st_size)}")
    mapped = tomo.file_dtype == "float32" and tomo.mode == 2
    typer.echo(f"estimated memory for a run: {human_bytes(estimate_run_bytes(tomo.shape, mapped))}")


@app.command()
def params() -> None:
    """Print every tunable parameter with its default and meaning (Markdown).

    Any of them can be changed on segment, pick and batch with --set NAME=VALUE.
    """
    from cryosam.config import Config

    typer.echo(Config.reference_markdown(), nl=False)


def _register_optional_commands() -> None:
    """Commands defined in their own modules (kept light: they import lazily)."""
    from cryosam import (  # noqa: F401
        cli_batch,
        cli_cache,
        cli_copick,
        cli_evaluate,
        cli_models,
        cli_pick,
        cli_segment,
        cli_simulate,
    )


def _is_storage_error(exc: BaseException) -> bool:
    """Disk full, quota, read-only or permission problems: the user's to fix, not a bug."""
    import errno

    codes = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
    return isinstance(exc, OSError) and exc.errno in codes


def _say_interrupted() -> None:
    print(
        "\ncryosam: interrupted; finished outputs are kept, nothing partial was written "
        "(rerun the same command to go on)",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cryosam`` console script; returns the exit status."""
    global _DEBUG
    args = list(sys.argv[1:] if argv is None else argv)
    _DEBUG = "--debug" in args
    if _DEBUG:
        args = [a for a in args if a != "--debug"]
    try:
        _register_optional_commands()
        app(args=args, prog_name="cryosam", standalone_mode=True)
    except SystemExit as exc:  # click ends every run, including usage errors (status 2)
        code = exc.code
        if code == 130:  # typer turns Ctrl-C into exit status 130
            _say_interrupted()
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        _say_interrupted()
        return 130
    except CryosamError as exc:
        if _DEBUG:
            traceback.print_exc()
        print(f"cryosam: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        if _DEBUG:
            traceback.print_exc()
        print(
            "cryosam: error: out of memory; use a smaller volume or a machine with more memory",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # a bug: say so, briefly, unless debugging
        if _DEBUG:
            traceback.print_exc()
        if _is_storage_error(exc):
            where = f" ({exc.filename})" if exc.filename else ""
            print(
                f"cryosam: error: {exc.strerror or exc}{where}; nothing was replaced: free "
                "space, check permissions or choose another --out",
                file=sys.stderr,
            )
            return 2
        if not _DEBUG:
            print(
                f"cryosam: internal error: {type(exc).__name__}: {exc} "
                "(rerun with --debug for the traceback and report it)",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
