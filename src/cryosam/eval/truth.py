"""Loading ground truth and pick results for evaluation.

Truth is either a folder written by ``cryosam simulate`` (``particles.csv``,
``truth.json``, ``labels.mrc``, ``instances.mrc``, ``tomogram.mrc``) or a pick file
(CSV, STAR, copick JSON) with diameters given by the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryosam.errors import CryosamError
from cryosam.io.picks import Picks, read_picks_csv
from cryosam.io.readers import read_any_picks


@dataclass
class Truth:
    """Ground truth of one tomogram."""

    picks: Picks
    diameters_angst: dict[str, float]
    voxel_size: float | None
    shape: tuple[int, int, int] | None
    class_ids: dict[str, int]
    labels_path: Path | None = None
    instances_path: Path | None = None
    targets: tuple[str, ...] = ()


def load_truth(path: str | Path, voxel_size: float | None = None, shape=None) -> Truth:
    """Truth from a ``cryosam simulate`` folder or a picks file (``shape``: the tomogram's
    ``(z, y, x)``, which RELION 5's centred coordinates need)."""
    path = Path(path)
    if path.is_dir():
        meta_path = path / "truth.json"
        if not meta_path.exists():
            raise CryosamError(f"{path}: no truth.json; give a folder from 'cryosam simulate'")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise CryosamError(f"{meta_path}: corrupt JSON ({exc})") from exc
        cfg = meta.get("config", {})
        return Truth(
            picks=read_picks_csv(path / "particles.csv"),
            diameters_angst={k: float(v) for k, v in meta.get("diameters_angst", {}).items()},
            voxel_size=voxel_size or cfg.get("voxel_size"),
            shape=tuple(cfg["shape"]) if "shape" in cfg else None,
            class_ids={k: int(v) for k, v in meta.get("class_ids", {}).items()},
            labels_path=path / "labels.mrc" if (path / "labels.mrc").exists() else None,
            instances_path=path / "instances.mrc" if (path / "instances.mrc").exists() else None,
            targets=tuple(meta.get("targets", ())),
        )
    picks = read_any_picks(path, shape, voxel_size)
    return Truth(picks, {}, voxel_size, tuple(shape) if shape is not None else None, {})
