"""Point prompts: command-line strings and prompt files (CSV, STAR, copick JSON, IMOD model).

A prompt is a voxel position ``(z, y, x)`` of the input, a class name, and a flag
that marks it negative (a point on something the user does *not* want). A
negative without a class applies to every class (``class_name is None``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosam.errors import CryosamError
from cryosam.io import coords
from cryosam.io.imod import read_imod_points
from cryosam.io.picks import (
    DEFAULT_CLASS,
    check_class_name,
    coerce_numeric,
    read_table_csv,
    require_columns,
)
from cryosam.io.readers import read_any_picks
from cryosam.io.star import read_star_per_tomogram
from cryosam.io.tomogram import tomogram_stem


@dataclass(frozen=True)
class Prompt:
    """One point prompt in voxel indices ``(z, y, x)`` of the input tomogram."""

    zyx: tuple[float, float, float]
    class_name: str | None = DEFAULT_CLASS
    negative: bool = False
    tomogram: str | None = None


def parse_point(text: str, negative: bool = False) -> Prompt:
    """Parse ``'z,y,x'`` or ``'z,y,x:CLASS'`` (voxel indices of the input).

    A negative point without a class applies to every class (``class_name=None``).
    """
    flag = "--negative" if negative else "--point"
    body, _, cls = str(text).partition(":")
    parts = [p.strip() for p in body.split(",")]
    try:
        if len(parts) != 3:
            raise ValueError
        zyx = tuple(float(p) for p in parts)
        if not all(np.isfinite(zyx)):
            raise ValueError
    except ValueError:
        raise CryosamError(
            f"{flag} {text!r}: expected z,y,x in voxels (e.g. 100,212,305 or 100,212,305:ribosome)"
        ) from None
    if cls.strip():
        name: str | None = check_class_name(cls, flag)
    else:
        name = None if negative else DEFAULT_CLASS
    return Prompt(zyx, name, negative)  # type: ignore[arg-type]


def _truthy(value) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true", "yes", "y", "t"):
        return True
    if text in ("0", "0.0", "false", "no", "n", "f", "", "nan"):
        return False
    raise ValueError(text)


def read_prompt_csv(path: str | os.PathLike) -> list[Prompt]:
    """Prompt CSV with a header.

    ``z,y,x`` (voxels) are required, in any column order; ``class``, ``negative`` (0/1)
    and ``tomogram`` are optional.
    """
    df = read_table_csv(path)
    require_columns(df, ("z", "y", "x"), path, "prompt")
    if len(df) == 0:
        raise CryosamError(f"{path}: the prompt file has no rows; add at least one z,y,x point")
    df = coerce_numeric(df, ("z", "y", "x"), path)
    prompts = []
    for i, rec in enumerate(df.to_dict("records")):
        negative = False
        if "negative" in rec:
            try:
                negative = _truthy(rec["negative"])
            except ValueError:
                raise CryosamError(
                    f"{path}: line {i + 2}: 'negative' must be 0 or 1, got {rec['negative']!r}"
                ) from None
        raw_cls = rec.get("class")
        if raw_cls is None or (isinstance(raw_cls, float) and np.isnan(raw_cls)) or raw_cls == "":
            cls = None if negative else DEFAULT_CLASS
        else:
            cls = check_class_name(raw_cls, f"{path}: line {i + 2}")
        tomo = rec.get("tomogram")
        tomo = None if tomo is None or (isinstance(tomo, float) and np.isnan(tomo)) else str(tomo)
        prompts.append(Prompt((rec["z"], rec["y"], rec["x"]), cls, negative, tomo))
    return prompts


def read_prompt_file(
    path: str | os.PathLike, shape_zyx=None, voxel_size: float | None = None
) -> list[Prompt]:
    """Read prompts from CSV, STAR (RELION 3/5), copick JSON, an IMOD model or a Dynamo
    table, by extension."""
    path = Path(path)
    if not path.exists():
        raise CryosamError(f"{path}: no such file; check the path")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return read_prompt_csv(path)
    if suffix == ".mod":
        zyx, classes = read_imod_points(path)
        if not len(zyx):
            raise CryosamError(f"{path}: the IMOD model has no points")
        return [Prompt(tuple(map(float, p)), c) for p, c in zip(zyx, classes)]  # type: ignore[arg-type]
    if suffix == ".tbl":
        from cryosam.io.dynamo import read_dynamo_prompts

        zyx, names, tomos = read_dynamo_prompts(path)
        prompts = [
            Prompt(tuple(float(v) for v in p), c, False, t)  # type: ignore[arg-type]
            for p, c, t in zip(zyx, names, tomos)
        ]
        if not prompts:
            raise CryosamError(f"{path}: the Dynamo table has no particles")
        return prompts
    if suffix not in (".star", ".json"):
        raise CryosamError(
            f"{path}: unknown prompt file type {suffix!r}; use .csv, .star, a copick .json, "
            "an IMOD .mod or a Dynamo .tbl"
        )
    if suffix == ".star":  # each tomogram's rows keep its name (a batch routes them)
        groups = read_star_per_tomogram(path, shape_zyx, voxel_size)
    else:
        groups = [read_any_picks(path, shape_zyx, voxel_size)]
    prompts = [
        Prompt(tuple(map(float, p)), str(c), False, picks.tomogram)  # type: ignore[arg-type]
        for picks in groups
        for p, c in zip(picks.zyx, picks.class_name)
    ]
    if not prompts:
        raise CryosamError(f"{path}: the prompt file has no points")
    return prompts


def prompts_for_tomogram(prompts: list[Prompt], tomogram: str | os.PathLike) -> list[Prompt]:
    """Prompts whose ``tomogram`` names this file (with or without extensions), or names none."""
    want = tomogram_stem(tomogram)
    return [p for p in prompts if p.tomogram is None or tomogram_stem(p.tomogram) == want]


def validate_prompts(prompts: list[Prompt], shape_zyx, require_positive: bool = True) -> None:
    """Refuse an empty prompt list, positive-less lists and points outside the volume."""
    if not prompts:
        raise CryosamError("no prompts given; add --point z,y,x or --prompts FILE")
    if require_positive and not any(not p.negative for p in prompts):
        raise CryosamError("only negative prompts given; add at least one --point z,y,x")
    for p in prompts:
        flag = "--negative" if p.negative else "--point"
        coords.check_inside([p.zyx], shape_zyx, f"{flag}")
