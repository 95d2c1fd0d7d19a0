"""What every run records in ``run.json``: command, config, versions, input checksum,
timings."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from cryosam.io.atomic import write_text_atomic
from cryosam.io.checksums import sha256_array, sha256_file
from cryosam.io.tomogram import Tomogram

API_CALL = "python: cryosam API"
"""What ``run.json`` says ran it when no command line is given."""


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("cryosam", "numpy", "scipy", "scikit-image", "mrcfile", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def tomogram_checksum(tomo: Tomogram) -> str:
    """sha256 of the tomogram's file, or of its array when it has no file."""
    return sha256_file(tomo.path) if tomo.path is not None else sha256_array(tomo.data)


def input_record(
    tomo: Tomogram,
    inverted: bool,
    checksum: str | None = None,
    missing_wedge: str | None = None,
    balanced: bool | None = None,
) -> dict:
    """The ``input`` entry of run.json: path, sha256, shape, voxel size, contrast decision,
    the missing wedge verification minded (``y:62``, or ``off``) and whether the spectrum's
    low frequencies were turned down (``spectrum_balanced``)."""
    return {
        "path": str(tomo.path) if tomo.path is not None else None,
        "sha256": checksum or tomogram_checksum(tomo),
        "shape": list(tomo.shape),
        "voxel_size": tomo.voxel_size,
        "protein_dark_inverted": bool(inverted),
        **({"missing_wedge": missing_wedge} if missing_wedge is not None else {}),
        **({"spectrum_balanced": bool(balanced)} if balanced is not None else {}),
    }


def write_run_json(path: Path, record: dict, command_line: str | None = None) -> Path:
    """Write the run record (always replaced: it describes the outputs beside it).
    ``command_line`` is what ran it (the CLI passes its own; default: the Python API)."""
    record = {"cryosam_command": command_line or API_CALL, **record}
    record.setdefault("versions", versions())
    return write_text_atomic(path, json.dumps(record, indent=1, default=_jsonable), overwrite=True)


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
