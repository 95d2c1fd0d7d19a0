"""RELION STAR pick lists: RELION 3 (pixels) and RELION 5 (centred Å).

The dialect of a file is detected from its columns. Class names, which RELION
has no label for, go into an extra ``data_cryosam_classes`` block keyed by
``rlnClassNumber``; RELION reads only the blocks it asks for, so the file stays
valid for RELION, Warp/M and pytom.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from cryosam import __version__
from cryosam.errors import CryosamError
from cryosam.io import coords
from cryosam.io.atomic import atomic_path
from cryosam.io.picks import Picks, check_class_name
from cryosam.io.tomogram import tomogram_stem

RELION3 = "relion3"
RELION5 = "relion5"
R3_COLS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
R5_COLS = (
    "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst",
    "rlnCenteredCoordinateZAngst",
)
ANGLE_COLS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
ORIGIN_COLS = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
ORIGIN_PX_COLS = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")  # RELION 3.0, pixels
SUBTOMO_COLS = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
CLASS_BLOCK = "cryosam_classes"


def _exact(values: np.ndarray) -> list[str]:
    """Shortest text that reads back to the same float64 (Python's repr)."""
    return [repr(float(v)) for v in values]


def write_star(
    path: str | os.PathLike,
    picks: Picks,
    dialect: str = RELION3,
    shape_zyx=None,
    voxel_size: float | None = None,
    tomogram: str | None = None,
    overwrite: bool = False,
    exact_name: bool = False,
) -> Path:
    """Write picks as a RELION STAR file.

    Args:
        dialect: ``'relion3'`` (``rlnCoordinateX/Y/Z`` pixels, ``rlnMicrographName``) or
            ``'relion5'`` (``rlnCenteredCoordinateX/Y/ZAngst``, ``rlnTomoName``; needs
            ``shape_zyx`` and ``voxel_size``).
        tomogram: name written per row (defaults to ``picks.tomogram``); RELION 5 takes its
            stem (``TS_01.mrc`` -> ``TS_01``) unless ``exact_name``.
    """
    name = tomogram or picks.tomogram or "tomogram"
    classes = picks.classes
    number = {c: i + 1 for i, c in enumerate(classes)}
    particles: dict[str, object] = {}
    if dialect == RELION3:
        particles["rlnMicrographName"] = [name] * len(picks)
        xyz = coords.zyx_to_relion3_xyz(picks.zyx)
        cols = R3_COLS
    elif dialect == RELION5:
        if shape_zyx is None:
            raise CryosamError("RELION 5 STAR output needs the tomogram shape")
        particles["rlnTomoName"] = [name if exact_name else tomogram_stem(name)] * len(picks)
        xyz = coords.zyx_to_relion5_xyz_angst(picks.zyx, shape_zyx, voxel_size)
        cols = R5_COLS
    else:
        raise CryosamError(f"unknown STAR dialect {dialect!r}; use relion3 or relion5")
    for i, col in enumerate(cols):
        particles[col] = _exact(xyz[:, i])
    if picks.angles is not None and np.isfinite(picks.angles).all():
        for i, col in enumerate(ANGLE_COLS):
            particles[col] = _exact(picks.angles[:, i])
    particles["rlnAutopickFigureOfMerit"] = _exact(picks.score)
    particles["rlnClassNumber"] = [number[c] for c in picks.class_name]
    stem = name if exact_name else tomogram_stem(name)
    particles["rlnTomoParticleName"] = [f"{stem}/{int(i)}" for i in picks.instance]
    blocks = {
        "particles": pd.DataFrame(particles),
        CLASS_BLOCK: pd.DataFrame(
            {"rlnClassNumber": list(number.values()), "cryosamClassName": list(number)}
        ),
    }
    return _write_blocks(path, blocks, overwrite)


def _write_blocks(path, blocks: dict, overwrite: bool) -> Path:
    """STAR ``blocks`` written atomically, with the same bytes every run (starfile stamps the
    time; the stamp is replaced by cryosam's version)."""
    with atomic_path(path, overwrite) as tmp:
        starfile.write(blocks, tmp, overwrite=True)
        lines = tmp.read_text().splitlines(keepends=True)
        body = [ln for ln in lines if not ln.startswith("# Created by the starfile")]
        tmp.write_text(f"# Written by cryosam {__version__}\n" + "".join(body))
    return Path(path)


def write_relion5_index(path: str | os.PathLike, files: dict, overwrite: bool = True) -> Path:
    """The file RELION 5's Import -> Coordinates takes (``relion_tomo_import_particles --i``):
    one row per tomogram, ``rlnTomoName`` and ``rlnTomoImportParticleFile`` (absolute paths,
    as RELION opens them from its project folder). ``files``: tomogram name -> STAR file."""
    table = pd.DataFrame({
        "rlnTomoName": list(files),
        "rlnTomoImportParticleFile": [str(Path(f).resolve()) for f in files.values()],
    })  # fmt: skip
    return _write_blocks(path, {"coordinate_files": table}, overwrite)


def merge_star(path: str | os.PathLike, files: list, overwrite: bool = True) -> Path:
    """One particle file from several of cryosam's (a batch's tomograms, one dialect): their
    particle rows in order, class numbers renumbered by class name across the files."""
    tables, names = [], {}
    for f in files:
        blocks = _read_blocks(Path(f))
        table, _ = _particles(blocks, Path(f))
        own = blocks.get(CLASS_BLOCK)
        local = dict(zip(own["rlnClassNumber"], own["cryosamClassName"])) if own is not None else {}
        cls = [str(local.get(n, n)) for n in table.get("rlnClassNumber", [])]
        for c in cls:
            names.setdefault(c, len(names) + 1)
        table = table.copy()
        if cls:
            table["rlnClassNumber"] = [names[c] for c in cls]
        tables.append(table)
    if not tables:
        raise CryosamError("no particle files to merge")
    blocks = {
        "particles": pd.concat(tables, ignore_index=True),
        CLASS_BLOCK: pd.DataFrame(
            {"rlnClassNumber": list(names.values()), "cryosamClassName": list(names)}
        ),
    }
    return _write_blocks(path, blocks, overwrite)


def detect_dialect(columns) -> str:
    """``'relion5'`` or ``'relion3'`` from a particles table's columns."""
    cols = set(columns)
    if all(c in cols for c in R5_COLS):
        return RELION5
    if all(c in cols for c in R3_COLS):
        return RELION3
    raise KeyError


def read_star(
    path: str | os.PathLike,
    shape_zyx=None,
    voxel_size: float | None = None,
    tomogram: str | None = None,
) -> Picks:
    """Read picks from a RELION 3 or RELION 5 STAR file (dialect detected from its columns).

    Args:
        shape_zyx, voxel_size: needed for RELION 5 (centred Å) coordinates.
        tomogram: keep only rows whose ``rlnTomoName``/``rlnMicrographName`` names this
            tomogram (matched with or without extensions); ``None`` keeps all rows.
    """
    path = Path(path)
    blocks = _read_blocks(path)
    table, dialect = _particles(blocks, path)
    name_col = _name_column(table)
    if tomogram is not None and name_col is not None:
        want = tomogram_stem(tomogram)
        table = table[(table[name_col].astype(str).map(tomogram_stem) == want).to_numpy()]
    return _picks(table, dialect, blocks, path, shape_zyx, voxel_size, tomogram, name_col)


def read_star_per_tomogram(
    path: str | os.PathLike, shape_zyx=None, voxel_size: float | None = None
) -> list[Picks]:
    """:func:`read_star` once per tomogram the file names (its rows grouped by the
    ``rlnTomoName``/``rlnMicrographName`` stem, in file order; each :class:`Picks` named as
    its first row), the file parsed once; a file that names none is one group."""
    path = Path(path)
    blocks = _read_blocks(path)
    table, dialect = _particles(blocks, path)
    name_col = _name_column(table)
    if name_col is None:
        return [_picks(table, dialect, blocks, path, shape_zyx, voxel_size, None, None)]
    stems = table[name_col].astype(str).map(tomogram_stem).to_numpy()
    return [
        _picks(table[stems == stem], dialect, blocks, path, shape_zyx, voxel_size, None, name_col)
        for stem in dict.fromkeys(stems)
    ]


def _name_column(table) -> str | None:
    return next((c for c in ("rlnTomoName", "rlnMicrographName") if c in table), None)


def _picks(table, dialect, blocks, path, shape_zyx, voxel_size, tomogram, name_col) -> Picks:
    """The :class:`Picks` of particle rows ``table`` (named ``tomogram``, else as its first
    row's ``name_col``)."""
    zyx = _positions(table, dialect, path, shape_zyx, voxel_size)
    score = (
        _numeric(table, ["rlnAutopickFigureOfMerit"], path, allow_nan=True)[:, 0]
        if "rlnAutopickFigureOfMerit" in table
        else None
    )
    angles = _numeric(table, ANGLE_COLS, path) if all(c in table for c in ANGLE_COLS) else None
    class_name = _class_names(table, blocks.get(CLASS_BLOCK), path)
    instance = None
    if "rlnTomoParticleName" in table:
        try:
            instance = [int(str(s).rsplit("/", 1)[-1]) for s in table["rlnTomoParticleName"]]
        except ValueError:
            instance = None
    name = str(table[name_col].iloc[0]) if name_col is not None and len(table) else None
    return Picks(zyx, score, class_name, instance, angles, tomogram or name)


def _read_blocks(path: Path) -> dict:
    if not path.exists():
        raise CryosamError(f"{path}: no such file; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many types on malformed text
        raise CryosamError(f"{path}: not a readable STAR file ({exc})") from exc


def _particles(blocks: dict, path: Path) -> tuple[pd.DataFrame, str]:
    """The first table with coordinate columns, and its dialect."""
    for block in blocks.values():
        if isinstance(block, pd.DataFrame):
            try:
                return block, detect_dialect(block.columns)
            except KeyError:
                continue
    raise CryosamError(
        f"{path}: no table with known coordinate columns; need rlnCoordinateX/Y/Z "
        "(RELION 3, pixels) or rlnCenteredCoordinateX/Y/ZAngst (RELION 5, Å)"
    )


def _positions(table, dialect, path, shape_zyx, voxel_size) -> np.ndarray:
    """Voxel ``(z, y, x)`` of every row (RELION 5 needs the tomogram's shape and voxel size).

    A refined particle's position is its coordinate minus its origin shift (RELION's
    ``rlnOriginX/Y/ZAngst``, in the subtomogram's frame when it has one)."""
    if dialect != RELION5:
        zyx = coords.relion3_xyz_to_zyx(_numeric(table, R3_COLS, path))
        return zyx - _origin_shift_zyx(table, path, voxel_size)
    if shape_zyx is None:
        raise CryosamError(
            f"{path}: RELION 5 coordinates are relative to the tomogram centre; "
            "give the tomogram so its shape and voxel size are known (cryosam evaluate: "
            "--tomogram TOMO)"
        )
    zyx = coords.relion5_xyz_angst_to_zyx(_numeric(table, R5_COLS, path), shape_zyx, voxel_size)
    if all(c in table for c in R3_COLS):  # both dialects: they must agree
        other = coords.relion3_xyz_to_zyx(_numeric(table, R3_COLS, path))
        if len(zyx) and np.abs(other - zyx).max() > 1.0:
            raise CryosamError(
                f"{path}: rlnCoordinateX/Y/Z (pixels) and rlnCenteredCoordinateX/Y/ZAngst "
                "disagree by more than a voxel (a different voxel size or tomogram size?); "
                "keep one set of columns"
            )
    return zyx - _origin_shift_zyx(table, path, voxel_size)


def _origin_shift_zyx(table, path, voxel_size) -> np.ndarray:
    """Origin shifts in voxels ``(z, y, x)``; zero when the file has none."""
    n = len(table)
    if all(c in table for c in ORIGIN_COLS):
        origin = _numeric(table, ORIGIN_COLS, path)
        if not origin.any():
            return np.zeros((n, 3))
        subtomo = (
            _numeric(table, SUBTOMO_COLS, path) if all(c in table for c in SUBTOMO_COLS) else None
        )
        if voxel_size is None:
            raise CryosamError(
                f"{path}: particles carry origin shifts in Å (rlnOriginXAngst...); "
                "pass --voxel-size (or the tomogram) so they can be applied"
            )
        shift = coords.relion_origin_shift_xyz(origin, subtomo) / float(voxel_size)
        return shift[:, ::-1]
    if all(c in table for c in ORIGIN_PX_COLS):
        return _numeric(table, ORIGIN_PX_COLS, path)[:, ::-1]
    return np.zeros((n, 3))


def _class_names(table, extra, path) -> list[str] | None:
    """Class names from ``rlnClassNumber`` and cryosam's class block (numbers otherwise)."""
    if "rlnClassNumber" not in table:
        return None
    names = {}
    if isinstance(extra, pd.DataFrame) and {"rlnClassNumber", "cryosamClassName"} <= set(
        extra.columns
    ):
        names = {
            int(k): check_class_name(v, str(path))
            for k, v in zip(extra["rlnClassNumber"], extra["cryosamClassName"])
        }
    return [names.get(int(k), str(int(k))) for k in table["rlnClassNumber"]]


def _numeric(table: pd.DataFrame, cols, path, allow_nan: bool = False) -> np.ndarray:
    try:
        values = table[list(cols)].astype(np.float64).to_numpy()
    except (ValueError, TypeError) as exc:
        raise CryosamError(f"{path}: non-numeric values in {', '.join(cols)}") from exc
    if not allow_nan and not np.isfinite(values).all():
        raise CryosamError(f"{path}: NaN or infinite values in {', '.join(cols)}")
    return values
