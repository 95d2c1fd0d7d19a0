"""What the napari widget does, without Qt: prompts from layers, runs, exports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryosam.app.extended import pick_extended
from cryosam.app.inputs import parse_diameters, positive_classes
from cryosam.app.pick import in_memory, pick
from cryosam.app.segment import segment
from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.coords import relion_euler_matrices
from cryosam.io.copick_json import write_copick_json
from cryosam.io.picks import Picks, write_picks_csv
from cryosam.io.prompts import Prompt
from cryosam.io.star import RELION3, RELION5, write_star
from cryosam.io.tomogram import write_volume

POSITIVE, NEGATIVE = "cryosam positive", "cryosam negative"


def layer_points_to_voxels(points_layer, image_layer) -> np.ndarray:
    """The points of ``points_layer`` as voxel indices ``(z, y, x)`` of ``image_layer``
    (whatever scale and translation either layer has)."""
    out = []
    for p in np.asarray(points_layer.data, dtype=np.float64).reshape(-1, points_layer.ndim):
        world = points_layer.data_to_world(p)
        out.append(np.asarray(image_layer.world_to_data(world), dtype=np.float64)[-3:])
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def prompts_from_layers(image_layer, positive_layer, negative_layer=None) -> list[Prompt]:
    """Positive prompts (class from the layer's ``class`` feature) and negative ones."""
    prompts = []
    for layer, negative in ((positive_layer, False), (negative_layer, True)):
        if layer is None or len(layer.data) == 0:
            continue
        zyx = layer_points_to_voxels(layer, image_layer)
        classes = (
            list(layer.features["class"]) if "class" in layer.features else ["particle"] * len(zyx)
        )
        for p, c in zip(zyx, classes):
            name = str(c).strip() or "particle"
            prompts.append(Prompt(tuple(float(v) for v in p), None if negative else name, negative))
    return prompts


def voxel_size_of(image_layer) -> float:
    """Å per voxel: the reader's metadata, else the layer's scale (when it is not 1)."""
    vs = (image_layer.metadata or {}).get("voxel_size")
    if vs:
        return float(vs)
    scale = float(np.asarray(image_layer.scale)[-1])
    if scale > 1.0:
        return scale
    raise CryosamError("the image has no voxel size; set it in the widget (Å per voxel)")


@dataclass
class Result:
    """What a run gives the viewer."""

    kind: str  # "segment", "pick" or "extended"
    labels: np.ndarray
    semantic: np.ndarray | None = None
    picks: Picks | None = None
    cuts: dict[str, float] = field(default_factory=dict)
    message: str = ""
    averages: dict[str, np.ndarray] = field(default_factory=dict)
    """Class -> the aligned average of its picks (protein bright)."""


class Cancelled(CryosamError):
    """The user pressed Cancel: the run stopped at its next stage."""


def _diameters(
    prompts, diameter_angst: float, voxel_size: float, per_class: str = ""
) -> dict[str, float]:
    """Every prompted class's diameter in voxels: ``per_class`` (``"ribosome=250,
    proteasome=160"``, as ``--diameter`` takes them) where it names the class, else the
    widget's one diameter."""
    classes = positive_classes(prompts)
    if not classes:
        raise CryosamError("add at least one point to the 'cryosam positive' layer")
    items = [f"{diameter_angst:g}"] + [
        t for t in per_class.replace(";", ",").split(",") if t.strip()
    ]
    return parse_diameters(items, classes, voxel_size)


def run_segment(
    volume,
    voxel_size,
    prompts,
    diameter_angst,
    config: Config,
    extended=False,
    name: str = "napari",
    per_class: str = "",
    progress=None,
):
    """Segment the particle (or membrane) under each positive prompt."""
    diameters = {} if extended else _diameters(prompts, diameter_angst, voxel_size, per_class)
    tomogram = in_memory(volume, voxel_size, name)
    run = segment(tomogram, prompts, diameters, config, extended=extended, progress=progress)
    if extended:
        return Result("segment", run.labels, message=f"{run.n_ok} structure(s)")
    msg = f"segmented {run.n_ok}/{len(run.rows)} prompts"
    if run.warnings:
        msg += "; " + run.warnings[0]
    return Result("segment", run.labels, message=msg)


def run_find_all(
    volume,
    voxel_size,
    prompts,
    diameter_angst,
    config: Config,
    extended=False,
    name: str = "napari",
    per_class: str = "",
    progress=None,
):
    """Every particle (or membrane) like the prompted ones, through the one pick path (the
    features are cached by the volume's checksum, so a second press reuses them);
    ``progress(stage)`` hears each stage (and may raise :class:`Cancelled` to stop)."""
    tomogram = in_memory(volume, voxel_size, name)
    if extended:
        res = pick_extended(tomogram, prompts, {}, config, progress=progress)
        n = int(res.instances.max())
        return Result(
            "extended", res.instances, res.semantic, message=f"{n} connected structure(s)"
        )
    diameters = _diameters(prompts, diameter_angst, voxel_size, per_class)
    out = pick(tomogram, prompts, diameters, config, progress=progress).outcome
    cuts = {r.name: r.cut for r in out.reports}
    msg = ", ".join(f"{r.name}: {r.n_accepted} picks" for r in out.reports)
    return Result("pick", out.instances, out.semantic, out.picks, cuts, msg, out.averages)


def orientation_vectors(picks: Picks, length: float) -> np.ndarray | None:
    """napari vectors ``(N, 2, 3)``: from each pick, its reference's z axis turned by the
    pick's rotation, ``length`` voxels long (``None`` without angles)."""
    if picks.angles is None or not len(picks) or not np.isfinite(picks.angles).all():
        return None
    z_axis = relion_euler_matrices(picks.angles)[:, :, 2]  # turned (0, 0, 1) in x, y, z
    return np.stack([picks.zyx, length * z_axis[:, ::-1]], axis=1)


def export_picks(
    picks: Picks,
    path,
    shape,
    voxel_size: float,
    tomogram: str | None = None,
    relion5: bool = False,
):
    """Write picks as CSV, RELION STAR (.star: RELION 3 pixels, or with ``relion5`` RELION
    5's centred Å) or copick JSON (.json, one class)."""
    path = Path(path)
    suffix = path.suffix.lower()
    picks.tomogram = tomogram
    if suffix == ".csv":
        return write_picks_csv(path, picks, overwrite=True)
    if suffix == ".star":
        dialect = RELION5 if relion5 else RELION3
        return write_star(
            path, picks, dialect, shape, voxel_size, tomogram=tomogram, overwrite=True
        )
    if suffix == ".json":
        return write_copick_json(path, picks, voxel_size, overwrite=True)
    raise CryosamError(f"{path.name}: export picks as .csv, .star or .json (copick)")


def export_masks(labels: np.ndarray, path, voxel_size: float, kind: str = "instance"):
    """Write a label map as MRC (smallest integer mode that holds it)."""
    path = Path(path)
    if path.suffix.lower() not in (".mrc", ".rec", ".map"):
        raise CryosamError(f"{path.name}: export masks as .mrc")
    return write_volume(path, labels, voxel_size, kind=kind, overwrite=True)
