"""Clicks moved to the centre of the particle they were made on.

A user clicks somewhere on a particle, often a quarter diameter off its centre, and in a
crowded cell the prompt's mask then leaks into a neighbour: the reference box and the feature
query sit between two particles and every later stage inherits it (dev2 ribosome, a quarter
diameter off: one click gave F1 0.27 where the centred click gave 0.64). Before anything is
made from a click, it moves to the strongest particle-sized blob within ``prompt_snap``
diameters of it: the peak of the scale-normalised Laplacian of Gaussian (sigma = 0.35 of the
diameter, on the protein-bright prepared volume), which lies at a compact particle's density
centre. Measured on the development tomograms (ribosome and 20S proteasome, five clicks each,
dev1-dev3): centred and quarter-diameter clicks both land 1-5 voxels from the listed centre
(the ribosome's listed centre is ~3 voxels from its density centre), mostly on the same voxel.

A click moves only when it sits on the particle's flank or beside it: when the blob response
under it is less than :data:`SNAP_WEAK` of the peak's within reach. Moving every click (stop
29, and again at stop 38 with the contrast read right) made the picks nearly the same from a
centred and a quarter-diameter click, but it lowered the median of clicks on the listed centres
(ribosome, five clicks: dev1 0.984 -> 0.958, below the 0.97 aimed at; dev2 0.615 -> 0.578). On
dev1-dev3 (ribosome and proteasome, five clicks each) the response under a centred click is
0.65-0.99 of the peak's, so none of them moves, and the picks from centred clicks are what
they were; a quarter diameter off it is 0.04-0.92, and the clicks under a half (8 of 30: on
dev2's ribosome 0.04-0.06, the clicks whose picks had failed) move to the peak, 1-5 voxels
from the listed centre. Quarter-diameter clicks, median (worst) of five, F1: dev2 ribosome
0.509 (0.272) -> 0.558 (0.508), dev1 ribosome 0.962 (0.902) -> 0.962 (0.952); dev3 ribosome
0.631 (0.144) in both (click 0 0.667 -> 0.596, click 4 0.462 -> 0.690); the proteasomes
unchanged but for one click each (dev1 click 4 0.983 -> 0.962, dev3 click 1 0.059 -> 0.043).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from cryosam.volume.binning import extract_boxes

BLOB_SIGMA = 0.35
"""The Laplacian of Gaussian's sigma, in diameters (a click)."""
BALL_SIGMA = 0.5 / np.sqrt(3.0)
"""The sigma, in diameters, at which the scale-normalised Laplacian of Gaussian peaks on a
solid ball of that diameter (r / sqrt 3; the blob baseline's scale): verification's
candidates (measured on dev1's ribosome, five clicks; 0.35 was not tried there)."""
TRUNCATE = 3.0
"""The Gaussian is cut this many sigmas out (each box is read with that margin)."""
CHUNK = 64
"""Points whose boxes are filtered together."""
SNAP_WEAK = 0.5
"""A click moves (``prompt_snap``) only when the blob response under it is less than this
fraction of the peak's within reach (see the module docstring)."""


def blob_centre(volume, zyx, diameter_px: float, reach: float, weak: float = 0.0) -> np.ndarray:
    """The voxel within ``reach`` diameters of ``zyx`` where the particle-sized blob
    response of ``volume`` (protein bright) peaks; ``zyx`` itself when ``reach`` is 0, or
    when the response at ``zyx`` is at least ``weak`` of the peak's."""
    pts = np.reshape(zyx, (1, 3))
    return blob_centres(volume, pts, diameter_px, reach, BLOB_SIGMA, weak=weak)[0]


def blob_centres(
    volume, zyx, diameter_px: float, reach: float, sigma: float, b: int = 1, weak: float = 0.0
):
    """Each point moved to the voxel within ``reach`` diameters of it where the blob response
    (``-`` the Laplacian of Gaussian at ``sigma`` diameters, scale-normalised; protein
    bright) peaks, on the volume binned by ``b`` (voxel centres of the binned grid, in the
    volume's voxels); a point stays where it is when ``reach`` is under one (binned) voxel,
    or when the response at its own cell is at least ``weak`` of the (positive) peak's.
    The volume is read one box per point (memory does not grow with the tomogram); outside
    the volume is never chosen."""
    pts = np.asarray(zyx, np.float64).reshape(-1, 3)
    d = diameter_px / b
    radius = reach * d
    if radius < 1 or not len(pts):
        return pts.copy()
    s = sigma * d
    r = int(np.floor(radius))
    half = r + int(np.ceil(TRUNCATE * s))
    n = 2 * half + 1
    off = np.indices((2 * r + 1,) * 3).reshape(3, -1).T - r
    off = off[np.linalg.norm(off, axis=1) <= radius]
    own = int(np.flatnonzero(~off.any(axis=1))[0])  # the point's own cell
    # where binned cell ``half + o`` of a box around the rounded point lies (extract_boxes)
    shift = (b - 1) / 2.0 - b // 2
    hi = np.asarray(volume.shape) - 1
    out = pts.copy()
    for i0 in range(0, len(pts), CHUNK):
        p = np.round(pts[i0 : i0 + CHUNK])
        boxes = extract_boxes(volume, p, n, b)
        resp = -_laplace_of_gaussian(boxes, s)
        values = resp[:, off[:, 0] + half, off[:, 1] + half, off[:, 2] + half]
        where = p[:, None, :] + off[None] * b + shift
        inside = np.all((where >= 0) & (where <= hi), axis=2)
        values[~inside] = -np.inf
        k = np.argmax(values, axis=1)
        found = inside[np.arange(len(p)), k]
        if weak > 0:
            peak = values[np.arange(len(p)), k]
            found &= (peak > 0) & (values[:, own] < weak * peak)
        out[i0 : i0 + len(p)][found] = where[found, k[found]]
    return out


def _laplace_of_gaussian(boxes: np.ndarray, sigma: float) -> np.ndarray:
    """The Laplacian of Gaussian of each box of ``(k, n, n, n)`` (scipy's on a stack would
    also differentiate across the boxes), scaled by ``sigma**2``."""
    out = np.zeros(boxes.shape, np.float32)
    for axis in (1, 2, 3):
        order = [0, 0, 0, 0]
        order[axis] = 2
        out += ndimage.gaussian_filter(boxes, (0, sigma, sigma, sigma), order, truncate=TRUNCATE)
    return sigma**2 * out


def snap_prompts(volume, prompts, diameters_px: dict, reach: float) -> list:
    """The positive prompts of classes with a diameter moved to their :func:`blob_centre`
    when they lie on its flank (:data:`SNAP_WEAK`; negatives and the others as they are)."""
    out = []
    for p in prompts:
        d = diameters_px.get(p.class_name) if not p.negative else None
        if d and reach > 0:
            c = blob_centre(volume, p.zyx, d, reach, SNAP_WEAK)
            p = replace(p, zyx=tuple(float(v) for v in c))
        out.append(p)
    return out
