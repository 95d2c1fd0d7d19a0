"""The one pick-list type of the package and its CSV form.

Coordinates are voxel indices ``(z, y, x)`` of the input tomogram, as floats.
Orientation, when known, is RELION's ZYZ Euler triple ``(rot, tilt, psi)`` in
degrees.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryosam.errors import CryosamError
from cryosam.io.atomic import atomic_path

DEFAULT_CLASS = "particle"
_CLASS_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
CSV_COLUMNS = ("z", "y", "x", "score", "class", "instance")
ANGLE_COLUMNS = ("rot", "tilt", "psi")


def check_class_name(name: str, source: str = "") -> str:
    """Class names are one word of letters, digits and ``_ . + -`` (they go into file formats)."""
    name = str(name).strip()
    if not _CLASS_NAME.match(name):
        where = f"{source}: " if source else ""
        raise CryosamError(
            f"{where}invalid class name {name!r}: use letters, digits, '_', '.', '+' or '-'"
        )
    return name


@dataclass
class Picks:
    """Particle positions with scores and classes.

    Attributes:
        zyx: ``(N, 3)`` float64 voxel indices ``(z, y, x)``.
        score: ``(N,)`` float64 (NaN where unknown).
        class_name: ``(N,)`` class names (str).
        instance: ``(N,)`` int64 instance ids (0 = none).
        angles: ``(N, 3)`` float64 RELION ``(rot, tilt, psi)`` in degrees, or ``None``.
        tomogram: name of the tomogram the picks belong to (``None`` if unknown).
    """

    zyx: np.ndarray
    score: np.ndarray = field(default=None)  # type: ignore[assignment]
    class_name: np.ndarray = field(default=None)  # type: ignore[assignment]
    instance: np.ndarray = field(default=None)  # type: ignore[assignment]
    angles: np.ndarray | None = None
    tomogram: str | None = None

    def __post_init__(self) -> None:
        self.zyx = np.asarray(self.zyx, dtype=np.float64).reshape(-1, 3)
        n = len(self.zyx)
        self.score = (
            np.full(n, np.nan) if self.score is None else np.asarray(self.score, np.float64)
        )
        if self.class_name is None:
            self.class_name = np.array([DEFAULT_CLASS] * n, dtype=object)
        else:
            self.class_name = np.array([str(c) for c in self.class_name], dtype=object)
        if self.instance is None:
            self.instance = np.arange(1, n + 1, dtype=np.int64)
        else:
            self.instance = np.asarray(self.instance, dtype=np.int64)
        if self.angles is not None:
            self.angles = np.asarray(self.angles, dtype=np.float64).reshape(-1, 3)
        for name in ("score", "class_name", "instance", "angles"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"Picks.{name} has {len(value)} rows, zyx has {n}")

    def __len__(self) -> int:
        return len(self.zyx)

    @classmethod
    def empty(cls) -> Picks:
        return cls(np.zeros((0, 3)))

    @property
    def classes(self) -> list[str]:
        """Class names in order of first appearance."""
        return list(dict.fromkeys(self.class_name.tolist()))

    def select(self, index) -> Picks:
        """Subset by boolean mask or index array."""
        return Picks(
            self.zyx[index],
            self.score[index],
            self.class_name[index],
            self.instance[index],
            None if self.angles is None else self.angles[index],
            self.tomogram,
        )

    def of_class(self, name: str) -> Picks:
        return self.select(self.class_name == name)

    def to_frame(self) -> pd.DataFrame:
        """DataFrame with columns ``z, y, x, score, class, instance`` (+ ``rot, tilt, psi``)."""
        df = pd.DataFrame(
            {
                "z": self.zyx[:, 0],
                "y": self.zyx[:, 1],
                "x": self.zyx[:, 2],
                "score": self.score,
                "class": pd.Series(self.class_name, dtype=object),
                "instance": self.instance,
            }
        )
        if self.angles is not None:
            for i, col in enumerate(ANGLE_COLUMNS):
                df[col] = self.angles[:, i]
        return df

    @classmethod
    def from_frame(cls, df: pd.DataFrame, tomogram: str | None = None) -> Picks:
        """Inverse of :meth:`to_frame`; missing optional columns get defaults."""
        angles = None
        if all(c in df.columns for c in ANGLE_COLUMNS):
            angles = df[list(ANGLE_COLUMNS)].to_numpy(np.float64)
        return cls(
            df[["z", "y", "x"]].to_numpy(np.float64),
            df["score"].to_numpy(np.float64) if "score" in df else None,
            df["class"].astype(str).to_numpy(object) if "class" in df else None,
            df["instance"].to_numpy(np.int64) if "instance" in df else None,
            angles,
            tomogram,
        )


def write_picks_csv(path: str | os.PathLike, picks: Picks, overwrite: bool = False) -> Path:
    """Plain CSV, header first, no comment lines: ``z,y,x,score,class,instance[,rot,tilt,psi]``."""
    df = picks.to_frame()
    with atomic_path(path, overwrite) as tmp:
        df.to_csv(tmp, index=False, float_format=None)
    return Path(path)


def read_table_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV (``.tsv``: tab-separated) with a header; column names are matched
    case-insensitively and stripped. A row with more or fewer fields than the header is
    refused, naming its line (pandas would silently take an extra leading field as the
    index, shifting every column)."""
    path = Path(path)
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        _check_field_counts(path, sep)
        df = pd.read_csv(path, sep=sep, comment=None, skipinitialspace=True, index_col=False)
    except FileNotFoundError as exc:
        raise CryosamError(f"{path}: no such file; check the path") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CryosamError(
            f"{path}: not a readable CSV ({str(exc).splitlines()[0]}); "
            "give a CSV with a header line such as z,y,x"
        ) from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    return df


def _check_field_counts(path: Path, sep: str) -> None:
    """Every non-blank row has as many fields as the header, or a one-line error names it."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh, delimiter=sep)
        header = next(rows, None)
        if header is None:
            return
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise CryosamError(
                    f"{path}: line {rows.line_num}: {len(row)} fields where the header "
                    f"{sep.join(header)!r} has {len(header)}; remove the extra or missing "
                    "field (a trailing separator counts as one)"
                )


def read_picks_csv(path: str | os.PathLike) -> Picks:
    """Read a picks CSV (named columns in any order; ``z, y, x`` required)."""
    df = read_table_csv(path)
    require_columns(df, ("z", "y", "x"), path, "picks")
    return Picks.from_frame(coerce_numeric(df, ("z", "y", "x"), path))


def require_columns(df: pd.DataFrame, columns, path, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CryosamError(
            f"{path}: {what} file lacks column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, df.columns)) or 'none'}); "
            f"the header must name {', '.join(columns)}"
        )


def coerce_numeric(df: pd.DataFrame, columns, path) -> pd.DataFrame:
    """Convert ``columns`` to float, refusing text or missing values with the row number."""
    df = df.copy()
    for col in columns:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(np.float64))
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 2  # 1-based, after the header line
            raise CryosamError(
                f"{path}: line {row}: column {col!r} must be a finite number, "
                f"got {df[col].iloc[row - 2]!r}"
            )
        df[col] = values.astype(np.float64)
    return df
