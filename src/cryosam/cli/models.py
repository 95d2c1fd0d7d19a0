"""`cryosam models`: list, download, verify and locate foundation-model checkpoints."""

from __future__ import annotations

import typer

from cryosam.cli.app import app
from cryosam.errors import CryosamError

models_app = typer.Typer(
    help="Foundation-model checkpoints: list, download, verify, path.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models() -> None:
    """Every known checkpoint: family, size, whether it is cached and verified."""
    from cryosam.eval.tables import format_table
    from cryosam.models.registry import REGISTRY, cache_dir, model_dir, verify

    rows = []
    for name, s in REGISTRY.items():
        cached = (model_dir(name) / "config.json").exists()
        rows.append(
            {
                "name": name,
                "family": s.family,
                "params (M)": s.params_m,
                "hub id": s.hub_id,
                "cached": "yes" if cached else "no",
                "verified": ("yes" if not verify(name) else "NO") if cached else "-",
                "backend": "yes" if s.supported else "not yet",
            }
        )
    typer.echo(format_table(rows, list(rows[0])))
    typer.echo(f"cache: {cache_dir()} (set CRYOSAM_CACHE to move it)")


@models_app.command()
def download(name: str = typer.Argument(..., help="Short name, e.g. sam-vit-h.")) -> None:
    """Download a checkpoint into the cache (resumable) and record its sha256 hashes."""
    from cryosam.models.registry import download as fetch

    typer.echo(f"downloaded {name} to {fetch(name)}")


@models_app.command("verify")
def verify_model(name: str = typer.Argument(..., help="Short name.")) -> None:
    """Check the sha256 of every weight file; exit 2 on a mismatch."""
    from cryosam.models.registry import verify

    problems = verify(name)
    if problems:
        raise CryosamError(f"{name}: " + "; ".join(problems))
    typer.echo(f"{name}: verified")


@models_app.command()
def path(name: str = typer.Argument(..., help="Short name.")) -> None:
    """Print the cache folder of a checkpoint (what --model can point to)."""
    from cryosam.models.registry import model_dir, spec

    spec(name)
    typer.echo(str(model_dir(name)))
