"""Orientations: each pick's rotation relative to its class's reference.

Shape verification already finds each candidate's best rotation, but on a coarse grid over
half of all rotations (what its score needs). For the picks that are kept this stage
searches every rotation, then refines locally:

1. **Global.** The reference rotated by every rotation of a full grid
   ``orient_angle_step`` apart is correlated with each pick's binned box (the weighted
   Pearson correlation of verification, under the rotated soft mask) at its centre, with
   shifts of ``verify_shift`` binned voxels; the ``TOP_STARTS`` best rotations go on.
2. **Local.** Each box is turned back by its best rotation so far and correlated with the
   reference turned by small rotations (balls of rotation vectors ``LOCAL_LEVELS`` of the
   step apart), with the same shifts; the best small rotation is composed in. The first
   level runs from every start and the best goes on; four levels end at 1/24 of the step.

A rotation ``M`` (acting on ``(z, y, x)`` vectors) says the pick is the reference turned by
``M``: ``pick(x) = reference(M^T x)``, so turning the pick back by ``M`` and averaging
reproduces the reference. :func:`relion_angles` writes ``M`` as RELION's ``(rot, tilt, psi)``
(the rotation that turns the reference into the particle, in ``x, y, z``).
"""

from __future__ import annotations

import re

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cryosam.config import Config
from cryosam.io.coords import relion_angles_of_matrices
from cryosam.method.rotations import local_grid, rotation_grid
from cryosam.method.verify import Reference, ShapeVerifier, fit_box, rotate_box
from cryosam.volume.binning import block_mean, extract_boxes
from cryosam.volume.wedge import PAD

TOP_STARTS = 2
"""The global search keeps this many best rotations; each is refined locally and the best
goes on (a near-symmetric particle's second-best rotation may be the right one)."""
LOCAL_LEVELS = (1 / 3, 1 / 6, 1 / 12, 1 / 24)
"""The local searches' steps, as fractions of ``orient_angle_step`` (each reaching two steps:
the first covers the global grid's largest gap, about two thirds of its step)."""


def orient(volume, zyx, reference: Reference, diameter_px: float, config: Config):
    """Each point's rotation relative to ``reference``: ``(matrices (N, 3, 3), correlation)``.

    ``volume`` is the prepared (bright-protein) volume the reference was made from;
    ``diameter_px`` the size it was made with (its box and binning follow from it)."""
    zyx = np.asarray(zyx, np.float64).reshape(-1, 3)
    if not len(zyx):
        return np.zeros((0, 3, 3)), np.zeros(0)
    grid = rotation_grid(config.orient_angle_step, full=True).as_matrix()
    coarse = ShapeVerifier(volume, diameter_px, config, rotations=grid)
    ref = coarse.fit(reference)
    n, s = coarse.n, config.verify_shift
    boxes = extract_boxes(volume, zyx, n + 2 * s, coarse.bin)
    starts = np.zeros((len(zyx), TOP_STARTS), int)
    for i0 in range(0, len(zyx), coarse.chunk):
        r = coarse.correlations(ref, boxes[i0 : i0 + coarse.chunk]).max(axis=2)
        starts[i0 : i0 + len(r)] = np.argsort(-r, axis=1)[:, :TOP_STARTS]
    corr = np.full(len(zyx), -np.inf)
    M = np.tile(np.eye(3), (len(zyx), 1, 1))
    wedge = coarse.wedge
    for j in range(TOP_STARTS):  # the first local level from each start; the best goes on
        Mj, cj = _local(volume, diameter_px, config, ref, boxes, grid[starts[:, j]], 0, wedge)
        better = cj > corr
        M[better], corr[better] = Mj[better], cj[better]
    for level in range(1, len(LOCAL_LEVELS)):
        M, corr = _local(volume, diameter_px, config, ref, boxes, M, level, wedge)
    return M, corr


def _local(volume, diameter_px, config, ref, boxes, M, level: int, wedge):
    """One local level: each box turned back by its ``M`` and correlated with the reference
    turned by the small rotations of ``LOCAL_LEVELS[level]`` (and shifts): ``(M, corr)``.
    With a missing ``wedge`` (the global search's, read once) the reference first loses, for
    each box, what that box's tilt series did not measure, turned back with the box (the
    small rotations move it by a few degrees at most)."""
    deltas = local_grid(LOCAL_LEVELS[level] * config.orient_angle_step)
    fine = ShapeVerifier(volume, diameter_px, config, rotations=deltas, restrict=False)
    turned = np.stack([rotate_box(b, m) for b, m in zip(boxes, M)])
    if wedge is None:
        corr, align = fine.score_boxes(ref, turned)
        return M @ deltas[align[:, 0]], corr
    t = ref.template
    lost = np.stack([t - wedge.restrict(t, wedge.sampled_turned(PAD * fine.n, m)) for m in M])
    corr, align = fine.score_boxes(ref, turned, lost=lost)
    return M @ deltas[align[:, 0]], corr


def average_reference(mean: np.ndarray, reference: Reference, volume, diameter_px, config):
    """The aligned average of the picks (:func:`average`, the reference's frame, the volume's
    sampling) as a reference binned as ``reference`` is, with its soft mask: what a second
    orientation round aligns to (``n_particles`` stays the reference's)."""
    v = ShapeVerifier(volume, diameter_px, config)
    ref = v.fit(reference)
    box = fit_box(np.asarray(mean, np.float32), v.n * v.bin)
    template = block_mean(box, v.bin)
    template = (template - template.mean()) / max(float(template.std()), 1e-6)
    return Reference(template.astype(np.float32), ref.weight, v.bin, ref.n_particles, ref.typical)


def zyx_to_xyz_matrices(M) -> np.ndarray:
    """Rotations acting on ``(z, y, x)`` vectors as the same rotations on ``(x, y, z)``."""
    P = np.eye(3)[::-1]
    return P @ np.asarray(M, np.float64) @ P


def relion_angles(M) -> np.ndarray:
    """RELION ``(rot, tilt, psi)`` in degrees of rotations ``M`` on ``(z, y, x)`` vectors.

    RELION's ``Euler_angles2matrix(rot, tilt, psi)`` is the matrix ``A`` with
    ``particle(x) = reference(A^T x)`` in ``x, y, z``; it equals the transpose of scipy's
    intrinsic ``ZYZ`` matrix of the same angles (``io.coords.relion_euler_matrices``)."""
    return relion_angles_of_matrices(zyx_to_xyz_matrices(M))


def _turned_back(volume, zyx, matrices, size: int):
    """Each particle at ``zyx`` (float voxel centres) turned back by its rotation ``M``
    (``pick(x) = reference(M^T x)``): ``size``-sided boxes at the volume's sampling, in the
    reference's frame, one at a time. Each is read with room for the rotation's corners and
    sampled once (linear), its sub-voxel centre included."""
    half = (size - 1) / 2.0
    pad = int(np.ceil(half * np.sqrt(3))) + 2
    for p, M in zip(np.asarray(zyx, np.float64).reshape(-1, 3), np.asarray(matrices, np.float64)):
        c = np.floor(p).astype(int)
        box = extract_boxes(volume, [c], 2 * pad + 1)[0]  # centred on c: index pad + shift
        offset = pad + (p - c) - M @ np.full(3, half)
        yield ndimage.affine_transform(box, M, offset=offset, output_shape=(size,) * 3, order=1)


def average(volume, zyx, matrices, size: int) -> np.ndarray:
    """The aligned average of the particles at ``zyx``, each turned back by its rotation (a
    ``size``-sided box at the volume's sampling, in the reference's frame)."""
    matrices = np.asarray(matrices, np.float64).reshape(-1, 3, 3)
    total = np.zeros((size,) * 3, np.float64)
    for box in _turned_back(volume, zyx, matrices, size):
        total += box
    return (total / max(len(matrices), 1)).astype(np.float32)


def average_correlations(volume, zyx, matrices, mean: np.ndarray, radius: float) -> np.ndarray:
    """Each particle's Pearson correlation, inside a ball of ``radius`` voxels, with the
    average of the others (``mean``, the :func:`average` of all, less its own share): how
    well it agrees with the rest of the picks. NaN for a single particle."""
    matrices = np.asarray(matrices, np.float64).reshape(-1, 3, 3)
    n, size = len(matrices), mean.shape[0]
    out = np.full(n, np.nan)
    if n < 2:
        return out
    ball = np.sum((np.indices(mean.shape) - (size - 1) / 2.0) ** 2, axis=0) <= radius**2
    total = n * np.asarray(mean, np.float64)[ball]
    for k, box in enumerate(_turned_back(volume, zyx, matrices, size)):
        own = box[ball]
        out[k] = np.corrcoef(own, (total - own) / (n - 1))[0, 1]
    return out


AXIS_DIRECTIONS = 600
"""The symmetry-axis search scores this many directions over a hemisphere (~6° apart), then
refines around the best (:func:`symmetry_frame`)."""


def _parse_group(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"([CD])([1-9][0-9]*)", name.strip().upper())
    if m is None:
        raise ValueError(f"symmetry {name!r}: give Cn or Dn (C1, C7, D7, ...)")
    return m.group(1), int(m.group(2))


def _hemisphere(n: int, cap: float = np.pi / 2) -> np.ndarray:
    """``n`` roughly even unit vectors within ``cap`` radians of ``(1, 0, 0)``."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1 - (1 - np.cos(cap)) * i / n)
    azim = np.pi * (1 + 5**0.5) * i
    return np.stack(
        [np.cos(polar), np.sin(polar) * np.cos(azim), np.sin(polar) * np.sin(azim)], axis=1
    )


def _frame_of(u: np.ndarray) -> np.ndarray:
    """A rotation taking ``(1, 0, 0)`` to ``u`` (columns: ``u`` and two unit vectors at right
    angles to it, the third the nearest to ``(0, 0, 1)``)."""
    u = u / np.linalg.norm(u)
    ref = np.array([0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    q2 = ref - (ref @ u) * u
    q2 /= np.linalg.norm(q2)
    return np.stack([u, np.cross(q2, u), q2], axis=1)


def symmetry_frame(volume: np.ndarray, group: str, radius: float) -> np.ndarray:
    """The rotation ``Q`` (on ``(z, y, x)`` vectors) that puts ``volume``'s symmetry axes where
    :func:`symmetry_group` has them: ``rotate_box(volume, Q)`` (the volume sampled at ``Q x``)
    has its n-fold axis along z and, for ``Dn``, a two-fold along x. Each axis is the one
    whose turn (by ``2 pi / n``; by ``pi`` about a two-fold at right angles) best reproduces
    the volume inside ``radius`` voxels of its centre: directions over a hemisphere, then
    finer within a cone around the best, then for ``Dn`` the two-fold's angle about the axis
    in 1° steps. For ``Cn`` the axis points to the end where the density reaches out
    further (the third moment of the positive density along it: the first is about zero for
    a particle centred on its mass), so that volumes of one particle (each tomogram's average
    in a batch) get one frame; the turn about it is not given by the volume (the frame is
    the one nearest the volume's own)."""
    kind, n = _parse_group(group)
    v = np.asarray(volume, np.float32)
    size = v.shape[0]
    ball = np.sum((np.indices(v.shape) - (size - 1) / 2.0) ** 2, axis=0) <= radius**2
    inside = v[ball]

    def agreement(axis, angle):
        turn = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
        return np.corrcoef(inside, rotate_box(v, turn)[ball])[0, 1]

    u = np.array([1.0, 0.0, 0.0])
    if n > 1:
        dirs = _hemisphere(AXIS_DIRECTIONS)
        u = dirs[int(np.argmax([agreement(d, 2 * np.pi / n) for d in dirs]))]
        cone = _frame_of(u) @ _hemisphere(200, np.deg2rad(8.0)).T
        u = cone.T[int(np.argmax([agreement(d, 2 * np.pi / n) for d in cone.T]))]
        offsets = (np.indices(v.shape) - (size - 1) / 2.0)[:, ball]
        if kind == "C" and float(np.clip(inside, 0, None) @ (u @ offsets) ** 3) < 0:
            u = -u
    Q = _frame_of(u)
    if kind == "D":
        a, b = Q[:, 1], Q[:, 2]
        phis = np.deg2rad(np.arange(0.0, 180.0 / n, 1.0))
        best = phis[int(np.argmax([agreement(np.cos(p) * b + np.sin(p) * a, np.pi) for p in phis]))]
        q2 = np.cos(best) * b + np.sin(best) * a
        Q = np.stack([u, np.cross(q2, u), q2], axis=1)
    return Q


def symmetry_agreement(volume: np.ndarray, ops) -> float:
    """How well ``volume`` is symmetric under ``ops`` (all but the identity, its first): the
    mean Pearson correlation, over the voxels above a tenth of its range, of the volume with
    itself turned by each."""
    v = np.asarray(volume, np.float32)
    inside = v > v.min() + 0.1 * (v.max() - v.min())
    if len(ops) < 2 or inside.sum() < 8:
        return 1.0
    return float(np.mean([np.corrcoef(v[inside], rotate_box(v, S)[inside])[0, 1] for S in ops[1:]]))


def symmetry_group(name: str) -> np.ndarray:
    """``(K, 3, 3)`` rotations on ``(z, y, x)`` vectors of point group ``Cn`` or ``Dn`` in the
    EMDB / RELION frame of a map: the n-fold axis along z, a ``Dn`` two-fold along x."""
    kind, n = _parse_group(name)
    turns = [Rotation.from_rotvec([0.0, 0.0, 2 * np.pi * k / n]) for k in range(n)]
    flips = [Rotation.identity()]
    if kind == "D":
        flips.append(Rotation.from_rotvec([np.pi, 0.0, 0.0]))
    xyz = np.array([(t * f).as_matrix() for t in turns for f in flips])
    return zyx_to_xyz_matrices(xyz)  # the axis swap is its own inverse


def canonical(M, ops) -> np.ndarray:
    """Each rotation ``M`` replaced by its symmetry-equivalent ``M S`` nearest the identity
    (the reference is the same turned by any ``S`` of its group)."""
    M = np.asarray(M, np.float64).reshape(-1, 3, 3)
    cand = np.einsum("nij,kjl->nkil", M, np.asarray(ops, np.float64))
    best = np.trace(cand, axis1=2, axis2=3).argmax(1)
    return cand[np.arange(len(M)), best]


def symmetrize(volume: np.ndarray, ops) -> np.ndarray:
    """The mean of ``volume`` turned by every rotation of its group (about the box centre)."""
    return np.mean([rotate_box(np.asarray(volume, np.float32), S) for S in ops], axis=0)
