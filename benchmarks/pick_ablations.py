"""The paper's ablations for `cryosam pick`, on one simulated condition.

    python benchmarks/pick_ablations.py                       # crowded, SNR 0.25, seed 102
    python benchmarks/pick_ablations.py --preset default --snr 0.5

Number of prompts (1, 5 %, 10 %, 70 % of the particles), top-K, tau_sim, pyramid
ratios, query expansion, shape verification, and the feature encoder, each changed alone from the
defaults. F1 at the automatic cut, and the oracle best-threshold F1 and AP over the
scored candidates; seconds are the whole pick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.pick_accuracy import run  # noqa: E402
from benchmarks.suite import Condition, ensure_case  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402

VARIANTS = {
    "default": {},
    "top_k 128": {"top_k": 128},
    "top_k 1024": {"top_k": 1024},
    "tau_sim 0.3": {"tau_sim": 0.3},
    "tau_sim 0.7": {"tau_sim": 0.7},
    "tau_sim 0.9": {"tau_sim": 0.9},
    "pyramid 8/4": {"pyramid": (8, 4)},
    "pyramid 32/16/8/4": {"pyramid": (32, 16, 8, 4)},
    "no query expansion (paper)": {"query_expansion": 0},
    "no size check": {"size_tolerance": 1000.0},
    "no shape verification (paper's scores)": {"verify": False},
    "verification without refinement": {"verify_top": 0},
    "verification at 20 deg": {"verify_angle_step": 20.0},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="crowded")
    ap.add_argument("--snr", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=102)
    ap.add_argument("--targets", default="ribosome,ball")
    args = ap.parse_args(argv)
    case = ensure_case(Condition(args.snr, args.preset), args.seed)
    rows = []
    for target in args.targets.split(","):
        n_true = len(pd.read_csv(case / "particles.csv").query("`class` == @target"))
        for frac, label in [(None, "1 prompt"), (0.05, "5 %"), (0.10, "10 %"), (0.70, "70 %")]:
            n = 1 if frac is None else max(1, round(frac * n_true))
            r = run(case, target, n, Config())
            rows.append({"target": target, "ablation": f"prompts: {label} ({n})", **_pick(r)})
            print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
        for name, changes in VARIANTS.items():
            r = run(case, target, 1, Config().replace(**changes))
            rows.append({"target": target, "ablation": name, **_pick(r)})
            print(format_table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    print(f"\n## Ablations on {case.name}\n")
    print(format_table(rows, list(rows[0])))
    return 0


def _pick(r: dict) -> dict:
    return {k: r[k] for k in ("n_true", "n_picked", "P", "R", "F1", "best F1", "AP", "seconds")}


if __name__ == "__main__":
    sys.exit(main())
