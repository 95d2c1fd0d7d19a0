"""What every run records in ``run.json``: config, versions, input checksum, timings."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from cryosam.errors import CryosamError
from cryosam.io.atomic import write_text_atomic


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("cryosam", "numpy", "scipy", "scikit-image", "mrcfile", "torch", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


class Timer:
    """Wall-clock seconds per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)

    def total(self) -> float:
        return round(time.perf_counter() - self._start, 3)


def check_outputs(out_dir: Path, names: list[str], overwrite: bool) -> None:
    """Refuse to start when any output exists (unless ``overwrite``) or ``out_dir`` is a file."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CryosamError(f"{out_dir} exists and is not a folder; choose another --out")
    if not overwrite:
        existing = [n for n in names if (out_dir / n).exists()]
        if existing:
            raise CryosamError(
                f"{out_dir} already holds {', '.join(existing)}; pass --overwrite or another --out"
            )
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    import os

    if not os.access(probe, os.W_OK):
        raise CryosamError(f"cannot write to {probe}: permission denied; choose another --out")


def input_record(path, tomo, inverted: bool, checksum: str | None = None) -> dict:
    """The ``input`` entry of run.json: path, sha256, shape, voxel size, contrast decision."""
    return {"path": str(path), "sha256": checksum or sha256_file(path),
            "shape": list(tomo.shape), "voxel_size": tomo.voxel_size,
            "protein_dark_inverted": bool(inverted)}  # fmt: skip


def write_run_json(path: Path, record: dict) -> Path:
    """Write the run record (always replaced: it describes the outputs beside it)."""
    record = {"cryosam_command": " ".join(["cryosam", *sys.argv[1:]]), **record}
    record.setdefault("versions", versions())
    return write_text_atomic(path, json.dumps(record, indent=1, default=_jsonable), overwrite=True)


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
