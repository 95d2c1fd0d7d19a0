"""Scaling of `cryosam pick` and `cryosam batch`: seconds and peak RSS vs volume, cold vs
warm feature cache, batch throughput with 1 vs 2 workers.

    python benchmarks/scaling.py                       # every size up to 300 x 1000 x 1000
    python benchmarks/scaling.py --max-voxels 4e7      # skip the largest sizes
    python benchmarks/scaling.py --skip-batch

Each run is the real command line in a child process (as a user runs it); the peak
RSS is the largest resident set of that child or any process it waited for (dask
workers included). Tomograms are simulated once (default preset, SNR 0.5, 10 Å) and
cached under benchmarks/out/. Cold = empty feature cache; warm = a second pick on the
same tomogram with another prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import OUT  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.eval.truth import load_truth  # noqa: E402
from cryosam.io.picks import read_picks_csv  # noqa: E402
from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation  # noqa: E402

SHAPES = [(100, 100, 100), (100, 200, 200), (200, 400, 400), (300, 600, 600), (300, 1000, 1000)]
ROOT = OUT.parent
MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(r.returncode, time.perf_counter() - t, "
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.stderr.write(r.stderr[-2000:] if r.returncode else '')"
)


def measured(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of ``cmd`` run in a fresh child."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, env=env
    )
    rc, wall, kb = out.stdout.split()
    if int(rc) not in (0,):
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}): {out.stderr}")
    return float(wall), int(kb) / 2**20


def case(shape, seed=7) -> Path:
    folder = ROOT / f"full-default-{'x'.join(map(str, shape))}-snr0.5"
    if seed != 7:
        folder = folder.with_name(folder.name + f"-seed{seed}")
    if not (folder / "truth.json").exists():
        cfg = SimulationConfig(shape=shape, preset="default", imaging=Imaging(snr=0.5), seed=seed)
        write_simulation(simulate(cfg), folder, overwrite=True)
    return folder


def prompts(folder: Path, n: int = 2) -> list[str]:
    truth = load_truth(folder)
    ribos = truth.picks.of_class("ribosome").zyx
    centre = np.asarray(truth.shape) / 2
    order = np.argsort(np.linalg.norm(ribos - centre, axis=1))[:n]
    return [",".join(f"{v:g}" for v in ribos[i]) + ":ribosome" for i in order]


def f1(folder: Path, picks_csv: Path) -> float:
    truth = load_truth(folder)
    picks = read_picks_csv(picks_csv).of_class("ribosome")
    ribos = truth.picks.of_class("ribosome").zyx
    return score_picks(picks.zyx, ribos, 0.5 * truth.diameters_angst["ribosome"] / 10).f1


def scaling(shapes, env) -> list[dict]:
    rows = []
    for shape in shapes:
        folder = case(shape)
        n = int(np.prod(shape))
        cold_prompt, warm_prompt = prompts(folder)
        out = Path(env["CRYOSAM_CACHE"]) / "pick"
        base = [
            sys.executable,
            "-m",
            "cryosam",
            "pick",
            str(folder / "tomogram.mrc"),
            "--diameter",
            "300",
            "--out",
            str(out),
            "--overwrite",
        ]
        shutil.rmtree(Path(env["CRYOSAM_CACHE"]) / "features", ignore_errors=True)
        cold_s, cold_gb = measured(base + ["--point", cold_prompt], env)
        cold_f1 = f1(folder, out / "picks.csv")
        stages = json.loads((out / "run.json").read_text())["timings_s"]
        warm_s, warm_gb = measured(base + ["--point", warm_prompt], env)
        rows.append(
            {
                "shape (z,y,x)": " x ".join(map(str, shape)),
                "Mvoxels": round(n / 1e6, 1),
                "cold s": round(cold_s, 1),
                "cold s/Mvoxel": round(cold_s / (n / 1e6), 3),
                "peak GB": round(cold_gb, 2),
                "B/voxel": round(cold_gb * 2**30 / n, 1),
                "features s": stages.get("features", float("nan")),
                "warm s": round(warm_s, 1),
                "warm peak GB": round(warm_gb, 2),
                "F1": round(cold_f1, 3),
            }
        )
        print(format_table([rows[-1]], list(rows[-1])), flush=True)
    return rows


def batch(env, n_tomos: int = 4) -> list[dict]:
    folders = [case((100, 200, 200), seed=7 + k) for k in range(n_tomos)]
    tomos = Path(tempfile.mkdtemp(prefix="batch-in-", dir=env["CRYOSAM_CACHE"]))
    for k, f in enumerate(folders):
        os.symlink(f / "tomogram.mrc", tomos / f"tomo{k}.mrc")
    rows = []
    for workers in (1, 2):
        out = Path(env["CRYOSAM_CACHE"]) / f"batch-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(Path(env["CRYOSAM_CACHE"]) / "features", ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "cryosam",
            "batch",
            str(tomos),
            "--reference",
            "tomo0",
            "--point",
            prompts(folders[0], 1)[0],
            "--diameter",
            "300",
            "--out",
            str(out),
            "--workers",
            str(workers),
        ]
        wall, gb = measured(cmd, env)
        scores = [f1(f, out / f"tomo{k}" / "picks.csv") for k, f in enumerate(folders)]
        rows.append(
            {
                "workers": workers,
                "tomograms": n_tomos,
                "wall s": round(wall, 1),
                "tomograms/min": round(60 * n_tomos / wall, 2),
                "peak GB (largest process)": round(gb, 2),
                "mean F1": round(float(np.mean(scores)), 3),
                "F1 unprompted": round(float(np.mean(scores[1:])), 3),
            }
        )
        print(format_table([rows[-1]], list(rows[-1])), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-voxels", type=float, default=3.1e8)
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cryosam-scaling-"))
    env = dict(os.environ, CRYOSAM_CACHE=str(work))
    print(f"machine: {os.cpu_count()} cores; cache and outputs in {work}")
    try:
        if not args.skip_scaling:
            shapes = [s for s in SHAPES if np.prod(s) <= args.max_voxels]
            rows = scaling(shapes, env)
            print("\n## cryosam pick vs volume (weight-free backend, default preset, SNR 0.5)")
            print(format_table(rows, list(rows[0])))
        if not args.skip_batch:
            rows = batch(env)
            print("\n## cryosam batch: 4 tomograms of 100 x 200 x 200, one prompt in the first")
            print(format_table(rows, list(rows[0])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
