"""Particle species of the simulator, built from pseudo-atoms.

Each species is a fixed cloud of pseudo-atoms (points in nm, ``(z, y, x)``, drawn
once from a seed derived from the species' name, so every copy of a species is the
same molecule), rendered on a voxel grid as smooth density (interior ~1, ice 0).
Shapes are chosen so that size alone cannot tell targets from look-alikes:

===================  =========  ==================================================
name                 size       what it is
===================  =========  ==================================================
ribosome             ~25 nm     two unequal subunits with a cleft and a stalk
proteasome           15 x 11    hollow barrel of four 7-fold rings (open lumen)
double_ring          15 x 8     two 7-fold rings (distractor for the barrel)
ball                 ~11 nm     compact globule
lsu                  ~21 nm     isolated large ribosomal subunit (look-alike)
dimer_small          ~18 nm     smaller two-subunit complex (look-alike)
dimer_large          ~30 nm     larger two-subunit complex (look-alike)
cage                 ~13 nm     hollow spherical shell (apoferritin-like)
rod                  28 x 9     elongated complex
small_protein        ~7 nm      crowding background
membrane_protein     8 x 6      protein sitting on a membrane (placed by the scene)
===================  =========  ==================================================
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation

from cryosam.volume.resample import resample_map

POINTS_PER_NM3 = 4.0
"""Pseudo-atom density; with :data:`ATOM_SIGMA_NM` it sets the interior texture."""
ATOM_SIGMA_NM = 0.8
"""Gaussian width of a pseudo-atom (nm)."""
ENVELOPE_LEVEL = 0.2
"""Iso-level (interior density ~1) that defines a particle's molecular envelope."""


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


@dataclass(frozen=True)
class Ellipsoid:
    """Solid ellipsoid (nm): centre ``(z, y, x)``, semi-axes, optional rotation."""

    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    rotation: Rotation | None = None

    def contains(self, pts: np.ndarray) -> np.ndarray:
        local = pts - np.asarray(self.centre)
        if self.rotation is not None:
            local = self.rotation.inv().apply(local)
        return ((local / np.asarray(self.semi)) ** 2).sum(axis=1) <= 1.0

    def radius(self) -> float:
        return float(np.linalg.norm(self.centre) + max(self.semi))


@dataclass(frozen=True)
class Shell:
    """Spherical shell (nm) centred on the origin."""

    r_inner: float
    r_outer: float

    def contains(self, pts: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(pts, axis=1)
        return (r >= self.r_inner) & (r <= self.r_outer)

    def radius(self) -> float:
        return self.r_outer


def fill_union(rng: np.random.Generator, parts) -> np.ndarray:
    """Uniform pseudo-atoms inside the union of ``parts`` (overlaps are not doubled)."""
    half = max(p.radius() for p in parts)
    n = int(round(POINTS_PER_NM3 * (2 * half) ** 3))
    pts = rng.uniform(-half, half, (n, 3))
    inside = np.zeros(n, dtype=bool)
    for part in parts:
        inside |= part.contains(pts)
    return pts[inside]


def ring(n_sub: int, radius: float, z: float, semi, phase: float = 0.0) -> list[Ellipsoid]:
    """``n_sub`` ellipsoidal subunits on a ring around the z axis at height ``z``."""
    parts = []
    for k in range(n_sub):
        a = phase + 2 * np.pi * k / n_sub
        rot = Rotation.from_euler("x", -a)  # subunit's local y follows the ring tangent
        parts.append(Ellipsoid((z, radius * np.sin(a), radius * np.cos(a)), semi, rot))
    return parts


def _ribosome_lsu() -> list:
    return [
        Ellipsoid((-3.0, 0.0, 0.0), (8.0, 10.0, 9.0)),
        Ellipsoid((-1.0, 8.5, 8.0), (2.0, 2.0, 4.0), Rotation.from_euler("z", 30, True)),
        Ellipsoid((-7.0, -7.5, 6.0), (3.0, 3.0, 3.0)),
    ]


def _ribosome() -> list:
    ssu = Ellipsoid((8.0, 1.5, -1.5), (4.2, 8.5, 6.0), Rotation.from_euler("x", 20, True))
    head = Ellipsoid((9.0, -7.0, -3.0), (3.0, 3.5, 3.5))
    return _ribosome_lsu() + [ssu, head]


def _barrel(n_rings: int, radius: float, spacing: float, semi) -> list:
    zs = (np.arange(n_rings) - (n_rings - 1) / 2.0) * spacing
    return [e for i, z in enumerate(zs) for e in ring(7, radius, z, semi, phase=0.2 * i)]


def _rod() -> list:
    return [
        Ellipsoid((z, 0.0, 0.4 * (-1) ** i), (2.8, 4.2 if i % 2 == 0 else 3.6, 4.0))
        for i, z in enumerate(np.linspace(-10.0, 10.0, 6))
    ]


BUILDERS = {
    "ribosome": _ribosome,
    "proteasome": lambda: _barrel(4, 4.0, 3.6, (1.7, 1.9, 1.9)),
    "double_ring": lambda: _barrel(2, 5.6, 4.0, (1.9, 2.3, 2.0)),
    "ball": lambda: [Ellipsoid((0, 0, 0), (5.5, 5.3, 5.6))],
    "lsu": _ribosome_lsu,
    "dimer_small": lambda: [
        Ellipsoid((0, 0, -4.0), (5.0, 5.0, 5.0)),
        Ellipsoid((0, 0.5, 4.8), (4.0, 4.0, 4.0)),
    ],
    "dimer_large": lambda: [
        Ellipsoid((0, 0, -6.5), (8.5, 8.5, 8.5)),
        Ellipsoid((1.0, 0, 8.0), (6.5, 6.0, 6.5)),
    ],
    "cage": lambda: [Shell(4.6, 6.5)],
    "rod": _rod,
    "small_protein": lambda: [
        Ellipsoid((0, 0, -0.8), (2.5, 2.8, 2.6)),
        Ellipsoid((0.5, 0.5, 1.6), (2.0, 2.0, 2.2)),
    ],
    "membrane_protein": lambda: [
        Ellipsoid((-1.0, 0, 0), (3.0, 3.0, 3.0)),
        Ellipsoid((2.5, 0, 0), (1.8, 2.0, 2.0)),
    ],
}

TARGETS = ("ribosome", "proteasome", "ball")
"""Species a benchmark asks to pick; the others are look-alikes and crowding."""


@dataclass(frozen=True)
class Template:
    """A species rendered at one voxel size.

    Attributes:
        name: species name.
        density: ``(n, n, n)`` float32, centre of mass at the box centre.
        envelope: boolean molecular envelope (``density > ENVELOPE_LEVEL``).
        diameter_angst: largest extent of the envelope in Å.
    """

    name: str
    density: np.ndarray
    envelope: np.ndarray
    diameter_angst: float

    @property
    def volume_voxels(self) -> int:
        return int(self.envelope.sum())


def species_points(name: str) -> np.ndarray:
    """The fixed pseudo-atom cloud of a species, centred on its centre of mass (nm)."""
    if name not in BUILDERS:
        raise KeyError(name)
    pts = fill_union(_rng(name), BUILDERS[name]())
    return pts - pts.mean(axis=0)


def render_points(points_nm: np.ndarray, voxel_size: float, shape=None, origin_nm=None):
    """Splat pseudo-atoms (trilinear) and smooth them into density (interior ~1).

    Args:
        points_nm: ``(N, 3)`` positions in nm ``(z, y, x)``.
        voxel_size: Å per voxel.
        shape, origin_nm: output grid; by default a cube centred on the origin that
            holds every point with a margin.
    """
    vs_nm = voxel_size / 10.0
    if shape is None:
        half = np.abs(points_nm).max() + 3 * ATOM_SIGMA_NM + vs_nm
        n = 2 * int(np.ceil(half / vs_nm)) + 1
        shape = (n, n, n)
        origin_nm = -np.full(3, (n // 2) * vs_nm)
    grid = np.zeros(shape, dtype=np.float32)
    idx = (points_nm - np.asarray(origin_nm)) / vs_nm
    base = np.floor(idx).astype(np.int64)
    frac = idx - base
    weight = 1.0 / (POINTS_PER_NM3 * vs_nm**3)
    for corner in np.ndindex(2, 2, 2):
        c = np.asarray(corner)
        w = np.prod(np.where(c, frac, 1 - frac), axis=1) * weight
        pos = base + c
        ok = np.all((pos >= 0) & (pos < np.asarray(shape)), axis=1)
        np.add.at(grid, tuple(pos[ok].T), w[ok].astype(np.float32))
    return ndimage.gaussian_filter(grid, ATOM_SIGMA_NM / vs_nm, mode="constant")


def _as_template(name: str, dens: np.ndarray, voxel_size: float) -> Template:
    env = dens > ENVELOPE_LEVEL
    surface = np.argwhere(env & ~ndimage.binary_erosion(env)).astype(np.float64)
    extent = float(pdist(surface).max()) + 1.0 if len(surface) > 1 else 1.0
    dens.setflags(write=False)
    env.setflags(write=False)
    return Template(name, dens, env, float(extent * voxel_size))


_MAPS: dict[tuple[str, float], Template] = {}
"""Species made from density maps (:func:`register_map`), by name and voxel size."""


def template(name: str, voxel_size: float) -> Template:
    """The species ``name`` at ``voxel_size`` Å: a registered map, else rendered (cached)."""
    known = _MAPS.get((name, float(voxel_size)))
    return known if known is not None else _rendered(name, float(voxel_size))


@lru_cache(maxsize=64)
def _rendered(name: str, voxel_size: float) -> Template:
    return _as_template(name, render_points(species_points(name), voxel_size), voxel_size)


def map_template(name: str, density, map_voxel_size: float, voxel_size: float) -> Template:
    """A molecule's density map (protein bright; any voxel size and box, e.g. from EMDB or
    ``molmap``) as a species at ``voxel_size`` Å: low-passed to the new sampling and
    resampled, its background (the median of the box's faces) set to 0 and its interior
    (above a tenth of its peak) scaled to ~1 as the rendered species' are, its centre of
    mass moved to the centre of an odd cube. Raises ``ValueError`` for a map with no
    density above its background."""
    m = np.clip(resample_map(density, map_voxel_size, voxel_size).astype(np.float64), 0, None)
    if not m.max() > 0:
        raise ValueError(f"{name}: the map has no density above its background")
    m /= float(np.median(m[m > 0.1 * m.max()]))
    n = 2 * (max(m.shape) // 2) + 1 + 4  # room to centre it
    box = np.zeros((n, n, n))
    lo = [(n - s) // 2 for s in m.shape]
    box[tuple(slice(a, a + s) for a, s in zip(lo, m.shape))] = m
    shift = (n - 1) / 2.0 - np.asarray(ndimage.center_of_mass(box))
    box = ndimage.shift(box, shift, order=1)
    return _as_template(name, box.astype(np.float32), voxel_size)


def register_map(name: str, density, map_voxel_size: float, voxel_size: float) -> Template:
    """Make the map a species of that name for simulations at ``voxel_size``."""
    tpl = map_template(name, density, map_voxel_size, voxel_size)
    _MAPS[(name, float(voxel_size))] = tpl
    return tpl


def rotate_template(tpl: Template, rotation: Rotation) -> tuple[np.ndarray, np.ndarray]:
    """Density and envelope of ``tpl`` rotated about its box centre.

    ``rotation`` acts on ``(z, y, x)`` vectors (nm or voxels alike).
    """
    n = np.asarray(tpl.density.shape)
    centre = (n - 1) / 2.0
    inv = rotation.inv().as_matrix()
    offset = centre - inv @ centre
    dens = ndimage.affine_transform(tpl.density, inv, offset=offset, order=1, mode="constant")
    return dens, dens > ENVELOPE_LEVEL
