"""``cryosam batch`` on tomograms this project did not simulate (``../shared/data/dev``):

    python benchmarks/external_batch.py                      # ribosome, clicked in dev1
    python benchmarks/external_batch.py --target proteasome --reference dev1

Runs the command as a user would (``cryosam batch dev1 dev2 dev3 --reference dev1 --point ...``)
with the first of ``external.py``'s five clicks in the reference tomogram, then scores every
tomogram's ``picks.csv`` against its truth (F1 with a hit within half a diameter). The prompted
tomogram should score as a single ``cryosam pick`` with the same click does (``external.py``'s
click 0); the others are searched with the prompted tomogram's query. Seconds are the whole
batch's (one worker per core, as the command chooses).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.external import DATA, TARGETS, TOMOGRAMS, clicks, load  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tomograms", default=",".join(TOMOGRAMS))
    ap.add_argument("--target", default="ribosome", choices=sorted(TARGETS))
    ap.add_argument("--reference", default="dev1", help="the tomogram clicked in")
    args = ap.parse_args(argv)
    names = args.tomograms.split(",")
    label, d_angst = TARGETS[args.target]
    volume, vs, particles = load(args.reference)
    click = clicks(particles, label, d_angst / vs, volume.shape, 1)[0]
    point = ",".join(f"{c:g}" for c in click) + f":{args.target}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "batch"
        cmd = ["cryosam", "batch", *[str(DATA / f"{n}.int8.mrc.gz") for n in names],
               "--reference", f"{args.reference}.int8.mrc.gz", "--point", point,
               "--diameter", f"{args.target}={d_angst:g}", "--out", str(out)]  # fmt: skip
        print(" ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - t0
        rows = []
        for n in names:
            truth = pd.read_csv(DATA / f"{n}_particles.csv")
            true = truth.loc[truth.label == label, ["z", "y", "x"]].to_numpy(float)
            picks = pd.read_csv(next(out.glob(f"{n}*/picks.csv")))
            zyx = picks.loc[picks["class"] == args.target, ["z", "y", "x"]].to_numpy(float)
            s = score_picks(zyx, true, 0.5 * d_angst / vs)
            rows.append({"tomogram": n, "prompted": n == args.reference, "picks": len(zyx),
                         "P": s.precision, "R": s.recall, "F1": s.f1})  # fmt: skip
    print(format_table(rows, list(rows[0])))
    print(f"batch of {len(names)} tomograms: {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
