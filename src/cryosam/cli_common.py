"""Options and input handling shared by ``segment``, ``pick`` and ``batch``."""

from __future__ import annotations

import typer

from cryosam.errors import CryosamError

POINT_HELP = (
    "Prompt z,y,x[:CLASS] in voxels of the input (0-based), repeatable: one point per flag."
)
NEGATIVE_HELP = (
    "Negative prompt z,y,x[:CLASS] on something that is NOT wanted; without a class it "
    "applies to every class. Repeatable."
)
PROMPTS_HELP = (
    "Prompt file: CSV with header z,y,x[,class,negative,tomogram] (voxels), RELION STAR, "
    "or copick picks JSON."
)
DIAMETER_HELP = (
    "Approximate particle diameter in Å (±30 % is fine); CLASS=Å sets one class. Repeatable."
)


# Options shared by the commands that read a tomogram and prompts (one definition each).
TOMOGRAM_ARG = typer.Argument(..., help="Tomogram (.mrc, .rec, ...; .gz/.bz2 too).")
POINT_OPT = typer.Option([], "--point", "-p", help=POINT_HELP)
NEGATIVE_OPT = typer.Option([], "--negative", "-n", help=NEGATIVE_HELP)
PROMPTS_OPT = typer.Option(None, "--prompts", help=PROMPTS_HELP)
DIAMETER_OPT = typer.Option([], "--diameter", "-d", help=DIAMETER_HELP)
VOXEL_SIZE_OPT = typer.Option(
    None, "--voxel-size", help="Å per voxel; overrides the header (needed if it says 0 or 1)."
)
INVERT_OPT = typer.Option(
    "auto", "--invert", help="Protein is dark (yes: raw tomograms), bright (no) or auto."
)
SEGMENTER_OPT = typer.Option(
    "classical", "--segmenter", help="classical (no weights) or sam (needs --model)."
)
MODEL_OPT = typer.Option(None, "--model", help="SAM checkpoint: local folder or hub id.")
DEVICE_OPT = typer.Option("auto", "--device", help="auto, cpu, cuda or mps (foundation models).")
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace existing outputs.")
SET_OPT = typer.Option(
    [], "--set", help="Change any method parameter: NAME=VALUE (see 'cryosam params'). Repeatable."
)


def load_prompts(points, negatives, prompts_file, shape, voxel_size, tomogram_name):
    """Command-line prompts first (in order), then the file's rows for this tomogram."""
    from cryosam.io.prompts import parse_point, prompts_for_tomogram, read_prompt_file

    prompts = [parse_point(p) for p in points or []]
    prompts += [parse_point(p, negative=True) for p in negatives or []]
    if prompts_file is not None:
        rows = read_prompt_file(prompts_file, shape, voxel_size)
        prompts += prompts_for_tomogram(rows, tomogram_name)
    return prompts


def parse_diameters(items: list[str], classes: list[str], voxel_size: float) -> dict[str, float]:
    """``['250']`` or ``['ribosome=250', 'proteasome=150']`` -> class -> diameter in voxels."""
    from cryosam.io.coords import diameter_to_voxels

    if not items:
        raise CryosamError("--diameter is required: the approximate particle diameter in Å")
    default, per_class = None, {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            angst = float(value)
        except ValueError:
            raise CryosamError(f"--diameter {item!r}: expected Å or CLASS=Å") from None
        px = diameter_to_voxels(angst, voxel_size)
        if sep:
            per_class[name.strip()] = px
        else:
            default = px
    out = {}
    for cls in classes:
        if cls in per_class:
            out[cls] = per_class[cls]
        elif default is not None:
            out[cls] = default
        else:
            raise CryosamError(f"no diameter for class {cls!r}; add --diameter {cls}=Å")
    return out


def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr; the library only sees a callback."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="", leave=False, dynamic_ncols=True)
