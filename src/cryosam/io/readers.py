"""One reader for pick files of any supported format, chosen by extension."""

from __future__ import annotations

from pathlib import Path

from cryosam.errors import CryosamError
from cryosam.io.copick_json import read_copick_json
from cryosam.io.picks import Picks, read_picks_csv
from cryosam.io.star import read_star


def read_any_picks(path: str | Path, shape=None, voxel_size: float | None = None) -> Picks:
    """Picks from a CSV, STAR or copick JSON file, or a folder holding ``picks.csv``."""
    path = Path(path)
    if path.is_dir():
        path = path / "picks.csv"
    if not path.exists():
        raise CryosamError(f"{path}: no such file; give a picks file or a pick output folder")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_picks_csv(path)
    if suffix == ".star":
        return read_star(path, shape_zyx=shape, voxel_size=voxel_size)
    if suffix == ".json":
        if voxel_size is None:
            raise CryosamError(f"{path}: copick picks are in Å; pass --voxel-size")
        return read_copick_json(path, voxel_size)
    raise CryosamError(f"{path}: unknown picks format {suffix!r}; use .csv, .star or .json")
