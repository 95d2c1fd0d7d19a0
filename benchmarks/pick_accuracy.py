"""`cryosam pick` accuracy, speed and memory on the simulated suite, beside the baselines.

    python benchmarks/pick_accuracy.py --suite quick
    python benchmarks/pick_accuracy.py --suite full --prompts 1,5

Each target is prompted with the same particle the baselines use (nearest the volume
centre; with --prompts N, the N nearest). Reported at cryosam's own automatic cut
(chosen per tomogram, no tuning): precision, recall, F1; and over all scored
candidates: the oracle best-threshold F1 and AP. Seconds are wall time of the whole
pick (prompt segmentation, features, matching, segmentation of every accepted match);
memory is the tracemalloc peak. ``--naive`` also runs brute-force matching to report
the speed-up of hierarchical matching and the F1 difference.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import EVAL_SEEDS, OUT, SUITES, TARGETS, ensure_case  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.eval.truth import load_truth  # noqa: E402
from cryosam.io.prompts import Prompt  # noqa: E402
from cryosam.io.tomogram import read_tomogram  # noqa: E402
from cryosam.method.pick import pick_particles  # noqa: E402


def prompts_for(truth, target: str, n: int) -> np.ndarray:
    sel = truth.picks.of_class(target).zyx
    shape = np.asarray(truth.shape)
    radius = 0.5 * truth.diameters_angst[target] / truth.voxel_size
    inside = np.all((sel >= radius) & (sel <= shape - 1 - radius), axis=1)
    pool = sel[inside] if inside.sum() >= n else sel
    return pool[np.argsort(np.linalg.norm(pool - shape / 2.0, axis=1))[:n]]


def run(case: Path, target: str, n_prompts: int, config: Config, naive: bool = False) -> dict:
    truth = load_truth(case)
    tomo = read_tomogram(case / "tomogram.mrc").data
    true = truth.picks.of_class(target).zyx
    d_true = truth.diameters_angst[target] / truth.voxel_size
    diameter = round(d_true / 5) * 5.0  # what a user would type: a round number
    prompts = [Prompt(tuple(p), target) for p in prompts_for(truth, target, n_prompts)]
    tracemalloc.start()
    t0 = time.perf_counter()
    out = pick_particles(np.asarray(tomo), prompts, {target: diameter}, config, naive=naive)
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    radius = 0.5 * d_true
    s = score_picks(out.picks.zyx, true, radius)
    cands = out.candidates
    keep = out.candidate_status != "negative"
    all_zyx = np.concatenate([cands.zyx[keep], out.picks.zyx[: len(prompts)]])
    all_scores = np.concatenate([cands.score[keep], np.ones(len(prompts))])
    full = score_picks(all_zyx, true, radius, all_scores)
    rep = out.reports[0]
    return {
        "case": case.name,
        "target": target,
        "prompts": n_prompts,
        "n_true": len(true),
        "n_picked": len(out.picks),
        "P": s.precision,
        "R": s.recall,
        "F1": s.f1,
        "best F1": full.best_f1,
        "AP": full.average_precision,
        "centre err px": s.mean_distance,
        "seconds": secs,
        "match s": out.timings["match"],
        "comparisons": int(sum(rep.comparisons)),
        "peak MB": peak / 2**20,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="quick", choices=sorted(SUITES))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--prompts", default="1")
    ap.add_argument("--naive", action="store_true")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a method parameter (as cryosam pick --set)",
    )
    ap.add_argument("--csv", default=str(OUT.parent / "pick_accuracy.csv"))
    args = ap.parse_args(argv)
    config = Config().with_overrides(args.set)
    rows = []
    for cond in SUITES[args.suite]:
        for seed in EVAL_SEEDS:
            case = ensure_case(cond, seed)
            for target in args.targets.split(","):
                for n in (int(k) for k in args.prompts.split(",")):
                    rows.append({"condition": cond.name, **run(case, target, n, config)})
                    print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
                    if args.naive:
                        r = run(case, target, n, config, naive=True)
                        rows.append({"condition": cond.name + " (naive)", **r})
                        print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    df = pd.DataFrame(rows)
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.csv, index=False)
    print("\n## All cases\n")
    print(format_table(df.to_dict("records"), list(df.columns)))
    cols = ["P", "R", "F1", "best F1", "AP", "centre err px", "seconds", "peak MB"]
    summary = df.groupby(["condition", "target", "prompts"], sort=False)[cols].mean()
    print("\n## Mean over evaluation seeds\n")
    print(
        format_table(
            summary.reset_index().to_dict("records"), ["condition", "target", "prompts", *cols]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
