"""Negative prompts against look-alikes: one positive prompt plus 0, 1 or 3 negatives.

    python benchmarks/negative_prompts.py                    # crowded, SNR 0.25, seeds 101/102

Each target gets one positive prompt (the true particle nearest the centre) and negatives on
its look-alike (the nearest to the centre first): ribosome vs isolated large subunit,
proteasome vs double ring, ball vs cage. F1 at cryosam's automatic cut, mean of the seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.pick_accuracy import prompts_for  # noqa: E402
from benchmarks.suite import EVAL_SEEDS, Condition, ensure_case  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.eval.truth import load_truth  # noqa: E402
from cryosam.io.prompts import Prompt  # noqa: E402
from cryosam.io.tomogram import read_tomogram  # noqa: E402
from cryosam.method.pick import pick_particles  # noqa: E402

LOOK_ALIKES = {"ribosome": "lsu", "proteasome": "double_ring", "ball": "cage"}


def run(case: Path, target: str, n_neg: int) -> dict:
    truth = load_truth(case)
    tomo = np.asarray(read_tomogram(case / "tomogram.mrc").data)
    true = truth.picks.of_class(target).zyx
    d_true = truth.diameters_angst[target] / truth.voxel_size
    others = truth.picks.of_class(LOOK_ALIKES[target]).zyx
    centre = np.asarray(truth.shape) / 2.0
    negs = others[np.argsort(np.linalg.norm(others - centre, axis=1))[:n_neg]]
    prompts = [Prompt(tuple(prompts_for(truth, target, 1)[0]), target)]
    prompts += [Prompt(tuple(p), target, negative=True) for p in negs]
    out = pick_particles(tomo, prompts, {target: round(d_true / 5) * 5.0}, Config())
    s = score_picks(out.picks.zyx, true, 0.5 * d_true)
    return {
        "target": target,
        "look-alike": LOOK_ALIKES[target],
        "negatives": n_neg,
        "P": s.precision,
        "R": s.recall,
        "F1": s.f1,
        "rejected": int((out.candidate_status == "negative").sum()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="crowded")
    ap.add_argument("--snr", type=float, default=0.25)
    args = ap.parse_args(argv)
    rows = []
    for seed in EVAL_SEEDS:
        case = ensure_case(Condition(args.snr, args.preset), seed)
        for target in LOOK_ALIKES:
            for n in (0, 1, 3):
                rows.append({"seed": seed, **run(case, target, n)})
                print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    df = pd.DataFrame(rows)
    mean = df.groupby(["target", "look-alike", "negatives"], sort=False)[
        ["P", "R", "F1", "rejected"]
    ].mean()
    print(f"\n## Negative prompts, {args.preset} SNR {args.snr:g}, mean of seeds\n")
    print(
        format_table(
            mean.reset_index().to_dict("records"),
            ["target", "look-alike", "negatives", "P", "R", "F1", "rejected"],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
