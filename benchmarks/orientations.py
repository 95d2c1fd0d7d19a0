"""Orientation accuracy of accepted picks on the external dev tomograms (``../shared/data/dev``).

    python benchmarks/orientations.py                       # ribosome, dev1-3, 2 clicks each
    python benchmarks/orientations.py --tomograms dev1 --clicks 5 --set orient_angle_step=20

Each accepted pick within a quarter diameter of a true particle is paired with it. A pick's
rotation ``M`` is relative to its class's reference (the clicked particle as it lies, refined
by its best matches), the truth's ``Q`` to the simulator's template (``devN_polnet_motifs.tsv``:
quaternion (w, x, y, z) in x, y, z). Both describe the same particle, so ``G = M^T Q`` is one
rotation (the reference's frame in the template's) for every correct pick: it is estimated
robustly (the mean of the half closest to a first mean) and each pick's error is its angle
from it. Which way the simulator's quaternion turns (``Q`` or ``Q^T``) is decided by the
data: the one whose ``G`` agree. Clicks as in ``benchmarks/external.py`` (same seed).
Prints per run: picks paired, median and 90th-percentile error, the fraction within 15 and
30 degrees, the orientation stage's seconds, and the whole pick's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.external import DATA, MAPS, TARGETS, TEMPLATES, clicks, load  # noqa: E402
from cryosam.app.pick import in_memory, pick  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.io.coords import relion_euler_matrices  # noqa: E402
from cryosam.io.prompts import Prompt  # noqa: E402
from cryosam.io.tomogram import read_tomogram  # noqa: E402

CODES = {t: f"pdb_{code}" for t, code in MAPS.items()}  # the simulator's molecule codes


def truth(tomo: str, target: str):
    """``(zyx voxels, rotations Q as x, y, z matrices)`` of the target's particles."""
    m = pd.read_csv(DATA / f"{tomo}_polnet_motifs.tsv", sep="\t")
    m = m[m.code == CODES[target]]
    zyx = m[["z_A", "y_A", "x_A"]].to_numpy(np.float64) / 10.0
    q = m[["q2", "q3", "q4", "q1"]].to_numpy(np.float64)  # scipy wants (x, y, z, w)
    return zyx, Rotation.from_quat(q).as_matrix()


SYMMETRY = {"proteasome": 7}  # D7: the 20S proteasome's barrel


def symmetry_axis(target: str) -> np.ndarray:
    """The n-fold axis (x, y, z) of the target's map: its long axis (largest second moment)."""
    m = read_tomogram(TEMPLATES / f"{MAPS[target]}.mrc").data.astype(np.float64)
    g = np.indices(m.shape).reshape(3, -1).T - (np.asarray(m.shape) - 1) / 2.0
    w = m.ravel() / m.sum()
    c = (w[:, None] * g).sum(0)
    cov = np.einsum("n,ni,nj->ij", w, g - c, g - c)
    return np.linalg.eigh(cov)[1][:, -1][::-1]  # zyx -> xyz


def symmetry_ops(target: str) -> np.ndarray:
    """``(K, 3, 3)`` rotations (x, y, z) of the target's map onto itself: the identity, or for
    a Dn particle the n-fold turns about the map's long axis (:func:`symmetry_axis`) times
    the identity and a two-fold turn about the perpendicular axis that best maps the map onto
    itself (searched in 2 degree steps)."""
    n = SYMMETRY.get(target)
    if not n:
        return np.eye(3)[None]
    m = read_tomogram(TEMPLATES / f"{MAPS[target]}.mrc").data.astype(np.float64)
    axis = symmetry_axis(target)
    u = np.cross(axis, [1.0, 0, 0] if abs(axis[0]) < 0.9 else [0, 1.0, 0])
    u /= np.linalg.norm(u)
    best, two = -np.inf, None
    for phi in np.deg2rad(np.arange(0, 180.0 / n, 2.0)):
        b = Rotation.from_rotvec(phi * axis).apply(u)
        F = Rotation.from_rotvec(np.pi * b).as_matrix()
        r = np.corrcoef(m.ravel(), _turned(m, F).ravel())[0, 1]
        if r > best:
            best, two = r, F
    turns = [Rotation.from_rotvec(2 * np.pi * k / n * axis).as_matrix() for k in range(n)]
    return np.array([t @ f for t in turns for f in (np.eye(3), two)])


def _turned(m: np.ndarray, F_xyz: np.ndarray) -> np.ndarray:
    """The map turned by ``F`` (x, y, z) about its box centre: ``m(F^T x)``."""
    from scipy import ndimage

    P = np.eye(3)[::-1]
    inv = P @ F_xyz.T @ P  # sampled at F^T x, in (z, y, x)
    c = (np.asarray(m.shape) - 1) / 2.0
    return ndimage.affine_transform(m, inv, offset=c - inv @ c, order=1)


def robust_errors(G: np.ndarray, with_mean: bool = False):
    """Angles (degrees) of rotations ``G`` from their robust mean; ``G`` may be ``(N, K, 3,
    3)``: K equivalent rotations per pick (symmetry), each pick's closest one counts. With
    ``with_mean``: ``(angles, mean)``."""
    G = G if G.ndim == 4 else G[:, None]
    best = None
    for ref in G[: min(len(G), 20), 0]:  # a start on a good pick: the others lined up to it
        err = np.degrees(_angle(G, ref).min(1))
        if best is None or np.median(err) < np.median(best[0]):
            best = (err, ref)
    mean = best[1]
    for _ in range(3):
        d = _angle(G, mean)
        pick = G[np.arange(len(G)), d.argmin(1)]
        keep = d.min(1) <= np.median(d.min(1))
        mean = Rotation.from_matrix(pick[keep]).mean().as_matrix()
    err = np.degrees(_angle(G, mean).min(1))
    return (err, mean) if with_mean else err


def _angle(G: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) between each ``G[i, k]`` and ``ref``."""
    rel = np.einsum("nkij,jl->nkil", G, ref.T)
    cos = (np.trace(rel, axis1=2, axis2=3) - 1) / 2
    return np.arccos(np.clip(cos, -1.0, 1.0))


def angular_errors(picks, true_zyx, true_Q, d_px: float, ops=None, axis=None):
    """Each paired pick's angular error after the one global rotation is removed (the
    closest of the target's symmetry-equivalent truths, ``ops``). With the map's symmetry
    ``axis`` (x, y, z): ``(errors, degrees between the reference frame's z and that axis as
    the global rotation puts it in the reference's frame)``."""
    ok = np.all(np.isfinite(picks.angles), axis=1)
    zyx, ang = picks.zyx[ok], picks.angles[ok]
    dist, idx = cKDTree(true_zyx).query(zyx, distance_upper_bound=0.25 * d_px)
    hit = np.isfinite(dist)
    if hit.sum() < 3:
        return np.zeros(0) if axis is None else (np.zeros(0), float("nan"))
    M = relion_euler_matrices(ang[hit])  # particle = reference turned by M (x, y, z)
    ops = np.eye(3)[None] if ops is None else ops
    Q = np.einsum("nij,kjl->nkil", true_Q[idx[hit]], ops)  # equivalent truths Q S
    Mt = np.transpose(M, (0, 2, 1))[:, None]
    options = [robust_errors(Mt @ Q, True), robust_errors(Mt @ np.transpose(Q, (0, 1, 3, 2)), True)]
    err, G = min(options, key=lambda o: np.median(o[0]))
    if axis is None:
        return err
    # the reference is the template turned by G: the template's axis lies along G axis
    cos = abs(float(np.asarray([0.0, 0.0, 1.0]) @ (G @ axis)))
    return err, float(np.degrees(np.arccos(min(cos, 1.0))))


def _stat(f, a, *args) -> float:
    return float(f(a, *args)) if len(a) else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tomograms", nargs="+", default=["dev1", "dev2", "dev3"])
    ap.add_argument("--targets", nargs="+", default=["ribosome"])
    ap.add_argument("--clicks", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="NAME=VALUE config changes")
    ap.add_argument("--map", action="store_true",
                    help="also run with the target's own map (../shared/data/templates) as "
                    "--reference: angles in the map's frame")  # fmt: skip
    ap.add_argument("--map-only", action="store_true",
                    help="with --map: only the rows with the map (the click rows are run "
                    "without it)")  # fmt: skip
    ap.add_argument("--symmetry", action="store_true",
                    help="pick symmetric targets (SYMMETRY: the proteasome's D7) with "
                    "--symmetry; the axis° column: the angle between the reference frame's z "
                    "and the particle's n-fold axis")  # fmt: skip
    args = ap.parse_args(argv)
    config = Config().with_overrides(args.set) if args.set else Config()
    rows = []
    for tomo in args.tomograms:
        volume, vs, particles = load(tomo)
        for target in args.targets:
            label, diameter = TARGETS[target]
            d_px = diameter / vs
            tz, tq = truth(tomo, target)
            ops = symmetry_ops(target)
            sym = {target: f"D{SYMMETRY[target]}"} if args.symmetry and target in SYMMETRY else {}
            axis = symmetry_axis(target) if sym else None
            maps = {} if args.map and args.map_only else {"click": None}
            if args.map:
                maps["map"] = {target: read_tomogram(TEMPLATES / f"{MAPS[target]}.mrc")}
            chosen = clicks(particles, label, d_px, volume.shape, args.clicks)
            todo = [(k, c, ref) for k, c in enumerate(chosen) for ref in maps]
            for k, click, ref in todo:
                t0 = time.perf_counter()
                run = pick(in_memory(volume, vs, tomo), [Prompt(tuple(click), target)],
                           {target: d_px}, config, reference_maps=maps[ref],
                           symmetry=sym)  # fmt: skip
                secs = time.perf_counter() - t0
                found = angular_errors(run.outcome.picks, tz, tq, d_px, ops, axis)
                err, axis_err = found if sym else (found, float("nan"))
                rows.append({
                    "tomogram": tomo, "target": target, "click": k, "reference": ref,
                    "picks": len(run.outcome.picks), "paired": len(err),
                    "median°": _stat(np.median, err), "p90°": _stat(np.percentile, err, 90),
                    "≤15°": _stat(np.mean, err <= 15), "≤30°": _stat(np.mean, err <= 30),
                    "axis°": axis_err,
                    "orient s": float(run.outcome.timings.get("orient", np.nan)), "pick s": secs,
                })  # fmt: skip
                print(format_table(rows[-1:], list(rows[-1])), flush=True)
    print("\n" + format_table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
