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


def robust_errors(G: np.ndarray) -> np.ndarray:
    """Angles (degrees) of rotations ``G`` from their robust mean."""
    R = Rotation.from_matrix(G)
    mean = R.mean()
    for _ in range(3):
        err = (R * mean.inv()).magnitude()
        mean = R[err <= np.median(err)].mean()
    return np.degrees((R * mean.inv()).magnitude())


def angular_errors(picks, true_zyx, true_Q, d_px: float) -> np.ndarray:
    """Each paired pick's angular error after the one global rotation is removed."""
    ok = np.all(np.isfinite(picks.angles), axis=1)
    zyx, ang = picks.zyx[ok], picks.angles[ok]
    dist, idx = cKDTree(true_zyx).query(zyx, distance_upper_bound=0.25 * d_px)
    hit = np.isfinite(dist)
    if hit.sum() < 3:
        return np.zeros(0)
    M = relion_euler_matrices(ang[hit])  # particle = reference turned by M (x, y, z)
    Q = true_Q[idx[hit]]
    Mt = np.transpose(M, (0, 2, 1))
    options = [robust_errors(Mt @ Q), robust_errors(Mt @ np.transpose(Q, (0, 2, 1)))]
    return min(options, key=np.median)


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
    args = ap.parse_args(argv)
    config = Config().with_overrides(args.set) if args.set else Config()
    rows = []
    for tomo in args.tomograms:
        volume, vs, particles = load(tomo)
        for target in args.targets:
            label, diameter = TARGETS[target]
            d_px = diameter / vs
            tz, tq = truth(tomo, target)
            maps = {"click": None}
            if args.map:
                maps["map"] = {target: read_tomogram(TEMPLATES / f"{MAPS[target]}.mrc")}
            chosen = clicks(particles, label, d_px, volume.shape, args.clicks)
            todo = [(k, c, ref) for k, c in enumerate(chosen) for ref in maps]
            for k, click, ref in todo:
                t0 = time.perf_counter()
                run = pick(in_memory(volume, vs, tomo), [Prompt(tuple(click), target)],
                           {target: d_px}, config, reference_maps=maps[ref])  # fmt: skip
                secs = time.perf_counter() - t0
                err = angular_errors(run.outcome.picks, tz, tq, d_px)
                rows.append({
                    "tomogram": tomo, "target": target, "click": k, "reference": ref,
                    "picks": len(run.outcome.picks), "paired": len(err),
                    "median°": _stat(np.median, err), "p90°": _stat(np.percentile, err, 90),
                    "≤15°": _stat(np.mean, err <= 15), "≤30°": _stat(np.mean, err <= 30),
                    "orient s": float(run.outcome.timings.get("orient", np.nan)), "pick s": secs,
                })  # fmt: skip
                print(format_table(rows[-1:], list(rows[-1])), flush=True)
    print("\n" + format_table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
