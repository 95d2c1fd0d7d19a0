"""Instance-mask accuracy of cross-plane self-prompting on the simulated suite.

    python benchmarks/segment_accuracy.py                 # SNR sweep, crowded, seed 102
    python benchmarks/segment_accuracy.py --per-class 30 --snrs 0.25

For each species, the first N particles that lie fully inside the volume are
prompted at their true centre; each mask is scored by Dice against the
simulator's instance map (molecular envelope). Beside ours: the Dice of a solid
ball of the species' diameter at the true centre (the mask a size-only tool would
paint). Variants: union vs majority vote of the 3 planes, and z-only propagation
(the reference code). Seconds per instance are wall time on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import Condition, ensure_case  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.eval.truth import load_truth  # noqa: E402
from cryosam.io.tomogram import read_tomogram  # noqa: E402
from cryosam.method.propagate import propagate_instance  # noqa: E402
from cryosam.models import make_segmenter  # noqa: E402
from cryosam.volume.prepare import prepare_volume  # noqa: E402

VARIANTS = {
    "3-plane vote (default)": {},
    "3-plane union (paper)": {"combine": "union"},
    "z only (reference code)": {"propagation_axes": "z", "combine": "union"},
}


def ball_dice(instances, inst_id, centre, radius) -> float:
    c = np.round(centre).astype(int)
    r = int(np.ceil(radius)) + 1
    lo = np.maximum(c - r, 0)
    hi = np.minimum(c + r + 1, instances.shape)
    g = np.ogrid[tuple(slice(a - ci, b - ci) for a, b, ci in zip(lo, hi, c))]
    ball = sum(x.astype(float) ** 2 for x in g) <= radius**2
    truth_box = instances[tuple(slice(a, b) for a, b in zip(lo, hi))] == inst_id
    total = ball.sum() + (instances == inst_id).sum()
    return 2 * (ball & truth_box).sum() / total


def run_case(case: Path, classes, per_class: int, variants) -> list[dict]:
    truth = load_truth(case)
    tomo = read_tomogram(case / "tomogram.mrc").data
    inst = read_tomogram(case / "instances.mrc").data.astype(np.int64)
    rows = []
    for cls in classes:
        d = truth.diameters_angst[cls] / truth.voxel_size
        sel = truth.picks.of_class(cls)
        shape = np.asarray(tomo.shape)
        inside = np.all((sel.zyx >= d / 2) & (sel.zyx <= shape - 1 - d / 2), axis=1)
        pts, ids = sel.zyx[inside][:per_class], sel.instance[inside][:per_class]
        vol, _ = prepare_volume(tomo, "auto", d)
        balls = [ball_dice(inst, i, p, d / 2) for p, i in zip(pts, ids)]
        for vname, changes in variants.items():
            cfg = Config(**changes)
            seg = make_segmenter("classical", config=cfg)
            seg.set_volume(vol, d)
            dices, t0 = [], time.perf_counter()
            for p, i in zip(pts, ids):
                m = propagate_instance(seg, vol.shape, p, d, cfg)
                truth_box = inst[m.box()] == i
                total = m.voxels + (inst == i).sum()
                dices.append(2 * (m.mask & truth_box).sum() / total)
            secs = (time.perf_counter() - t0) / max(len(pts), 1)
            rows.append(
                {
                    "case": case.name,
                    "class": cls,
                    "variant": vname,
                    "n": len(pts),
                    "median Dice": float(np.median(dices)),
                    "mean Dice": float(np.mean(dices)),
                    "ball Dice (oracle centre)": float(np.median(balls)),
                    "s/instance": secs,
                }
            )
            print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snrs", default="0.1,0.25,0.5,1,2")
    ap.add_argument("--preset", default="crowded")
    ap.add_argument("--seed", type=int, default=102)
    ap.add_argument("--classes", default="ribosome,proteasome,ball")
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument(
        "--all-variants-at",
        type=float,
        default=0.25,
        help="SNR at which union/vote/z-only are compared",
    )
    args = ap.parse_args(argv)
    rows = []
    for snr in [float(s) for s in args.snrs.split(",")]:
        case = ensure_case(Condition(snr, args.preset), args.seed)
        variants = VARIANTS if snr == args.all_variants_at else dict(list(VARIANTS.items())[:1])
        rows += run_case(case, args.classes.split(","), args.per_class, variants)
    df = pd.DataFrame(rows)
    print("\n## Instance Dice (median over prompts)\n")
    print(format_table(df.to_dict("records"), list(df.columns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
