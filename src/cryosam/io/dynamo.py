"""Dynamo particle tables (``.tbl``), through teamtomo's ``dynamotable``.

Columns follow Dynamo's table convention (1-based column numbers: 1 tag, 2 aligned, 4-6
shifts ``dx dy dz``, 7-9 Euler angles ``tdrot tilt narot``, 10 ``cc``, 20 tomogram index, 22
class, 24-26 ``x y z`` in pixels, 36 ``apix``). Positions are the tomogram's pixel
coordinates as RELION 3 and Warp write them (0-based voxel centres; converters between the
two, such as copick's, copy them unchanged) and shifts are zero. The angles are Dynamo's
(``zxz`` extrinsic, passive, as the ``eulerangles`` library and copick read them): the same
rotation as the RELION angles of the pick. A ``.doc`` table map beside the table names the
tomogram of index 1.

Read as prompts (:func:`read_dynamo_prompts`), a table's particles are at ``x + dx``,
``y + dy``, ``z + dz`` (Dynamo keeps a refinement's shifts apart from the positions), each
row's tomogram named by the table map beside it (``.doc``: index, then path).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from cryosam.errors import CryosamError
from cryosam.io import coords
from cryosam.io.atomic import check_writable
from cryosam.io.picks import Picks


def relion_to_dynamo_angles(rot_tilt_psi) -> np.ndarray:
    """RELION ``(rot, tilt, psi)`` -> Dynamo ``(tdrot, tilt, narot)`` in degrees (the same
    passive rotation matrix: RELION's is ``Rz(psi) Ry(tilt) Rz(rot)``, Dynamo's the ``zxz``
    extrinsic one)."""
    A = coords.relion_euler_matrices(rot_tilt_psi)
    return Rotation.from_matrix(A).inv().as_euler("zxz", degrees=True)


def dynamo_to_relion_angles(tdrot_tilt_narot) -> np.ndarray:
    """Dynamo ``(tdrot, tilt, narot)`` -> RELION ``(rot, tilt, psi)`` in degrees."""
    a = np.asarray(tdrot_tilt_narot, np.float64).reshape(-1, 3)
    A = Rotation.from_euler("zxz", a, degrees=True).inv().as_matrix()
    return Rotation.from_matrix(np.transpose(A, (0, 2, 1))).as_euler("ZYZ", degrees=True)


def merge_dynamo_tables(path: str | os.PathLike, tables: list, overwrite: bool = True) -> Path:
    """One Dynamo table (and table map) from several single-tomogram ones of cryosam's: the
    k-th table's particles get tomogram index k (1-based) and the map names each tomogram."""
    import dynamotable

    frames = []
    for k, t in enumerate(tables, start=1):
        if Path(t).stat().st_size == 0:  # a tomogram without picks: its index stays unused
            continue
        df = dynamotable.read(str(t))
        doc = Path(t).with_suffix(".doc").read_text().split(maxsplit=1)
        df["tomo"] = k
        df["tomo_file"] = doc[1].strip() if len(doc) > 1 else Path(t).parent.name
        frames.append(df)
    if not frames:
        frames = [pd.DataFrame({"tag": [], "tomo": [], "tomo_file": []})]
    df = pd.concat(frames, ignore_index=True)
    df["tag"] = np.arange(1, len(df) + 1)
    return _write_atomic(path, df, overwrite)


def write_dynamo_table(
    path: str | os.PathLike,
    picks: Picks,
    voxel_size: float | None,
    tomogram: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``picks`` as a Dynamo table ``path`` (``.tbl``) and its table map (``.doc``,
    ``1 TOMOGRAM``). Picks without angles get zeros; ``class`` is the class's number in order
    of first appearance."""
    xyz = coords.zyx_to_relion3_xyz(picks.zyx)
    angles = np.zeros((len(picks), 3))
    if picks.angles is not None and np.isfinite(picks.angles).all():
        angles = relion_to_dynamo_angles(picks.angles)
    number = {c: i + 1 for i, c in enumerate(picks.classes)}
    df = pd.DataFrame({
        "tag": np.arange(1, len(picks) + 1), "aligned_value": 1,
        "tdrot": angles[:, 0], "tilt": angles[:, 1], "narot": angles[:, 2],
        "cc": np.nan_to_num(picks.score), "tomo": 1,
        "class": [number[c] for c in picks.class_name],
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "apix": float(voxel_size or 0.0),
        "tomo_file": tomogram or picks.tomogram or "tomogram",
    })  # fmt: skip
    return _write_atomic(path, df, overwrite)


def read_dynamo_prompts(path: str | os.PathLike) -> tuple[np.ndarray, list[str], list]:
    """A Dynamo table's particles as prompt points: ``(zyx voxels of x + dx, y + dy, z + dz,
    classes, tomograms)``; the class ``particle`` for a table of one class, else ``classN``
    by column 22; each row's tomogram from the table map beside the table (``NAME.doc``), or
    None. A table of several tomograms needs its map."""
    import dynamotable

    from cryosam.io.picks import DEFAULT_CLASS

    path = Path(path)
    doc = path.with_suffix(".doc")
    try:
        df = dynamotable.read(str(path), str(doc) if doc.exists() else None)
        xyz = df[["x", "y", "z"]].to_numpy(np.float64) + df[["dx", "dy", "dz"]].to_numpy(np.float64)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's
        raise CryosamError(f"{path}: not a readable Dynamo table ({exc})") from exc
    if not np.isfinite(xyz).all():
        raise CryosamError(f"{path}: the Dynamo table has non-numeric or missing positions")
    if "tomo_file" not in df and df["tomo"].nunique() > 1:
        raise CryosamError(
            f"{path}: the table holds particles of {df['tomo'].nunique()} tomograms; put its "
            f"table map ({doc.name}: index and tomogram per line) beside it"
        )
    one_class = df["class"].nunique() <= 1
    names = [DEFAULT_CLASS if one_class else f"class{int(c)}" for c in df["class"]]
    tomos = [str(t) for t in df["tomo_file"]] if "tomo_file" in df else [None] * len(df)
    return coords.relion3_xyz_to_zyx(xyz), names, tomos


def _write_atomic(path: Path, df: pd.DataFrame, overwrite: bool) -> Path:
    """``df`` through dynamotable into ``path`` and its ``.doc`` map, each renamed into place."""
    import dynamotable

    path = Path(path)
    if path.suffix != ".tbl":
        raise CryosamError(f"{path}: a Dynamo table's name must end in .tbl")
    doc = path.with_suffix(".doc")
    for p in (path, doc):
        check_writable(p, overwrite)
    # (not named after the table: dynamotable names the map by replacing ".tbl" in the path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}-dynamo-", dir=path.parent))
    try:
        dynamotable.write(df, str(staging / path.name))
        # Dynamo's own table maps separate index and path by a tab (dynamotable: a space)
        lines = (staging / doc.name).read_text().splitlines()
        (staging / doc.name).write_text(
            "".join("\t".join(ln.split(None, 1)) + "\n" for ln in lines)
        )
        os.replace(staging / doc.name, doc)
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
