"""How much the typed diameter matters: one click, the diameter swept around what a user
would type, on the external dev tomograms (``../shared/data/dev``).

    python benchmarks/diameter_sweep.py --tomograms dev1 dev2 --targets ribosome \
        --factors 0.8 0.9 1.0 1.1 1.2

The click is the first of ``benchmarks/external.py``'s five (same seed); the picks are
scored at the typed diameter of ``external.TARGETS`` (F1 within half of it) whatever
diameter the run was given. Prints F1, the best-threshold F1 of the ranked candidates, the
number of picks, the cut's rule and the seconds per run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.external import TARGETS, clicks, load, scores_of  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.io.prompts import Prompt  # noqa: E402
from cryosam.method.pick import pick_particles  # noqa: E402

RANKED = ["accepted", "below_cut", "size_mismatch", "other_class", "candidate"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tomograms", nargs="+", default=["dev1", "dev2"])
    ap.add_argument("--targets", nargs="+", default=["ribosome"])
    ap.add_argument("--factors", nargs="+", type=float, default=[0.8, 0.9, 1.0, 1.1, 1.2])
    ap.add_argument("--click", type=int, default=0, help="which of the five clicks")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    config = Config().with_overrides(args.set)
    rows = []
    for tomo in args.tomograms:
        volume, vs, particles = load(tomo)
        for target in args.targets:
            label, typed = TARGETS[target]
            d_true = typed / vs
            true = particles.loc[particles.label == label, ["z", "y", "x"]].to_numpy(float)
            click = clicks(particles, label, d_true, volume.shape, 5)[args.click]
            for f in args.factors:
                t0 = time.perf_counter()
                out = pick_particles(volume, [Prompt(tuple(click), target)],
                                     {target: f * d_true}, config, voxel_size=vs)  # fmt: skip
                secs = time.perf_counter() - t0
                ranked = np.isin(out.candidate_status, RANKED)
                r = scores_of(out.picks.zyx, out.picks.score, true, d_true,
                              out.candidates.zyx[ranked], out.candidates.score[ranked])  # fmt: skip
                rep = out.reports[0]
                rows.append({"tomogram": tomo, "target": target, "diameter Å": round(f * typed),
                             "F1": round(r["F1"], 3), "best F1": round(r["best F1"], 3),
                             "picks": r["n_picked"], "cut": rep.cut_method.split(":")[0],
                             "seconds": round(secs)})  # fmt: skip
                print(format_table(rows[-1:], list(rows[-1])), flush=True)
    print("\n" + format_table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
