"""Run baseline pickers on the simulated suite and print P/R/F1 tables.

    python benchmarks/run_baselines.py --suite quick            # one condition
    python benchmarks/run_baselines.py --suite full --pickers log,tm-pytme

Per picker, condition and target: candidates are scored against the truth within
half the true diameter. Three honest numbers and one oracle:
- ``F1 null``: the picker's own fixed per-tomogram rule (1 expected false positive
  under a Gaussian null of its score map; pytme's --n-false-positives 1);
- ``F1 tuned``: the threshold that maximised F1 on a separate tuning tomogram of
  the same condition (different seed), carried over unchanged;
- ``best F1`` (oracle, threshold chosen on the evaluated tomogram itself) and AP.
Seconds are wall time of the picker; memory is the peak traced by tracemalloc
(numpy/scipy buffers) or, for a picker in a subprocess, the child's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.pickers import PICKERS  # noqa: E402
from benchmarks.suite import (  # noqa: E402
    EVAL_SEEDS,
    OUT,
    SUITES,
    TARGETS,
    TUNE_SEED,
    describe,
    ensure_case,
    prompt_for,
)
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.eval.truth import load_truth  # noqa: E402
from cryosam.io.tomogram import read_tomogram  # noqa: E402


def run_picker(name: str, case: Path, target: str):
    truth = load_truth(case)
    tomo = read_tomogram(case / "tomogram.mrc")
    prompt = prompt_for(case, target)
    diameter = truth.diameters_angst[target]
    tracemalloc.start()
    t0 = time.perf_counter()
    zyx, scores, cutoff = PICKERS[name](
        np.asarray(tomo.data),
        tomo.voxel_size,
        prompt,
        diameter,
        tomogram_path=case / "tomogram.mrc",
    )
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mem_mb = peak / 2**20
    if name == "tm-pytme":
        mem_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    radius = 0.5 * diameter / truth.voxel_size
    true = truth.picks.of_class(target).zyx
    return zyx, scores, cutoff, true, radius, seconds, mem_mb


def f1_at(zyx, scores, true, radius, threshold):
    keep = scores >= threshold
    return score_picks(zyx[keep], true, radius)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="quick", choices=sorted(SUITES))
    ap.add_argument("--pickers", default="log,tm-pytme")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--csv", default=str(OUT.parent / "baselines.csv"))
    args = ap.parse_args(argv)
    pickers = args.pickers.split(",")
    targets = args.targets.split(",")
    rows = []
    for cond in SUITES[args.suite]:
        tune_case = ensure_case(cond, TUNE_SEED)
        eval_cases = [ensure_case(cond, s) for s in EVAL_SEEDS]
        info = describe(eval_cases[0])
        print(
            f"\n## {cond.name}: SNR {info['snr']:.2f}, {info['fraction'] * 100:.1f} % in envelopes",
            flush=True,
        )
        for picker in pickers:
            for target in targets:
                zyx, sc, _, true, rad, _, _ = run_picker(picker, tune_case, target)
                tuned = score_picks(zyx, true, rad, sc).best_threshold
                for case in eval_cases:
                    zyx, sc, cutoff, true, rad, secs, mem = run_picker(picker, case, target)
                    full = score_picks(zyx, true, rad, sc)
                    at_null = f1_at(zyx, sc, true, rad, cutoff)
                    at_tuned = f1_at(zyx, sc, true, rad, tuned)
                    rows.append(
                        {
                            "condition": cond.name,
                            "seed": case.name.rsplit("seed", 1)[-1],
                            "picker": picker,
                            "target": target,
                            "n_true": len(true),
                            "P null": at_null.precision,
                            "R null": at_null.recall,
                            "F1 null": at_null.f1,
                            "P tuned": at_tuned.precision,
                            "R tuned": at_tuned.recall,
                            "F1 tuned": at_tuned.f1,
                            "best F1": full.best_f1,
                            "AP": full.average_precision,
                            "seconds": secs,
                            "peak MB": mem,
                        }
                    )
                    print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    df = pd.DataFrame(rows)
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.csv, index=False)
    print("\n## All cases\n")
    print(format_table(df.to_dict("records"), list(df.columns)))
    summary = (
        df.groupby(["condition", "picker", "target"], sort=False)[
            ["F1 null", "F1 tuned", "best F1", "AP", "seconds", "peak MB"]
        ]
        .mean()
        .reset_index()
    )
    print("\n## Mean over evaluation seeds\n")
    print(format_table(summary.to_dict("records"), list(summary.columns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
