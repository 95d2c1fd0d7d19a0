"""`cryosam simulate`: a synthetic tomogram with ground truth."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cryosam.cli.app import app
from cryosam.errors import CryosamError


def parse_triple(text: str, what: str, kind=int) -> tuple:
    """'200,400,400' -> (200, 400, 400), with a clear error."""
    try:
        values = tuple(kind(v) for v in text.split(","))
        if len(values) != 3:
            raise ValueError
        return values
    except ValueError:
        msg = f"{what} must be three comma-separated numbers z,y,x, got {text!r}"
        raise CryosamError(msg) from None


def parse_fractions(items: list[str]) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            msg = f"--species takes NAME=FRACTION (e.g. ribosome=0.05), got {item!r}"
            raise CryosamError(msg) from None
    return out


def _imaging(tilt_range: str, tilt_step: float, defocus, snr, dose, misalignment):
    """The imaging options as an :class:`~cryosam.simulate.Imaging` (tilts checked)."""
    from cryosam.simulate import Imaging

    try:
        tmin, tmax = (float(v) for v in tilt_range.split(","))
    except ValueError:
        raise CryosamError(f"--tilt-range must be min,max in degrees, got {tilt_range!r}") from None
    if not (-90 < tmin < tmax < 90) or tilt_step <= 0:
        raise CryosamError("tilts must satisfy -90 < min < max < 90 and --tilt-step > 0")
    return Imaging(
        tilt_min=tmin,
        tilt_max=tmax,
        tilt_step=tilt_step,
        defocus_um=defocus,
        snr=None if dose is not None else snr,
        dose=dose,
        misalignment_px=misalignment,
    )


def _map_species(folder: Path | None) -> dict[str, str] | None:
    """``--templates DIR`` -> species name (the file name without extensions) -> map path."""
    if folder is None:
        return None
    from cryosam.io.tomogram import tomogram_stem

    if not folder.is_dir():
        raise CryosamError(f"--templates {folder}: not a folder of density maps")
    maps = sorted(p for p in folder.iterdir() if p.name.lower().endswith((".mrc", ".map")))
    if not maps:
        raise CryosamError(f"--templates {folder}: no .mrc or .map files in it")
    return {tomogram_stem(p): str(p.resolve()) for p in maps}


@app.command()
def simulate(
    out: Path = typer.Option(Path("cryosam-sim"), "--out", "-o", help="Output folder."),
    shape: str = typer.Option("200,400,400", "--shape", help="Volume size z,y,x in voxels."),
    voxel_size: float = typer.Option(10.0, "--voxel-size", help="Voxel size in Å."),
    preset: str = typer.Option(
        "default",
        "--preset",
        help="Composition: sparse (~3 %), default (~10 %, with vesicles and filaments) or "
        "crowded (~18 %, every look-alike species).",
    ),
    species: list[str] = typer.Option(
        [], "--species", help="NAME=FRACTION of the volume, repeatable; replaces the preset's."
    ),
    vesicles: int | None = typer.Option(None, "--vesicles", help="Number of vesicles."),
    filaments: int | None = typer.Option(None, "--filaments", help="Number of filaments."),
    snr: float = typer.Option(0.25, "--snr", help="Tomogram SNR (signal / noise variance)."),
    dose: float | None = typer.Option(
        None, "--dose", help="Total dose in e/Å²: Poisson shot noise instead of --snr."
    ),
    defocus: float = typer.Option(3.0, "--defocus", help="Underfocus in µm."),
    tilt_range: str = typer.Option("-60,60", "--tilt-range", help="Tilt range min,max (deg)."),
    tilt_step: float = typer.Option(3.0, "--tilt-step", help="Tilt increment (deg)."),
    misalignment: float = typer.Option(1.0, "--misalignment", help="Per-tilt shift SD (px)."),
    templates: Path | None = typer.Option(
        None,
        "--templates",
        help="A folder of density maps (MRC, any voxel size, protein bright: EMDB maps, "
        "molmap output): each becomes a species named after its file, placed instead of the "
        "preset's (2 % of the volume each unless --species NAME=FRACTION says).",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed, same tomogram."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Simulate a tomogram with ground truth (tomogram, labels, instances, particles, preview).

    Species: ribosome (~25 nm, two subunits), proteasome (hollow barrel), double_ring
    (barrel look-alike), ball (~11 nm), lsu, dimer_small, dimer_large, cage, rod,
    small_protein; plus vesicles with membrane proteins and actin-like filaments.
    """
    from cryosam.simulate import SimulationConfig, simulate, write_simulation

    config = SimulationConfig(
        shape=parse_triple(shape, "--shape"),
        voxel_size=voxel_size,
        preset=preset,
        fractions=parse_fractions(species),
        vesicles=vesicles,
        filaments=filaments,
        imaging=_imaging(tilt_range, tilt_step, defocus, snr, dose, misalignment),
        seed=seed,
        templates=_map_species(templates),
    )
    typer.echo(f"simulating {' x '.join(map(str, config.shape))} voxels ...", err=True)
    sim = simulate(config, progress=lambda stage: typer.echo(f"  {stage}", err=True))
    if not sim.particles:
        raise CryosamError(
            f"nothing fits in a volume of {' x '.join(map(str, config.shape))} voxels at "
            f"{voxel_size:g} Å (no particle was placed); use a larger --shape (e.g. 64,128,128) "
            "or raise the species' fractions"
        )
    paths = write_simulation(sim, out, overwrite=overwrite)
    placed = ", ".join(f"{n} {c}" for n, c in sim.info["placed"].items())
    typer.echo(f"placed: {placed}")
    typer.echo(
        f"volume fraction in envelopes: {sim.info['envelope_fraction'] * 100:.1f} %; "
        f"tomogram SNR {sim.info['tomogram_snr']:.3g}; {sim.info['timings_s']['total']:.1f} s"
    )
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
    sys.stdout.flush()
