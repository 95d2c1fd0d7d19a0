"""Checksums that key caches and run records: of a file's bytes, or of an array in memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

CHUNK_BYTES = 1 << 22


def sha256_file(path: str | Path, chunk: int = CHUNK_BYTES) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_array(array) -> str:
    """Hex sha256 of an array's shape, dtype and values (read in z-slabs, so a memory map is
    never copied whole): the checksum of a tomogram that has no file (napari, copick)."""
    a = np.asarray(array)
    h = hashlib.sha256(f"{a.shape}|{a.dtype.str}".encode())
    step = max(1, CHUNK_BYTES // max(1, a[:1].nbytes))
    for z0 in range(0, a.shape[0] if a.ndim else 1, step):
        h.update(np.ascontiguousarray(a[z0 : z0 + step] if a.ndim else a).tobytes())
    return h.hexdigest()
