"""copick pick files (JSON, Å): ``points[].location.{x, y, z}``.

A point's position is its ``location`` plus the translation column of its 4 x 4
``transformation_`` (copick's own readers and writers add it, e.g. in its STAR handler:
"their translations are added to the positions"). Its rotation block is the pick's
orientation as copick's RELION and Dynamo converters read it: RELION's
``Euler_angles2matrix(rot, tilt, psi)`` (the rotation that turns the reference into the
particle, in x, y, z). cryosam writes zero translations, and the rotation when the picks
have angles (``trust_orientation`` true), else the identity.

This module reads and writes the JSON file format directly so that copick
projects work without the optional ``copick`` package; project-level access
(runs, voxel spacings, segmentations) lives in the copick integration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cryosam.errors import CryosamError
from cryosam.io import coords
from cryosam.io.atomic import write_text_atomic
from cryosam.io.picks import Picks, check_class_name


def picks_to_copick_dict(
    picks: Picks,
    voxel_size: float,
    object_name: str,
    user_id: str = "cryosam",
    session_id: str = "0",
    run_name: str | None = None,
) -> dict:
    """copick ``CopickPicksFile`` content for the picks of one object (class)."""
    xyz = coords.zyx_to_angstrom_xyz(picks.zyx, voxel_size)
    transforms = copick_transforms(picks)
    points = []
    for i in range(len(picks)):
        point = {
            "location": {"x": float(xyz[i, 0]), "y": float(xyz[i, 1]), "z": float(xyz[i, 2])},
            "transformation_": transforms[i].tolist(),
            "instance_id": int(picks.instance[i]),
        }
        if np.isfinite(picks.score[i]):
            point["score"] = float(picks.score[i])
        points.append(point)
    return {
        "pickable_object_name": object_name,
        "user_id": user_id,
        "session_id": session_id,
        "run_name": run_name or picks.tomogram,
        "voxel_spacing": float(voxel_size),
        "unit": "angstrom",
        "points": points,
        "trust_orientation": has_angles(picks),
    }


def has_angles(picks: Picks) -> bool:
    """Every pick has a finite orientation."""
    return picks.angles is not None and bool(np.isfinite(picks.angles).all())


def copick_transforms(picks: Picks) -> np.ndarray:
    """``(N, 4, 4)`` copick transforms: the picks' rotations (identity without angles), no
    translation."""
    out = np.tile(np.eye(4), (len(picks), 1, 1))
    if has_angles(picks):
        out[:, :3, :3] = coords.relion_euler_matrices(picks.angles)
    return out


def write_copick_json(
    path: str | os.PathLike,
    picks: Picks,
    voxel_size: float,
    object_name: str | None = None,
    overwrite: bool = False,
    **kwargs,
) -> Path:
    """Write one copick picks JSON (all picks must be of one class unless ``object_name``)."""
    if object_name is None:
        classes = picks.classes
        if len(classes) > 1:
            raise CryosamError("a copick picks file holds one object; split picks by class")
        object_name = classes[0] if classes else "particle"
    content = picks_to_copick_dict(picks, voxel_size, object_name, **kwargs)
    return write_text_atomic(path, json.dumps(content, indent=2), overwrite)


def _transform(matrix, path, i: int) -> np.ndarray:
    """A point's 4 x 4 ``transformation_`` (none: the identity)."""
    if matrix is None:
        return np.eye(4)
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise CryosamError(f"{path}: point {i}: transformation_ is not a finite 4 x 4 matrix")
    return m


def read_copick_json(path: str | os.PathLike, voxel_size: float) -> Picks:
    """Read a copick picks JSON; locations in Å are converted with ``voxel_size``."""
    path = Path(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CryosamError(f"{path}: no such file; check the path") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CryosamError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise CryosamError(f"{path}: not a copick picks file (no 'points' list)")
    unit = str(data.get("unit", "angstrom")).lower()
    if unit not in ("angstrom", "å", "a"):
        raise CryosamError(f"{path}: unit {unit!r} is not supported; copick picks are in angstrom")
    name = check_class_name(data.get("pickable_object_name") or "particle", str(path))
    xyz, transforms, score, inst = [], [], [], []
    for i, point in enumerate(data["points"]):
        try:
            loc = point["location"]
            xyz.append([float(loc["x"]), float(loc["y"]), float(loc["z"])])
        except (KeyError, TypeError, ValueError) as exc:
            raise CryosamError(f"{path}: point {i} has no numeric location.x/y/z") from exc
        transforms.append(_transform(point.get("transformation_"), path, i))
        score.append(float(point.get("score", np.nan)))
        inst.append(int(point.get("instance_id", i + 1)))
    T = np.asarray(transforms, dtype=np.float64).reshape(-1, 4, 4)
    arr = (np.asarray(xyz, dtype=np.float64) + T[:, :3, 3]).reshape(-1, 3)
    if not np.isfinite(arr).all():
        raise CryosamError(f"{path}: NaN or infinite locations")
    zyx = coords.angstrom_xyz_to_zyx(arr, voxel_size)
    angles = None
    if data.get("trust_orientation") and len(T):
        try:
            angles = coords.relion_angles_of_matrices(T[:, :3, :3])
        except ValueError as exc:
            raise CryosamError(f"{path}: a transformation_ is not a rotation ({exc})") from exc
    return Picks(zyx, score, [name] * len(zyx), inst, angles, data.get("run_name"))
