"""Placing molecules in a volume: vesicles with membrane proteins, filaments, particles.

The scene is the noise-free truth: a density map (protein ~1, ice 0), a class
label map (molecular envelopes), an instance map and one row per object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from cryosam.simulate.species import (
    ATOM_SIGMA_NM,
    ENVELOPE_LEVEL,
    Ellipsoid,
    fill_union,
    render_points,
    rotate_template,
    template,
)

EXTENDED = ("membrane", "filament")
"""Classes that are not particles: no centre is picked for them."""

MEMBRANE_DENSITY = 1.0
"""Peak density of a lipid headgroup layer (protein interior ~1)."""


@dataclass
class Scene:
    """Noise-free truth of a simulated tomogram.

    Attributes:
        density: float32 ``(z, y, x)``, ice 0, protein interior ~1.
        labels: uint8 class ids (0 = ice), molecular envelopes.
        instances: uint32 instance ids (0 = none).
        class_ids: class name -> id used in ``labels``.
        objects: one dict per object (``instance, class, z, y, x, rot, tilt, psi``).
    """

    density: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    class_ids: dict[str, int]
    objects: list[dict] = field(default_factory=list)

    def class_id(self, name: str) -> int:
        if name not in self.class_ids:
            self.class_ids[name] = len(self.class_ids) + 1
        return self.class_ids[name]

    def next_instance(self) -> int:
        return len(self.objects) + 1


def _box(centre: np.ndarray, size: tuple[int, int, int], shape) -> tuple | None:
    """Slices of the volume and of a box of ``size`` centred at ``centre``; None if outside."""
    vol_sl, box_sl = [], []
    for c, n, s in zip(centre, size, shape):
        start = int(round(c)) - n // 2
        lo, hi = max(start, 0), min(start + n, s)
        if lo >= hi:
            return None
        vol_sl.append(slice(lo, hi))
        box_sl.append(slice(lo - start, hi - start))
    return tuple(vol_sl), tuple(box_sl)


def euler_zyz(rotation: Rotation | None) -> tuple[float, float, float]:
    """Intrinsic ZYZ Euler angles (degrees) of ``rotation`` written for ``(x, y, z)`` vectors.

    Rotations inside the simulator act on ``(z, y, x)`` vectors; reversing the axes
    gives the same rotation in the ``(x, y, z)`` frame that Euler conventions use.
    """
    if rotation is None:
        return (0.0, 0.0, 0.0)
    flip = np.eye(3)[::-1]
    matrix_xyz = flip @ rotation.as_matrix() @ flip
    return tuple(float(a) for a in Rotation.from_matrix(matrix_xyz).as_euler("zyz", True))


def place_object(
    scene: Scene,
    name: str,
    centre: np.ndarray,
    dens: np.ndarray,
    env: np.ndarray,
    rotation: Rotation | None,
    max_overlap: float = 0.0,
) -> bool:
    """Add one object's density and envelope at ``centre`` unless it overlaps others.

    The box centre lands on the voxel nearest ``centre``; that voxel is recorded.
    """
    centre = np.round(np.asarray(centre, dtype=np.float64))
    boxes = _box(centre, dens.shape, scene.density.shape)
    if boxes is None:
        return False
    vol_sl, box_sl = boxes
    env_b = env[box_sl]
    if not env_b.any():
        return False
    occupied = scene.instances[vol_sl][env_b] != 0
    if occupied.sum() > max_overlap * env_b.sum():
        return False
    inst = scene.next_instance()
    cid = scene.class_id(name)
    scene.density[vol_sl] += dens[box_sl]
    free = env_b & (scene.instances[vol_sl] == 0)
    scene.labels[vol_sl][free] = cid
    scene.instances[vol_sl][free] = inst
    rot, tilt, psi = euler_zyz(rotation)
    scene.objects.append(
        {
            "instance": inst,
            "class": name,
            "z": float(centre[0]),
            "y": float(centre[1]),
            "x": float(centre[2]),
            "rot": float(rot),
            "tilt": float(tilt),
            "psi": float(psi),
        }
    )
    return True


def add_particles(
    scene: Scene,
    counts: dict[str, int],
    voxel_size: float,
    rng: np.random.Generator,
    attempts_per_particle: int = 30,
    progress=None,
) -> dict[str, int]:
    """Place ``counts[name]`` randomly rotated copies of each species without overlap.

    Species go largest first. Centres are uniform in the volume, so particles may be cut
    by the borders. Returns how many of each were placed.
    """
    shape = np.asarray(scene.density.shape)
    order = sorted(counts, key=lambda n: -template(n, voxel_size).volume_voxels)
    placed = {}
    for name in order:
        tpl = template(name, voxel_size)
        want, got, tries = counts[name], 0, 0
        while got < want and tries < attempts_per_particle * max(want, 1):
            tries += 1
            centre = rng.uniform(0, 1, 3) * (shape - 1)
            if scene.instances[tuple(np.round(centre).astype(int))] != 0:
                continue
            rotation = Rotation.random(random_state=rng)
            dens, env = rotate_template(tpl, rotation)
            if place_object(scene, name, centre, dens, env, rotation):
                got += 1
                if progress is not None:
                    progress(1)
        placed[name] = got
    return placed


def add_vesicle(
    scene: Scene,
    voxel_size: float,
    rng: np.random.Generator,
    radius_nm: float,
    thickness_angst: float,
    protein_per_1000nm2: float = 1.5,
) -> bool:
    """A spherical lipid vesicle (bilayer ``thickness_angst`` thick) with proteins on it."""
    vs_nm = voxel_size / 10.0
    shape = np.asarray(scene.density.shape)
    half_t = thickness_angst / 20.0  # nm
    sigma = max(0.5, 0.25 * half_t)
    r_vox = (radius_nm + half_t + 3 * sigma) / vs_nm
    n = 2 * int(np.ceil(r_vox)) + 1
    centre = rng.uniform(0, 1, 3) * (shape - 1)
    grid = (np.indices((n, n, n), dtype=np.float32) - n // 2) * vs_nm
    r = np.sqrt(sum(g**2 for g in grid))
    d = r - radius_nm
    peak = half_t - sigma
    dens = MEMBRANE_DENSITY * (
        np.exp(-((d - peak) ** 2) / (2 * sigma**2)) + np.exp(-((d + peak) ** 2) / (2 * sigma**2))
    )
    env = np.abs(d) <= half_t
    if not place_object(scene, "membrane", centre, dens.astype(np.float32), env, None, 0.02):
        return False
    area = 4 * np.pi * radius_nm**2
    tpl = template("membrane_protein", voxel_size)
    n_prot = rng.poisson(area / 1000.0 * protein_per_1000nm2)
    for _ in range(n_prot):
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        pos = centre + normal * (radius_nm + half_t + 2.5) / vs_nm
        # the template's long axis is z ((1, 0, 0) in (z, y, x)): turn it onto the
        # normal after a random spin about it
        spin = Rotation.from_rotvec([rng.uniform(0, 2 * np.pi), 0.0, 0.0])
        align, _ = Rotation.align_vectors([normal], [[1.0, 0.0, 0.0]])
        rotation = align * spin
        dens_p, env_p = rotate_template(tpl, rotation)
        place_object(scene, "membrane_protein", pos, dens_p, env_p, rotation)
    return True


def add_filament(
    scene: Scene,
    voxel_size: float,
    rng: np.random.Generator,
    length_nm: float,
    max_tilt_deg: float = 30.0,
) -> bool:
    """An actin-like filament (double helix of subunits, ~8 nm wide) along a smooth curve."""
    vs_nm = voxel_size / 10.0
    shape = np.asarray(scene.density.shape)
    rise, twist, radius = 2.75, np.deg2rad(166.6), 2.6
    n_sub = max(2, int(length_nm / rise))
    tilt = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg))
    az = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.sin(tilt), np.cos(tilt) * np.sin(az), np.cos(tilt) * np.cos(az)])
    start = rng.uniform(0, 1, 3) * (shape - 1) * vs_nm
    subunit = fill_union(rng, [Ellipsoid((0, 0, 0), (2.2, 2.5, 2.2))])
    pts, pos = [], start - direction * n_sub * rise / 2
    for i in range(n_sub):
        direction = direction + rng.normal(0, 0.02, 3)  # persistence length of microns
        direction[0] *= 0.9  # stay roughly in the lamella plane
        direction /= np.linalg.norm(direction)
        pos = pos + direction * rise
        u = np.cross(direction, [0.0, 0.0, 1.0] if abs(direction[2]) < 0.9 else [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(direction, u)
        a = i * twist
        pts.append(subunit + pos + radius * (np.cos(a) * u + np.sin(a) * v))
    pts = np.concatenate(pts)
    lo = np.floor(pts.min(axis=0) / vs_nm - 3 * ATOM_SIGMA_NM / vs_nm - 2).astype(int)
    hi = np.ceil(pts.max(axis=0) / vs_nm + 3 * ATOM_SIGMA_NM / vs_nm + 2).astype(int)
    size = tuple(int(h - lo_) + 1 for h, lo_ in zip(hi, lo))
    dens = render_points(pts, voxel_size, shape=size, origin_nm=lo * vs_nm)
    centre = lo + np.asarray(size) // 2
    return place_object(scene, "filament", centre, dens, dens > ENVELOPE_LEVEL, None, 0.02)


def empty_scene(shape) -> Scene:
    """An empty scene of ``shape`` voxels."""
    return Scene(
        density=np.zeros(shape, dtype=np.float32),
        labels=np.zeros(shape, dtype=np.uint8),
        instances=np.zeros(shape, dtype=np.uint32),
        class_ids={},
    )


def envelope_fraction(scene: Scene) -> float:
    """Fraction of the volume inside any molecular envelope."""
    return float((scene.labels > 0).mean())
