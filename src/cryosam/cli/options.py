"""Options shared by the commands (one definition each), with defaults and help taken from
:class:`~cryosam.config.Config`, and the progress bar the CLI draws for the library."""

from __future__ import annotations

from pathlib import Path

import typer

import cryosam.cli.app as cli_app
from cryosam.config import Config

DEFAULTS = Config()

POINT_HELP = (
    "Prompt z,y,x[:CLASS] in voxels of the input (0-based), repeatable: one point per flag."
)
NEGATIVE_HELP = (
    "Negative prompt z,y,x[:CLASS] on something that is NOT wanted; without a class it "
    "applies to every class. Matches that look clearly more like it than like the class, "
    "among the 40 that look most like it, are removed (status negative); the other picks "
    "stay exactly as without it. Repeatable."
)
PROMPTS_HELP = (
    "Prompt file: CSV with header z,y,x[,class,negative,tomogram] (voxels), RELION STAR, "
    "copick picks JSON, an IMOD model (.mod, points clicked in 3dmod; each object a class) or "
    "a Dynamo table (.tbl, positions plus shifts; its .doc beside it names the tomograms)."
)
DIAMETER_HELP = (
    "The particle's longest dimension in Å (approximate; in crowded cells rather too large "
    "than too small); CLASS=Å sets one class. Repeatable."
)


def config_option(name: str, *flags: str, help: str | None = None):
    """An option whose default and help are the :class:`Config` parameter ``name``'s."""
    return typer.Option(getattr(DEFAULTS, name), *flags, help=help or Config.help(name))


TOMOGRAM_ARG = typer.Argument(..., help="Tomogram (.mrc, .rec, ...; .gz/.bz2 too).")
POINT_OPT = typer.Option([], "--point", "-p", metavar="Z,Y,X[:CLASS]", help=POINT_HELP)
NEGATIVE_OPT = typer.Option([], "--negative", "-n", metavar="Z,Y,X[:CLASS]", help=NEGATIVE_HELP)
PROMPTS_OPT = typer.Option(None, "--prompts", metavar="FILE", help=PROMPTS_HELP)
DIAMETER_OPT = typer.Option([], "--diameter", "-d", metavar="[CLASS=]Å", help=DIAMETER_HELP)
VOXEL_SIZE_OPT = typer.Option(
    None, "--voxel-size", help="Å per voxel; overrides the header (needed if it says 0 or 1)."
)
INVERT_OPT = config_option(
    "invert", "--invert", help="Protein is dark (yes: raw tomograms), bright (no) or auto."
)
SEGMENTER_OPT = config_option("segmenter", "--segmenter")
MODEL_OPT = typer.Option(None, "--model", help="SAM checkpoint: local folder or hub id.")
ENCODER_OPT = config_option("encoder", "--encoder")
ENCODER_MODEL_OPT = typer.Option(
    None, "--encoder-model", help="DINOv2 checkpoint folder or hub id."
)
DEVICE_OPT = config_option("device", "--device")
TOP_K_OPT = config_option("top_k", "--top-k")
TAU_SIM_OPT = config_option("tau_sim", "--tau-sim")
RELION5_OPT = typer.Option(
    False, "--relion5", help="Write picks.star as RELION 5 (centred Å) instead of RELION 3."
)
TOMO_NAME_OPT = typer.Option(
    None,
    "--tomo-name",
    help="The tomogram's name in the particle files (rlnTomoName with --relion5, else "
    "rlnMicrographName), as the averaging program knows it: {stem} and {name} stand for the "
    "file's stem and name, e.g. '{stem}.tomostar' for Warp, '{stem}' for a RELION 5 tomogram "
    "set. Default: the stem (RELION 5) or the file name (RELION 3).",
)
REFERENCE_MAP_OPT = typer.Option(
    [],
    "--reference",
    "--reference-map",
    help="MAP.mrc[:CLASS]: a known structure (an EMDB map, a previous average.mrc; any voxel "
    "size and box, density positive) that the class is verified against instead of its first "
    "click; the picks' angles are then in the map's frame. Repeat per class; the class may "
    "be left out when there is one. Without a --point for the class, its best matches to "
    "the map are its prompts, and without a --diameter its size is the map's.",
)
SYMMETRY_OPT = typer.Option(
    [],
    "--symmetry",
    help="[CLASS=]Cn|Dn: the class's point group. With a --reference map its n-fold axis is "
    "the map's z (as EMDB and RELION keep maps); from clicks alone the axes are found in "
    "the average of the picks and the class reference is turned to put the n-fold axis along "
    "z (a Dn two-fold along x). The reference and the average are symmetrised and each "
    "pick's angles are the equivalent nearest the reference's frame. Default C1.",
)
NO_CACHE_OPT = typer.Option(
    False, "--no-cache", help="Do not read or write the feature cache ($CRYOSAM_CACHE)."
)
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace existing outputs.")
SET_OPT = typer.Option(
    [],
    "--set",
    metavar="NAME=VALUE",
    help="Change any method parameter: NAME=VALUE (see 'cryosam params'). Repeatable.",
)


def out_option(default: str):
    """``--out/-o`` with a command's default folder."""
    return typer.Option(Path(default), "--out", "-o", help="Output folder.")


def method_config(set_: list[str], **options) -> Config:
    """The :class:`Config` of a run: the command's options, then ``--set`` overrides."""
    return Config(**options).with_overrides(set_)


def read_inputs(
    tomogram: Path, voxel_size, points, negatives, prompts_file, memory_check=True, maps=()
):
    """``(tomogram, prompts, positive classes)``: the tomogram read (its voxel size known, its
    run fitting in memory), the command line's prompts first, then the file's rows for it,
    every point inside the volume and at least one positive, or, with ``maps`` (``--reference``
    specs), none: the classes are then the maps' (see :func:`map_classes`)."""
    from cryosam.app.inputs import load_prompts, positive_classes
    from cryosam.app.resources import check_fits
    from cryosam.io.prompts import validate_prompts
    from cryosam.io.tomogram import header_info, maps_float32, read_tomogram

    if memory_check and Path(tomogram).is_file():  # from the header, before reading any data
        shape, _, mode = header_info(tomogram, voxel_size)
        check_fits(shape, maps_float32(tomogram, mode))
    tomo = read_tomogram(tomogram, voxel_size=voxel_size)
    vs = tomo.require_voxel_size()
    prompts = load_prompts(points, negatives, prompts_file, tomo.shape, vs, tomogram)
    classes = positive_classes(prompts)
    if maps and not classes:  # the maps prompt their classes (cryosam.method.seeds)
        if prompts:
            validate_prompts(prompts, tomo.shape, require_positive=False)
        return tomo, prompts, map_classes(maps)
    validate_prompts(prompts, tomo.shape)  # cheap checks before any work
    cli_app.warn_many_prompts(prompts)
    return tomo, prompts, classes


def map_classes(specs: list[str]) -> list[str]:
    """The classes ``--reference MAP[:CLASS]`` flags name when no point prompts a class
    (``particle`` for a map without one; two maps without a class are refused)."""
    from cryosam.errors import CryosamError
    from cryosam.io.picks import DEFAULT_CLASS

    names = [map_spec(spec)[1] or DEFAULT_CLASS for spec in specs]
    if len(set(names)) < len(names):
        raise CryosamError(
            "--reference: two maps for one class; name each map's class (MAP.mrc:CLASS)"
        )
    return names


def map_spec(spec: str) -> tuple[str, str]:
    """``MAP[:CLASS]`` -> ``(path, class or "")``."""
    path, _, cls = spec.rpartition(":") if ":" in spec else (spec, "", "")
    return (path, cls) if path else (spec, "")


def read_reference_maps(specs: list[str], classes: list[str]) -> dict:
    """``--reference MAP[:CLASS]`` flags -> class -> the map read as a volume (its voxel size
    from its header)."""
    from cryosam.errors import CryosamError
    from cryosam.io.tomogram import read_tomogram

    out = {}
    for spec in specs or []:
        path, cls = map_spec(spec)
        if not cls:
            if len(classes) != 1:
                raise CryosamError(
                    f"--reference {spec}: say which class it is for (MAP.mrc:CLASS); "
                    f"classes: {', '.join(classes)}"
                )
            cls = classes[0]
        if cls not in classes:
            raise CryosamError(
                f"--reference {spec}: no prompted class {cls!r} (classes: {', '.join(classes)})"
            )
        m = read_tomogram(Path(path))
        if m.voxel_size is None:
            raise CryosamError(f"--reference {path}: its header has no voxel size; set it first")
        out[cls] = m
    return out


def parse_symmetry(specs: list[str], classes: list[str]) -> dict[str, str]:
    """``--symmetry [CLASS=]GROUP`` flags -> class -> group (with the class's --reference map
    its axes are the map's; without, they are found in the picks' average)."""
    from cryosam.errors import CryosamError
    from cryosam.method.orient import symmetry_group

    out = {}
    for spec in specs or []:
        cls, _, group = spec.rpartition("=")
        if not cls:
            if len(classes) != 1:
                raise CryosamError(f"--symmetry {spec}: say which class (CLASS={spec})")
            cls = classes[0]
        try:
            symmetry_group(group)
        except ValueError as exc:
            raise CryosamError(f"--symmetry {spec}: {exc}") from exc
        if cls not in classes:
            raise CryosamError(
                f"--symmetry {spec}: no class {cls!r} (classes: {', '.join(classes)})"
            )
        out[cls] = group.strip().upper()
    return out


def map_settings(specs: list[str], symmetry: list[str], classes: list[str]):
    """``--reference-map`` and ``--symmetry`` for jobs that read the maps themselves:
    ``(class -> absolute map path, class -> group, class -> the map as read)``, every map
    read once here to check it."""
    maps = read_reference_maps(specs, classes)
    paths = {c: str(m.path.resolve()) for c, m in maps.items()}
    return paths, parse_symmetry(symmetry, classes), maps


def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr; the library only sees a callback."""
    from tqdm import tqdm  # here: `cryosam --help` need not import it

    return tqdm(total=total, desc=desc, unit="", leave=False, dynamic_ncols=True)
