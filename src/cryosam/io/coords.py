"""Every coordinate conversion between cryosam and file formats, in one place.

Inside cryosam a position is a voxel index ``(z, y, x)`` (float, 0-based, the
centre of voxel ``i`` is at ``i``). Files speak their own convention:

- RELION 3 / Warp / pytom STAR: ``rlnCoordinateX/Y/Z`` in pixels of the tomogram,
  the same 0-based indices, ordered x, y, z.
- RELION 5 STAR: ``rlnCenteredCoordinateX/Y/ZAngst`` in Å relative to the
  tomogram centre ``size / 2`` (float division, as RELION 5 and pytom-match-pick do).
- copick: ``location.x/y/z`` in Å from the origin of voxel 0 (index * voxel size).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from cryosam.errors import CryosamError


def _zyx(points) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


def _positive(voxel_size: float | None, what: str) -> float:
    if voxel_size is None or not np.isfinite(voxel_size) or voxel_size <= 0:
        raise CryosamError(f"{what} needs a positive voxel size in Å (pass --voxel-size)")
    return float(voxel_size)


def zyx_to_relion3_xyz(zyx) -> np.ndarray:
    """Voxel ``(z, y, x)`` -> RELION 3 ``(X, Y, Z)`` pixel coordinates."""
    return _zyx(zyx)[:, ::-1].copy()


def relion3_xyz_to_zyx(xyz) -> np.ndarray:
    """RELION 3 ``(X, Y, Z)`` pixels -> voxel ``(z, y, x)``."""
    return _zyx(xyz)[:, ::-1].copy()


def zyx_to_relion5_xyz_angst(zyx, shape_zyx, voxel_size: float) -> np.ndarray:
    """Voxel ``(z, y, x)`` -> RELION 5 centred ``(X, Y, Z)`` in Å.

    RELION 5 places a tomogram's centre at half its bin-1 size in tilt-series pixels, in
    floating point (``TomogramSet::loadTomogram``: ``centre = (w0 / 2.0, h0 / 2.0, d0 / 2.0)``
    from ``rlnTomoSize{X,Y,Z}``; ``ParticleSet::getPosition`` adds it to the centred
    coordinate over the pixel size), with voxel ``i`` at ``i * voxel_size`` Å: for a
    tomogram binned ``b`` times from ``rlnTomoSize = b * shape`` that is ``shape / 2`` voxels,
    odd sizes included (no half-voxel shift). A tomogram whose bin-1 size was not a multiple
    of its binning is off by the remainder's half. (RELION's subtomogram extraction projects
    with an integer-division centre, half a pixel away for odd sizes: RELION pull request
    1353; positions, which is what this converts, use the float one.)"""
    vs = _positive(voxel_size, "RELION 5 coordinates")
    centre = np.asarray(shape_zyx, dtype=np.float64) / 2.0
    return ((_zyx(zyx) - centre) * vs)[:, ::-1].copy()


def relion5_xyz_angst_to_zyx(xyz_angst, shape_zyx, voxel_size: float) -> np.ndarray:
    """RELION 5 centred ``(X, Y, Z)`` in Å -> voxel ``(z, y, x)``."""
    vs = _positive(voxel_size, "RELION 5 coordinates")
    centre = np.asarray(shape_zyx, dtype=np.float64) / 2.0
    return _zyx(xyz_angst)[:, ::-1] / vs + centre


def relion_euler_matrices(rot_tilt_psi) -> np.ndarray:
    """RELION's ``Euler_angles2matrix(rot, tilt, psi)`` per row: ``(N, 3, 3)`` on ``(x, y, z)``.

    RELION builds ``Rz(psi) Ry(tilt) Rz(rot)`` from passive rotations; that is the
    transpose of the active intrinsic ZYZ rotation with the same angles."""
    angles = np.asarray(rot_tilt_psi, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix().transpose(0, 2, 1)


def relion_angles_of_matrices(matrices) -> np.ndarray:
    """Inverse of :func:`relion_euler_matrices`: RELION ``(rot, tilt, psi)`` in degrees of
    rotation matrices ``(N, 3, 3)`` on ``(x, y, z)``."""
    A = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    return Rotation.from_matrix(A.transpose(0, 2, 1)).as_euler("ZYZ", degrees=True)


def relion_origin_shift_xyz(origin_xyz_angst, subtomo_rot_tilt_psi=None) -> np.ndarray:
    """The shift in Å that RELION subtracts from a particle's coordinate: its
    ``rlnOriginX/Y/ZAngst``, turned into the tomogram's frame by the subtomogram's own
    orientation (``rlnTomoSubtomogramRot/Tilt/Psi``) when there is one, as RELION 5's
    ``ParticleSet::getPosition`` does (``pos -= A_subtomogram * offset``)."""
    origin = np.asarray(origin_xyz_angst, dtype=np.float64).reshape(-1, 3)
    if subtomo_rot_tilt_psi is None:
        return origin
    mats = relion_euler_matrices(subtomo_rot_tilt_psi)
    return np.einsum("nij,nj->ni", mats, origin)


def zyx_to_angstrom_xyz(zyx, voxel_size: float) -> np.ndarray:
    """Voxel ``(z, y, x)`` -> ``(x, y, z)`` in Å (copick)."""
    vs = _positive(voxel_size, "Ångström coordinates")
    return _zyx(zyx)[:, ::-1] * vs


def angstrom_xyz_to_zyx(xyz_angst, voxel_size: float) -> np.ndarray:
    """``(x, y, z)`` in Å (copick) -> voxel ``(z, y, x)``."""
    vs = _positive(voxel_size, "Ångström coordinates")
    return _zyx(xyz_angst)[:, ::-1] / vs


def diameter_to_voxels(diameter_angst: float, voxel_size: float) -> float:
    """Particle diameter in Å -> voxels."""
    vs = _positive(voxel_size, "--diameter")
    if not np.isfinite(diameter_angst) or diameter_angst <= 0:
        raise CryosamError(f"--diameter must be a positive number of Å, got {diameter_angst}")
    return float(diameter_angst) / vs


def check_inside(zyx, shape_zyx, source: str = "point") -> None:
    """Refuse points outside the volume on any axis, naming the first.

    A point belongs to the voxel it rounds to, so ``[-0.5, size - 0.5)`` is inside: the
    upper bound is open (``size - 0.5`` rounds to ``size``, one past the last voxel)."""
    pts = _zyx(zyx)
    size = np.asarray(shape_zyx, dtype=np.float64)
    bad = np.flatnonzero(((pts < -0.5) | (pts >= size - 0.5)).any(axis=1))
    if len(bad):
        p = pts[bad[0]]
        raise CryosamError(
            f"{source} z,y,x={p[0]:g},{p[1]:g},{p[2]:g} is outside the volume of shape "
            f"(z, y, x) {tuple(int(s) for s in shape_zyx)}; points are 0-based voxel indices "
            "(z, y, x)"
        )
