"""The missing wedge: which Fourier components a tomogram lacks, read from the tomogram itself.

A tilt series about one axis (y in nearly every reconstruction; x in some) samples the
Fourier components within ``max_tilt`` of the plane at right angles to the beam; those more
than ``max_tilt`` from it (the wedge) are missing, and every particle is smeared along z by
their absence. A particle and the reference it is compared with share that smear only when
both are seen in the tomogram's frame: a reference turned by the rotation search carries its
smear turned with it. :meth:`Wedge.restrict` takes from a turned reference what the
tomogram could not have measured, as the constrained correlation of subtomogram averaging
does (Förster et al. 2008).

The wedge is found in the tomogram's own power spectrum (:func:`estimate_wedge`): over a
band of mid frequencies, the log power at each angle from the tilt plane is a plateau up to
the largest tilt and falls by orders of magnitude beyond it (dev tomograms and the real
EMPIAR-10499 reconstruction: ~60°, a fall of 7-8 in natural log).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft

from cryosam.volume.spectrum import central_cube, tapered

CROP = 128
"""The central box whose spectrum the wedge is read from spans up to this many voxels along
each axis (the whole axis where the volume is thinner)."""
BAND = (0.08, 0.3)
"""Frequencies (cycles per voxel) whose angular profile is read: above the particles' own
low-frequency structure, below the noise floor of interpolation."""
MIN_FALL = 2.0
"""The least fall of the log power (natural log: a factor of about 7) from the tilt plane
to the beam axis that counts as a missing wedge; a volume without one (a map, a simulated
scene without tilts) keeps its angular profile within a few tenths."""
STEP = 1.0
"""Angle bins of the profile, degrees."""
PAD = 2
"""A box is zero-padded to this many times its side before its spectrum is restricted, so
its edges do not wrap around."""
NARROW_BELOW = 55.0
"""``missing_wedge: narrow`` (the default) minds a wedge read from the tomogram only when its
largest tilt is under this many degrees: the dev tomograms' +-60° read as 62° and the real
EMPIAR-10499 reconstruction's as 60°, where minding it costs a little; +-45° and +-50° copies
of dev1 read as 46° and 50°, where it gains (README, "A narrower tilt range")."""


@dataclass(frozen=True)
class Wedge:
    """A tilt series about ``axis`` (``"y"`` or ``"x"``) from ``-max_tilt`` to ``max_tilt``
    degrees."""

    axis: str
    max_tilt: float

    def spec(self) -> str:
        """As ``missing_wedge`` is written: ``"y:60"``."""
        return f"{self.axis}:{self.max_tilt:g}"

    @classmethod
    def parse(cls, text: str) -> Wedge | None:
        """``"y:60"`` / ``"x:45"`` -> a wedge, ``"off"`` -> None."""
        if text == "off":
            return None
        axis, _, angle = text.partition(":")
        return cls(axis, float(angle))

    def sampled(self, n: int) -> np.ndarray:
        """Boolean ``(n, n, n // 2 + 1)`` mask of the real-input spectrum of an ``n``-sided
        box (``scipy.fft.rfftn`` order): the components the tilt series measured."""
        return self.sampled_turned(n, np.eye(3))

    def sampled_turned(self, n: int, matrix: np.ndarray) -> np.ndarray:
        """:meth:`sampled` for a box turned back by ``matrix`` (sampled at ``matrix @ x``, as
        :func:`~cryosam.method.verify.rotate_box` turns it): its spectrum at ``k`` is the
        original's at ``matrix @ k``, so that is where the measured components are."""
        k = np.stack(
            np.meshgrid(fft.fftfreq(n), fft.fftfreq(n), fft.rfftfreq(n), indexing="ij"), -1
        )
        kz, ky, kx = np.moveaxis(k @ np.asarray(matrix, np.float64).T, -1, 0)
        across = np.abs(kx) if self.axis == "y" else np.abs(ky)
        return np.abs(kz) <= np.tan(np.radians(self.max_tilt)) * across + 1e-9

    def restrict(self, box: np.ndarray, sampled: np.ndarray | None = None) -> np.ndarray:
        """``box`` (a cube, in the tomogram's frame) without the components the tilt series
        could not have measured: its mean kept, the box zero-padded to :data:`PAD` times its
        side first. ``sampled`` is :meth:`sampled` of the padded side, when already made."""
        n = box.shape[0]
        m = PAD * n
        mean = float(box.mean())
        if sampled is None:
            sampled = self.sampled(m)
        spec = fft.rfftn(box - mean, s=(m, m, m)) * sampled
        return (fft.irfftn(spec, s=(m, m, m))[:n, :n, :n] + mean).astype(np.float32)


def angular_profile(cube: np.ndarray, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """``(angles, median log power)`` of ``cube``'s spectrum in :data:`BAND`, by the angle
    (degrees, 0-90) of each component from the tilt plane of a tilt about ``axis``."""
    c = tapered(cube)
    power = np.abs(fft.fftn(c, workers=-1)) ** 2
    kz, ky, kx = np.meshgrid(*(fft.fftfreq(n) for n in c.shape), indexing="ij", sparse=True)
    across = np.abs(kx) if axis == "y" else np.abs(ky)
    r = np.broadcast_to(np.sqrt(across**2 + kz**2), power.shape)
    phi = np.broadcast_to(np.degrees(np.arctan2(np.abs(kz), across)), power.shape)
    sel = (r > BAND[0]) & (r < BAND[1]) & (power > 0)
    logp, phi = np.log(power[sel]), phi[sel]
    edges = np.arange(0.0, 90.0 + STEP, STEP)
    which = np.clip(np.digitize(phi, edges) - 1, 0, len(edges) - 2)
    prof = np.full(len(edges) - 1, np.nan)
    for i in np.unique(which):
        prof[i] = np.median(logp[which == i])
    return edges[:-1] + STEP / 2, prof


def _read(angles: np.ndarray, prof: np.ndarray) -> tuple[float, float]:
    """``(fall, max tilt)`` of one angular profile: the fall from the plateau (angles under
    30°) to the floor (over 80°), and the angle where the power first drops to half the
    plateau's (linearly interpolated). Half the power, not half the fall in log: the cube's
    taper smooths the wedge's sharp edge, and the log's midpoint lies out in that tail (dev1
    narrowed to 45°, 50° and 35°: read as 51°, 55° and 42° at the log's midpoint, 46°, 50°
    and 34° at half the power; the dev tomograms' 60° as 62°)."""
    plateau = float(np.nanmedian(prof[angles < 30]))
    floor = float(np.nanmedian(prof[angles > 80]))
    fall = plateau - floor
    half = plateau - np.log(2.0)
    below = np.flatnonzero((prof < half) & (angles >= 30))
    if not len(below) or below[0] == 0:
        return fall, 90.0
    i = below[0]
    a0, a1, p0, p1 = angles[i - 1], angles[i], prof[i - 1], prof[i]
    t = (p0 - half) / (p0 - p1) if p0 != p1 else 0.5
    return fall, float(a0 + t * (a1 - a0))


def estimate_wedge(volume) -> Wedge | None:
    """The tilt axis (y or x) and largest tilt, read from the spectrum of the volume's
    central box of up to :data:`CROP` voxels a side (``volume``: an array or a lazy view that
    slices); ``None`` where neither axis's profile falls by :data:`MIN_FALL` (no wedge to
    mind). The tilt is rounded to the nearest degree."""
    cube = central_cube(volume, CROP)
    if cube is None:
        return None
    best = None
    for axis in ("y", "x"):
        fall, tilt = _read(*angular_profile(cube, axis))
        if fall >= MIN_FALL and (best is None or fall > best[0]):
            best = (fall, axis, tilt)
    if best is None or best[2] >= 89.0:
        return None
    return Wedge(best[1], float(round(best[2])))


def wedge_to_mind(setting: str, volume) -> Wedge | None:
    """The wedge verification minds under ``missing_wedge`` = ``setting``: ``auto`` the one
    read from ``volume``, ``narrow`` that one only when its largest tilt is under
    :data:`NARROW_BELOW`, ``off`` none, ``y:45`` the one given."""
    if setting in ("auto", "narrow"):
        wedge = estimate_wedge(volume)
        if setting == "narrow" and wedge is not None and wedge.max_tilt >= NARROW_BELOW:
            return None
        return wedge
    return Wedge.parse(setting)
