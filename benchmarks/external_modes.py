"""Every mode on tomograms this project did not simulate (``../shared/data/dev``):

    python benchmarks/external_modes.py                   # all tomograms, ribosome + proteasome
    python benchmarks/external_modes.py --tomograms dev2
    python benchmarks/external_modes.py --modes click     # the single click and its masks only

Per tomogram and target (F1 of ``cryosam.pick`` at its own cut, particles matched within half a
diameter), beside the single-click run of ``benchmarks/external.py`` (its first click):
- ``10 % prompts``: a tenth of the true particles as prompts (drawn with a fixed seed);
- ``+3 negatives``: the single click plus three negative clicks on the target's commonest
  same-size look-alike in that tomogram (TRiC for the ribosome in dev1, the yeast 80S in the
  crowded ones; the TRiC for the proteasome);
- ``two classes``: the ribosome and the proteasome clicked in one run, each scored on its
  own (within 0.03 of its single-class run is the aim);
- masks: semantic Dice of the class against the label map, beside a solid ball of the given
  diameter at every accepted pick's centre (the masks must beat it); and per particle, the
  median Dice of a true pick's instance mask against its particle's share of the label map,
  beside the ball's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.external import DATA, TARGETS, clicks, load  # noqa: E402
from cryosam.app.pick import in_memory, pick  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.metrics import dice_iou, score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.io.prompts import Prompt  # noqa: E402
from cryosam.io.tomogram import read_tomogram  # noqa: E402

LOOK_ALIKE = {
    ("dev1", "ribosome"): 4,
    ("dev2", "ribosome"): 7,
    ("dev3", "ribosome"): 7,
    ("dev1", "proteasome"): 4,
    ("dev2", "proteasome"): 4,
    ("dev3", "proteasome"): 4,
}


def ball_dice(picks_zyx, d_px, truth_mask) -> float:
    """Dice of solid balls of diameter ``d_px`` at the picks against the truth mask."""
    balls = np.zeros(truth_mask.shape, bool)
    r = int(np.ceil(d_px / 2))
    g = np.indices((2 * r + 1,) * 3) - r
    ball = (g**2).sum(0) <= (d_px / 2) ** 2
    for c in np.round(picks_zyx).astype(int):
        lo = c - r
        src = tuple(slice(max(a, 0), min(a + 2 * r + 1, s)) for a, s in zip(lo, balls.shape))
        dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
        balls[src] |= ball[dst]
    return dice_iou(balls, truth_mask)[0]


def instance_dice(instances, picks, true_zyx, d_px, truth_mask) -> tuple[float, float]:
    """Median Dice, over the picks within half a diameter of a true particle, of each pick's
    instance mask and of a solid ball of diameter ``d_px`` at the pick against that
    particle's share of the truth mask (its voxels nearer to it than to any other true
    particle of the class), in a box of 1.6 diameters around the pick."""
    tree = cKDTree(true_zyx)
    dist, which = tree.query(picks.zyx)
    r = int(np.ceil(0.8 * d_px))
    g = np.indices((2 * r + 1,) * 3) - r
    ball = (g**2).sum(0) <= (d_px / 2) ** 2
    ours, balls = [], []
    for p, k, dd, j in zip(picks.zyx, picks.instance, dist, which):
        lo = np.round(p).astype(int) - r
        if dd > d_px / 2 or (lo < 0).any() or (lo + 2 * r + 1 > truth_mask.shape).any():
            continue
        box = tuple(slice(a, a + 2 * r + 1) for a in lo)
        t = truth_mask[box].copy()
        t[t] = tree.query(np.argwhere(t) + lo)[1] == j
        for mask, out in ((instances[box] == k, ours), (ball, balls)):
            out.append(2 * (mask & t).sum() / max(mask.sum() + t.sum(), 1))
    return float(np.median(ours)), float(np.median(balls))


def run(volume, prompts, diam, config):
    t0 = time.perf_counter()
    out = pick(in_memory(volume, 10.0), prompts, diam, config, cache=True).outcome
    return out, time.perf_counter() - t0


MODES = {"click": "1 click", "prompts": "10 % prompts", "negatives": "+3 negatives"}
"""``--modes`` names of the runs per target (``two`` runs both targets in one pick)."""


def modes(tomo: str, targets: list[str], config: Config, which=(*MODES, "two")) -> list[dict]:
    volume, vs, particles = load(tomo)
    labels = np.asarray(read_tomogram(DATA / f"{tomo}_labels.mrc.gz").data)
    rows = []
    first = {}
    chosen = {MODES[m] for m in which if m in MODES}
    for target in targets:
        label, d_angst = TARGETS[target]
        d = d_angst / vs
        true = particles.loc[particles.label == label, ["z", "y", "x"]].to_numpy(float)
        click = clicks(particles, label, d, volume.shape, 1)[0]
        first[target] = click
        cases = {"1 click": [Prompt(tuple(click), target)]}
        rng = np.random.default_rng(7)
        some = true[rng.permutation(len(true))[: max(2, len(true) // 10)]]
        cases["10 % prompts"] = [Prompt(tuple(p), target) for p in some]
        look = particles.loc[particles.label == LOOK_ALIKE[(tomo, target)], ["z", "y", "x"]]
        negs = look.to_numpy(float)[rng.permutation(len(look))[:3]]
        cases["+3 negatives"] = [Prompt(tuple(click), target)]
        cases["+3 negatives"] += [Prompt(tuple(p), target, True) for p in negs]
        for name, prompts in cases.items():
            if name not in chosen:
                continue
            out, secs = run(volume, prompts, {target: d}, config)
            picked = out.picks.of_class(target)
            s = score_picks(picked.zyx, true, d / 2)
            row = {"tomogram": tomo, "target": target, "mode": name, "prompts": len(prompts),
                   "P": s.precision, "R": s.recall, "F1": s.f1, "seconds": secs}  # fmt: skip
            if name == "1 click":
                mask = labels == label
                row["mask Dice"] = dice_iou(out.semantic == out.class_ids[target], mask)[0]
                row["ball Dice"] = ball_dice(picked.zyx, d, mask)
                ours, ball = instance_dice(out.instances, picked, true, d, mask)
                row["instance Dice"], row["ball instance Dice"] = ours, ball
            rows.append(row)
            print(format_table([row], list(row)).splitlines()[-1], flush=True)
    if len(targets) == 2 and "two" in which:
        prompts = [Prompt(tuple(first[t]), t) for t in targets]
        diam = {t: TARGETS[t][1] / vs for t in targets}
        out, secs = run(volume, prompts, diam, config)
        for target in targets:
            label, d_angst = TARGETS[target]
            true = particles.loc[particles.label == label, ["z", "y", "x"]].to_numpy(float)
            s = score_picks(out.picks.of_class(target).zyx, true, d_angst / vs / 2)
            rows.append({"tomogram": tomo, "target": target, "mode": "two classes", "prompts": 2,
                         "P": s.precision, "R": s.recall, "F1": s.f1, "seconds": secs})  # fmt: skip
            print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tomograms", default="dev1,dev2,dev3")
    ap.add_argument("--targets", default="ribosome,proteasome")
    ap.add_argument(
        "--modes",
        default="click,prompts,negatives,two",
        help="comma list of " + ", ".join([*MODES, "two"]),
    )
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    config = Config().with_overrides(args.set)
    rows = []
    for tomo in args.tomograms.split(","):
        rows += modes(tomo, args.targets.split(","), config, args.modes.split(","))
    df = pd.DataFrame(rows)
    print("\n## Modes (F1 at cryosam's own cut)\n")
    print(format_table(df.to_dict("records"), list(df.columns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
