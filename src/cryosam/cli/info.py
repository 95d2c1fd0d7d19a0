"""`cryosam info` and `cryosam params`."""

from __future__ import annotations

from pathlib import Path

import typer

from cryosam.cli.app import app
from cryosam.cli.options import VOXEL_SIZE_OPT
from cryosam.config import Config
from cryosam.errors import CryosamError


@app.command()
def info(
    tomogram: Path = typer.Argument(..., help="Tomogram (.mrc, .rec, .map, .st; .gz/.bz2 too)."),
    voxel_size: float | None = VOXEL_SIZE_OPT,
    diameter: float | None = typer.Option(
        None, "--diameter", help="Particle diameter in Å, to show it in voxels."
    ),
) -> None:
    """Print shape, data type, voxel size, statistics, contrast and the memory a run needs.

    What the header says comes first (at once, on a tomogram of any size); statistics and
    contrast need a pass over the data."""
    from cryosam.app.resources import estimate_run_bytes, human_bytes
    from cryosam.io.coords import diameter_to_voxels
    from cryosam.io.tomogram import (
        header_info,
        maps_float32,
        mrc_mode_dtype,
        read_tomogram,
        volume_stats,
    )
    from cryosam.volume.contrast import protein_is_dark

    (z, y, x), vs, mode = header_info(tomogram, voxel_size)
    typer.echo(f"file: {tomogram}")
    typer.echo(f"shape (z, y, x): {z} x {y} x {x}")
    typer.echo(f"dtype: {mrc_mode_dtype(mode)} (MRC mode {mode})")
    if vs is None:
        typer.echo("voxel size: unknown (header says 0 or 1 Å); pass --voxel-size ANGSTROM")
    else:
        typer.echo(f"voxel size: {vs:g} Å")
        typer.echo(
            "physical size (z, y, x): "
            + " x ".join(f"{s * vs / 10:.1f}" for s in (z, y, x))
            + " nm"
        )
    typer.echo(f"size on disk: {human_bytes(tomogram.stat().st_size)}")
    need = estimate_run_bytes((z, y, x), maps_float32(tomogram, mode))
    typer.echo(f"estimated memory for a run: {human_bytes(need)}")
    d_px = 10.0
    if diameter is not None:
        if vs is None:
            raise CryosamError("the voxel size is unknown; pass --voxel-size to use --diameter")
        d_px = diameter_to_voxels(diameter, vs)
        typer.echo(f"diameter: {diameter:g} Å = {d_px:.1f} voxels")
    tomo = read_tomogram(tomogram, voxel_size=voxel_size)
    oz, oy, ox = tomo.origin
    typer.echo(f"origin (z, y, x): {oz:g}, {oy:g}, {ox:g} Å")
    stats = volume_stats(tomo.data)
    typer.echo(
        f"min / max / mean / std: {stats['min']:.4g} / {stats['max']:.4g} / "
        f"{stats['mean']:.4g} / {stats['std']:.4g}"
    )
    if stats["std"] > 0:
        dark, evidence = protein_is_dark(tomo.data, d_px)
        typer.echo(
            f"contrast (auto): {'dark' if dark else 'bright'} protein "
            f"(band-pass skewness {evidence:+.2f}); --invert auto would "
            f"{'invert' if dark else 'not invert'}"
        )
        _spectrum_lines(tomo.data)
    else:
        typer.echo("contrast: none (constant volume)")


def _spectrum_lines(data) -> None:
    """The missing wedge and the balance of low and mid frequencies, read from the spectrum."""
    from cryosam.volume.spectrum import is_lifted, low_excess
    from cryosam.volume.wedge import NARROW_BELOW, estimate_wedge

    wedge = estimate_wedge(data)
    typer.echo(
        f"missing wedge: tilts about {wedge.axis} up to +-{wedge.max_tilt:g}° "
        + (
            f"(under +-{NARROW_BELOW:g}°: verification minds it by default)"
            if wedge.max_tilt < NARROW_BELOW
            else f"(+-{NARROW_BELOW:g}° or more: verification minds it with --set "
            "missing_wedge=auto)"
        )
        if wedge
        else "missing wedge: none seen in the spectrum"
    )
    excess = low_excess(data)
    if excess is not None:
        typer.echo(
            f"spectrum: low frequencies {excess:+.1f} decades against the mid band "
            + (
                "(lifted, as a deconvolution leaves them: --set balance_spectrum=auto turns "
                "them down)"
                if is_lifted(excess)
                else "(as in a raw reconstruction)"
            )
        )


@app.command()
def params() -> None:
    """Print every tunable parameter with its default and meaning (Markdown).

    Any of them can be changed on segment, pick and batch with --set NAME=VALUE.
    """
    typer.echo(Config.reference_markdown(), nl=False)
