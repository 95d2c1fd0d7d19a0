"""Synthetic tomograms with ground truth, for the demo, the tests and the benchmarks.

>>> sim = simulate(SimulationConfig(shape=(64, 128, 128), seed=1))
>>> sim.tomogram.shape, sorted(sim.scene.class_ids)[:2]

A simulation places randomly rotated copies of several species (see
:mod:`cryosam.simulate.species`), vesicles with membrane proteins and filaments
without overlap at a chosen crowding, images them (:mod:`cryosam.simulate.imaging`)
and keeps the truth: clean density, class labels (molecular envelopes), instances
and one row per particle. Everything is deterministic given the seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from cryosam.errors import CryosamError
from cryosam.io.atomic import write_text_atomic
from cryosam.io.figures import write_preview
from cryosam.io.picks import Picks, write_picks_csv
from cryosam.io.tomogram import write_volume
from cryosam.simulate.imaging import Imaging, reconstruct_tomogram
from cryosam.simulate.scene import (
    EXTENDED,
    Scene,
    add_filament,
    add_particles,
    add_vesicle,
    empty_scene,
    envelope_fraction,
)
from cryosam.simulate.species import BUILDERS, TARGETS, register_map, template

REFERENCE_VOLUME_UM3 = 0.2 * 0.4 * 0.4
"""Vesicle and filament counts in presets are per this volume (200 x 400 x 400 at 10 Å)."""

MAP_FRACTION = 0.02
"""The volume fraction each map species fills when ``fractions`` does not say."""

PRESETS: dict[str, dict] = {
    "sparse": {
        "fractions": {"ribosome": 0.015, "proteasome": 0.005, "double_ring": 0.005, "ball": 0.003},
        "vesicles": 0,
        "filaments": 0,
    },
    "default": {
        "fractions": {
            "ribosome": 0.05,
            "proteasome": 0.015,
            "double_ring": 0.015,
            "ball": 0.008,
            "small_protein": 0.01,
        },
        "vesicles": 2,
        "filaments": 3,
    },
    "crowded": {
        "fractions": {
            "ribosome": 0.05,
            "proteasome": 0.02,
            "double_ring": 0.02,
            "ball": 0.01,
            "lsu": 0.012,
            "dimer_small": 0.01,
            "dimer_large": 0.012,
            "cage": 0.01,
            "rod": 0.01,
            "small_protein": 0.02,
        },
        "vesicles": 3,
        "filaments": 6,
    },
}


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Sizes in voxels, ``voxel_size`` in Å.

    ``fractions`` (species -> fraction of the volume inside its envelopes) and the
    vesicle/filament counts default to the ``preset``'s.
    """

    shape: tuple[int, int, int] = (200, 400, 400)
    voxel_size: float = 10.0
    preset: str = "default"
    fractions: dict[str, float] | None = None
    vesicles: int | None = None
    filaments: int | None = None
    imaging: Imaging = field(default_factory=Imaging)
    seed: int = 0
    templates: dict[str, str] | None = None
    """Species made from density maps: name -> MRC path (any voxel size, protein bright).
    Without ``fractions`` each fills :data:`MAP_FRACTION` of the volume, alone."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise CryosamError(f"unknown preset {self.preset!r}; choose {', '.join(PRESETS)}")
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise CryosamError(f"shape must be 3 sizes of at least 8 voxels, got {self.shape}")
        if not self.voxel_size > 0:
            raise CryosamError(f"voxel size must be positive, got {self.voxel_size}")
        known = [*BUILDERS, *(self.templates or {})]
        unknown = set(self.resolved_fractions()) - set(known)
        if unknown:
            raise CryosamError(
                f"unknown species {', '.join(sorted(unknown))}; known: {', '.join(known)}"
            )
        if sum(self.resolved_fractions().values()) > 0.4:
            raise CryosamError("species fractions add up to more than 40 % of the volume")
        im = self.imaging
        if im.snr is not None and not im.snr > 0:
            raise CryosamError(f"SNR must be positive, got {im.snr}")
        if im.dose is not None and not im.dose > 0:
            raise CryosamError(f"dose must be positive, got {im.dose}")

    def resolved_fractions(self) -> dict[str, float]:
        if self.fractions:
            return dict(self.fractions)
        if self.templates:
            return {name: MAP_FRACTION for name in self.templates}
        return dict(PRESETS[self.preset]["fractions"])

    def volume_um3(self) -> float:
        return float(np.prod(self.shape)) * (self.voxel_size * 1e-4) ** 3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["fractions"] = self.resolved_fractions()
        d["vesicles"], d["filaments"] = self._extended_counts_expected()
        return d

    def _extended_counts_expected(self) -> tuple[float, float]:
        scale = self.volume_um3() / REFERENCE_VOLUME_UM3
        p = PRESETS[self.preset]
        ves = self.vesicles if self.vesicles is not None else p["vesicles"] * scale
        fil = self.filaments if self.filaments is not None else p["filaments"] * scale
        return ves, fil


@dataclass
class Simulation:
    """A simulated tomogram with its truth."""

    tomogram: np.ndarray
    scene: Scene
    config: SimulationConfig
    info: dict

    @property
    def particles(self) -> list[dict]:
        """Rows of particle objects (membranes and filaments excluded)."""
        return [o for o in self.scene.objects if o["class"] not in EXTENDED]

    def centres(self, name: str) -> np.ndarray:
        """``(N, 3)`` true centres (voxels) of the particles of class ``name``."""
        rows = [(o["z"], o["y"], o["x"]) for o in self.particles if o["class"] == name]
        return np.array(rows, dtype=np.float64).reshape(-1, 3)

    def diameters_angst(self) -> dict[str, float]:
        """Largest envelope extent of every particle class present, in Å."""
        vs = self.config.voxel_size
        names = {o["class"] for o in self.particles}
        return {n: round(template(n, vs).diameter_angst, 1) for n in sorted(names)}


def _register_map(name: str, path: str, voxel_size: float) -> None:
    """The map at ``path`` as the species ``name`` (see :func:`species.register_map`)."""
    from cryosam.io.tomogram import read_tomogram

    m = read_tomogram(Path(path))
    if m.voxel_size is None:
        raise CryosamError(f"{path}: its header has no voxel size; set it first")
    try:
        register_map(name, m.data, m.voxel_size, voxel_size)
    except ValueError as exc:
        raise CryosamError(f"{path}: {exc}") from None


def _count(rng: np.random.Generator, expected: float, fixed: bool) -> int:
    return int(round(expected)) if fixed else int(rng.poisson(expected))


def simulate(config: SimulationConfig | None = None, progress=None) -> Simulation:
    """Build a scene and image it. ``progress(stage: str)`` is called between stages."""
    config = config or SimulationConfig()
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    vs, shape = config.voxel_size, tuple(int(s) for s in config.shape)
    for name, path in (config.templates or {}).items():
        _register_map(name, path, vs)
    scene = empty_scene(shape)
    n_vox = float(np.prod(shape))
    exp_ves, exp_fil = config._extended_counts_expected()
    for _ in range(_count(rng, exp_ves, config.vesicles is not None)):
        radius = rng.uniform(25.0, min(80.0, 0.45 * min(shape) * vs / 10.0 + 25.0))
        add_vesicle(scene, vs, rng, radius, rng.uniform(25.0, 40.0))
    for _ in range(_count(rng, exp_fil, config.filaments is not None)):
        add_filament(scene, vs, rng, rng.uniform(100.0, 300.0))
    counts = {
        name: int(round(frac * n_vox / max(template(name, vs).volume_voxels, 1)))
        for name, frac in config.resolved_fractions().items()
    }
    if progress:
        progress("extended structures placed")
    placed = add_particles(scene, counts, vs, rng)
    t_scene = time.perf_counter() - t0
    if progress:
        progress("particles placed")
    tomogram, imaging_info = reconstruct_tomogram(scene.density, vs, config.imaging, rng)
    t_total = time.perf_counter() - t0
    info = {
        "requested": counts,
        "placed": placed,
        "envelope_fraction": envelope_fraction(scene),
        "timings_s": {"scene": round(t_scene, 2), "total": round(t_total, 2)},
        **imaging_info,
    }
    return Simulation(tomogram, scene, config, info)


def write_simulation(sim: Simulation, out_dir: str | Path, overwrite: bool = False) -> dict:
    """Write a simulation's files into ``out_dir``; returns name -> path.

    ``tomogram.mrc``, ``labels.mrc`` (class ids), ``instances.mrc``, ``density.mrc``
    (noise-free), ``particles.csv``, ``truth.json`` and ``preview.png``.
    """

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CryosamError(f"{out} exists and is not a folder; choose another --out")
    names = ["tomogram.mrc", "labels.mrc", "instances.mrc", "density.mrc", "particles.csv"]
    names += ["truth.json", "preview.png"]
    if not overwrite:
        existing = [n for n in names if (out / n).exists()]
        if existing:
            raise CryosamError(
                f"{out} already holds {', '.join(existing)}; pass --overwrite or another --out"
            )
    vs = sim.config.voxel_size
    scene = sim.scene
    paths = {
        "tomogram": write_volume(out / "tomogram.mrc", sim.tomogram, vs, overwrite=overwrite),
        "labels": write_volume(out / "labels.mrc", scene.labels, vs, kind="class", overwrite=True),
        "instances": write_volume(
            out / "instances.mrc", scene.instances, vs, kind="instance", overwrite=True
        ),
        "density": write_volume(out / "density.mrc", scene.density, vs, overwrite=True),
    }
    parts = sim.particles
    picks = Picks(
        [(o["z"], o["y"], o["x"]) for o in parts] if parts else np.zeros((0, 3)),
        class_name=[o["class"] for o in parts],
        instance=[o["instance"] for o in parts],
        angles=[(o["rot"], o["tilt"], o["psi"]) for o in parts] if parts else None,
        tomogram="tomogram.mrc",
    )
    paths["particles"] = write_picks_csv(out / "particles.csv", picks, overwrite=True)
    truth = {
        "config": sim.config.to_dict(),
        "class_ids": scene.class_ids,
        "targets": [t for t in TARGETS if t in scene.class_ids],
        "diameters_angst": sim.diameters_angst(),
        "extended_objects": [o for o in scene.objects if o["class"] in EXTENDED],
        "orientation_convention": (
            "rot, tilt, psi: intrinsic ZYZ Euler angles (degrees) of the rotation applied to "
            "the species template, written for (x, y, z) vectors"
        ),
        "snr_definition": (
            "variance of the noise-free reconstruction / variance of the noise reconstruction"
        ),
        **{k: v for k, v in sim.info.items() if k != "tilt_shifts_px"},
        "tilt_shifts_px": sim.info.get("tilt_shifts_px"),
    }
    paths["truth"] = write_text_atomic(
        out / "truth.json", json.dumps(truth, indent=1), overwrite=True
    )
    first_target = next((o for o in parts if o["class"] == "ribosome"), parts[0] if parts else None)
    centre = (
        None if first_target is None else (first_target["z"], first_target["y"], first_target["x"])
    )
    names_by_id = {i: n for n, i in scene.class_ids.items()}
    shown = np.isin(picks.class_name, TARGETS)  # circles on targets only, to stay readable
    paths["preview"] = write_preview(
        out / "preview.png",
        sim.tomogram,
        scene.labels,
        names_by_id,
        picks.zyx[shown],
        [scene.class_ids[c] for c in picks.class_name[shown]],
        centre=centre,
        title=(
            f"simulated tomogram {sim.tomogram.shape} at {vs:g} Å, SNR "
            f"{sim.info['tomogram_snr']:.2f}, {sim.info['envelope_fraction'] * 100:.1f} % "
            "protein/membrane (truth overlaid)"
        ),
        overwrite=True,
        voxel_size=vs,
    )
    return paths


__all__ = [
    "PRESETS",
    "Imaging",
    "Simulation",
    "SimulationConfig",
    "replace",
    "simulate",
    "write_simulation",
]
