"""IMOD model files (``.mod``, as 3dmod saves them) as point prompts, read with teamtomo's
``imodmodel``.

3dmod's model coordinates are pixels of the image the model was made on, with the origin at
the corner of the first pixel in X and Y but at the centre of the first section in Z (IMOD's
own MATLAB tools convert an index to a model point by subtracting 0.5, 0.5 and 1 from the
1-based index; imodmodel's documentation says the same of 3dmod). So the voxel index of a
point ``(X, Y, Z)`` is ``(z, y, x) = (Z, Y - 0.5, X - 0.5)``.

Each object is a class: its name in 3dmod's Edit > Object dialog when that is one word,
else ``object<N>`` (3dmod's numbering from 1); a model with a single unnamed object gives
the default class.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryosam.errors import CryosamError
from cryosam.io.picks import DEFAULT_CLASS, check_class_name

IMOD_XY_SHIFT = 0.5
"""Subtracted from an IMOD model's X and Y (pixel corner origin) to give voxel indices."""


def imod_to_zyx(xyz) -> np.ndarray:
    """IMOD model ``(X, Y, Z)`` -> voxel index ``(z, y, x)``."""
    p = np.asarray(xyz, np.float64).reshape(-1, 3)
    return np.stack([p[:, 2], p[:, 1] - IMOD_XY_SHIFT, p[:, 0] - IMOD_XY_SHIFT], axis=1)


def read_imod_points(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """``(zyx, class names)`` of every point of an IMOD model, in file order."""
    from imodmodel import ImodModel
    from imodmodel.dataframe import model_to_dataframe

    path = Path(path)
    try:  # parsed once: the objects' names and the points' table from the same model
        model = ImodModel.from_file(path)
        table = model_to_dataframe(model, "contour")
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise CryosamError(
            f"{path}: cannot read as an IMOD model ({type(exc).__name__}); save it from 3dmod"
        ) from None
    if not len(table):
        return np.zeros((0, 3)), []
    ids = table["object_id"].to_numpy(int)
    names = [o.header.name.strip() for o in model.objects]
    single = len(set(ids)) == 1 and not names[ids[0]]
    classes = {k: DEFAULT_CLASS if single else _class_of(names[k], k) for k in set(ids)}
    return imod_to_zyx(table[["x", "y", "z"]].to_numpy(np.float64)), [classes[k] for k in ids]


def _class_of(name: str, k: int) -> str:
    """An object's class: its name when that is a valid class name, else ``object<k+1>``."""
    try:
        return check_class_name(name)
    except CryosamError:
        return f"object{k + 1}"
