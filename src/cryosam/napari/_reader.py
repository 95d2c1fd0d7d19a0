"""Open MRC tomograms in napari with their voxel size as the layer scale (Å)."""

from __future__ import annotations

from pathlib import Path

from cryosam.io.tomogram import is_tomogram_name, read_tomogram, tomogram_stem


def napari_get_reader(path):
    """The reader for one tomogram path, or None when it is not ours."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_layers if is_tomogram_name(str(path)) else None


def read_layers(path):
    """``[(data, kwargs, "image")]``; scale is the voxel size in Å (1 when unknown)."""
    path = path[0] if isinstance(path, list) else path
    tomo = read_tomogram(path)
    vs = tomo.voxel_size or 1.0
    meta = {"voxel_size": tomo.voxel_size, "path": str(Path(path)), "origin": tomo.origin}
    kwargs = {"name": tomogram_stem(path), "scale": (vs, vs, vs), "metadata": meta}
    return [(tomo.data, kwargs, "image")]
