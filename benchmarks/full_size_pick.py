"""Wall time and peak memory of the whole `cryosam pick` on a full-size tomogram.

    python benchmarks/full_size_pick.py                  # 200 x 400 x 400 at 10 Å
    python benchmarks/full_size_pick.py --shape 300,1000,1000

Simulates the tomogram once (cached under benchmarks/out/), then runs the real
command line in a child process, as a user would, and reads the child's peak RSS.
Also reports P/R/F1 of the ribosome picks against the truth.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import OUT  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.eval.truth import load_truth  # noqa: E402
from cryosam.io.picks import read_picks_csv  # noqa: E402
from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="200,400,400")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--snr", type=float, default=0.5)
    ap.add_argument("--set", action="append", default=[], help="NAME=VALUE, as cryosam pick")
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    case = OUT.parent / f"full-{args.preset}-{'x'.join(map(str, shape))}-snr{args.snr:g}"
    t0 = time.perf_counter()
    if not (case / "truth.json").exists():
        cfg = SimulationConfig(
            shape=shape, preset=args.preset, imaging=Imaging(snr=args.snr), seed=7
        )
        write_simulation(simulate(cfg), case, overwrite=True)
    sim_s = time.perf_counter() - t0
    truth = load_truth(case)
    ribos = truth.picks.of_class("ribosome").zyx
    prompt = ribos[np.argmin(np.linalg.norm(ribos - np.asarray(shape) / 2, axis=1))]
    out = case / "pick"
    cmd = [
        sys.executable,
        "-m",
        "cryosam",
        "pick",
        str(case / "tomogram.mrc"),
        "--point",
        ",".join(f"{v:g}" for v in prompt) + ":ribosome",
        "--diameter",
        "300",
        "--out",
        str(out),
        "--overwrite",
        *[a for s in args.set for a in ("--set", s)],
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    picks = read_picks_csv(out / "picks.csv").of_class("ribosome")
    s = score_picks(picks.zyx, ribos, 0.5 * truth.diameters_angst["ribosome"] / 10)
    stages = json.loads((out / "run.json").read_text())["timings_s"]
    row = {
        "shape": args.shape,
        "preset": args.preset,
        "snr": args.snr,
        "simulate s (if new)": sim_s,
        "pick wall s": wall,
        "peak RSS MB": rss,
        "n true": len(ribos),
        "n picked": len(picks),
        "P": s.precision,
        "R": s.recall,
        "F1": s.f1,
    }
    print(format_table([row], list(row)))
    print("\nstages (s):", ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
