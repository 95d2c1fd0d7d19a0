"""Open MRC tomograms in napari with their voxel size as the layer scale (Å)."""

from __future__ import annotations

from cryosam.io.tomogram import COMPRESSED_SUFFIXES, TOMOGRAM_SUFFIXES


def napari_get_reader(path):
    """The reader for one tomogram path, or None when it is not ours."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    lower = str(path).lower()
    for c in ("",) + COMPRESSED_SUFFIXES:
        if any(lower.endswith(t + c) for t in TOMOGRAM_SUFFIXES):
            return read_layers
    return None


def read_layers(path):
    """``[(data, kwargs, "image")]``; scale is the voxel size in Å (1 when unknown)."""
    from pathlib import Path

    from cryosam.io.tomogram import read_tomogram, tomogram_stem

    path = path[0] if isinstance(path, list) else path
    tomo = read_tomogram(path)
    vs = tomo.voxel_size or 1.0
    meta = {"voxel_size": tomo.voxel_size, "path": str(Path(path)), "origin": tomo.origin}
    kwargs = {"name": tomogram_stem(path), "scale": (vs, vs, vs), "metadata": meta}
    return [(tomo.data, kwargs, "image")]
