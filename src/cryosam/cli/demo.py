"""`cryosam demo`: the main job on a built-in example, scored against its truth."""

from __future__ import annotations

from pathlib import Path

import typer

import cryosam.cli.app as cli_app
from cryosam.cli.app import app
from cryosam.cli.options import out_option


@app.command()
def demo(
    out: Path = out_option("cryosam-demo"),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated tomogram."),
    snr: float = typer.Option(0.5, "--snr", help="Tomogram SNR of the simulation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier demo."),
) -> None:
    """Simulate a tomogram, pick ribosomes from one prompt, score against the truth.

    Everything runs offline with the weight-free backend: a 100 x 200 x 200 tomogram at
    10 Å with ribosomes, proteasomes, double rings, small proteins, vesicles and
    filaments. Prints precision, recall and F1 and where the preview picture is.
    """
    from cryosam.app.demo import VOXEL_SIZE, check_demo_outputs, pick_demo, simulate_demo

    check_demo_outputs(out, overwrite)
    typer.echo("simulating a 100 x 200 x 200 tomogram (10 Å voxels) ...")
    scene = simulate_demo(out, seed, snr)
    z, y, x = scene.prompt
    typer.echo(
        f"prompt: one ribosome at z,y,x={z:g},{y:g},{x:g}; "
        f"--diameter {scene.diameter_px * VOXEL_SIZE:g} Å"
    )
    run, s = pick_demo(scene, cli_app.say, cli_app.command_line)
    cli_app.warn(run.warnings)
    typer.echo(
        f"ribosomes: {s.n_true} true, {s.n_pred} picked -> precision {s.precision:.3f}, "
        f"recall {s.recall:.3f}, F1 {s.f1:.3f} (match radius {scene.radius_px:.1f} voxels)"
    )
    typer.echo(f"picks: {out / 'pick' / 'picks.csv'}")
    typer.echo(f"preview: {out / 'pick' / 'preview.png'}")
    typer.echo(f"truth preview: {out / 'truth' / 'preview.png'}")
