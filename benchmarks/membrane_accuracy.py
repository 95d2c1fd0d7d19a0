"""Membrane segmentation from one prompt vs a plain Hessian sheet filter + threshold.

    python benchmarks/membrane_accuracy.py            # SNR 0.1..1 x default/crowded
    python benchmarks/membrane_accuracy.py --quick    # SNR 0.25 only
    python benchmarks/membrane_accuracy.py --timing   # + `pick --extended` on 200x400x400

Tomograms: 100 x 200 x 200 at 10 Å with two vesicles (25-40 Å bilayers) among the
preset's particles and filaments. Truth: the simulator's bilayer labels. One prompt =
a membrane voxel at mid-height of the first vesicle (the user clicks a membrane where
it is clearest, in an xy slice). Reported per condition (mean over seeds 101, 102):
Dice, precision, recall against the membrane labels, and the fraction of particle
voxels painted as membrane.

Baseline: the plate measure max(0, -l1) - |l2| of the Hessian at 20 Å (half a
bilayer-to-noise scale) thresholded globally: "tuned" carries the Dice-best threshold
(as a quantile) from a separate tuning tomogram (seed 201); "best" is the oracle on
the evaluated tomogram.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryosam.config import Config  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.method.extended import segment_extended  # noqa: E402
from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation  # noqa: E402
from cryosam.volume.hessian import gaussian_hessian, sym_eigvalsh  # noqa: E402
from cryosam.volume.prepare import standardise  # noqa: E402

SHAPE = (100, 200, 200)
EVAL_SEEDS, TUNE_SEED = (101, 102), 201
QUANTILES = np.linspace(0.95, 0.998, 25)


def make(snr: float, preset: str, seed: int, shape=SHAPE):
    cfg = SimulationConfig(
        shape=shape, preset=preset, vesicles=2, imaging=Imaging(snr=snr), seed=seed
    )
    sim = simulate(cfg)
    ids = sim.scene.class_ids
    membrane = sim.scene.labels == ids["membrane"]
    particles = (sim.scene.labels > 0) & ~membrane & (sim.scene.labels != ids.get("filament", -1))
    return sim, membrane, particles


def prompt(sim) -> np.ndarray:
    """A voxel of the first vesicle's bilayer whose normal lies near the xy plane, nearest
    the middle z (where a user sees the membrane best)."""
    ves = [o for o in sim.scene.objects if o["class"] == "membrane"]
    inst = ves[0]["instance"]
    sel = (sim.scene.instances == inst) & (sim.scene.labels == sim.scene.class_ids["membrane"])
    pts = np.argwhere(sel)
    d = pts - np.array([ves[0]["z"], ves[0]["y"], ves[0]["x"]])
    flat = pts[np.abs(d[:, 0]) / np.linalg.norm(d, axis=1) < 0.2]
    pts = flat if len(flat) else pts
    return pts[np.argmin(np.abs(pts[:, 0] - sim.tomogram.shape[0] / 2))]


def plate(vol: np.ndarray, sigma: float) -> np.ndarray:
    ev = sym_eigvalsh(gaussian_hessian(vol, sigma))
    return np.maximum(-ev[..., 0], 0) - np.abs(ev[..., 1])


def scores(mask, membrane, particles) -> dict:
    tp = float((mask & membrane).sum())
    return {
        "dice": 2 * tp / max(float(mask.sum() + membrane.sum()), 1.0),
        "precision": tp / max(float(mask.sum()), 1.0),
        "recall": tp / max(float(membrane.sum()), 1.0),
        "particle voxels painted": float(mask[particles].mean()),
    }


def run_condition(snr: float, preset: str) -> list[dict]:
    sim, membrane, particles = make(snr, preset, TUNE_SEED)
    base = plate(standardise(sim.tomogram, True), 2.0)
    dices = [scores(base > np.quantile(base, q), membrane, particles)["dice"] for q in QUANTILES]
    q_tuned = QUANTILES[int(np.argmax(dices))]
    rows = {"cryosam (one prompt)": [], "hessian tuned": [], "hessian best": []}
    seconds = []
    for seed in EVAL_SEEDS:
        sim, membrane, particles = make(snr, preset, seed)
        vol = standardise(sim.tomogram, True)
        t0 = time.perf_counter()
        out = segment_extended(vol, [prompt(sim)], 10.0, Config())
        seconds.append(time.perf_counter() - t0)
        rows["cryosam (one prompt)"].append(scores(out.mask, membrane, particles))
        base = plate(vol, 2.0)
        rows["hessian tuned"].append(scores(base > np.quantile(base, q_tuned), membrane, particles))
        best = max(
            (scores(base > np.quantile(base, q), membrane, particles) for q in QUANTILES),
            key=lambda s: s["dice"],
        )
        rows["hessian best"].append(best)
    table = []
    for method, rs in rows.items():
        row = {"condition": f"{preset}-snr{snr:g}", "method": method}
        for k in rs[0]:
            row[k] = round(float(np.mean([r[k] for r in rs])), 3)
        if method.startswith("cryosam"):
            row["seconds"] = round(float(np.mean(seconds)), 1)
        table.append(row)
    return table


def timing(tmp: Path) -> dict:
    """`cryosam pick --extended` on 200 x 400 x 400 (wall, peak RSS, Dice)."""
    import json
    import resource

    import mrcfile

    folder = tmp / "membrane-200x400x400"
    if not (folder / "truth.json").exists():
        cfg = SimulationConfig(
            shape=(200, 400, 400), preset="default", vesicles=4, imaging=Imaging(snr=0.25), seed=7
        )
        write_simulation(simulate(cfg), folder, overwrite=True)
    labels = mrcfile.read(folder / "labels.mrc")
    ids = json.loads((folder / "truth.json").read_text())["class_ids"]
    membrane = labels == ids["membrane"]
    particles = (labels > 0) & ~membrane & (labels != ids.get("filament", -1))
    zc = labels.shape[0] // 2
    pts = np.argwhere(membrane[zc])
    p = pts[np.argmin(np.linalg.norm(pts - np.asarray(labels.shape[1:]) / 2, axis=1))]
    cmd = [
        sys.executable,
        "-m",
        "cryosam",
        "pick",
        str(folder / "tomogram.mrc"),
        "--point",
        f"{zc},{p[0]},{p[1]}:membrane",
        "--extended",
        "--out",
        str(folder / "pick"),
        "--overwrite",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    mask = mrcfile.read(folder / "pick" / "masks" / "semantic.mrc") > 0
    s = scores(mask, membrane, particles)
    return {
        "shape": "200 x 400 x 400",
        "snr": 0.25,
        "wall s": round(wall, 1),
        "peak GB": round(rss, 2),
        **{k: round(v, 3) for k, v in s.items()},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--timing", action="store_true")
    args = ap.parse_args(argv)
    snrs = [0.25] if args.quick else [0.1, 0.25, 0.5, 1.0]
    rows = []
    for preset in ("default", "crowded"):
        for snr in snrs:
            rows += run_condition(snr, preset)
            print(format_table(rows[-3:], list(rows[-3])), flush=True)
    print("\n## Membrane Dice from one prompt (mean of seeds 101, 102; 100 x 200 x 200, 10 Å)")
    print(format_table(rows, list(rows[0])))
    if args.timing:
        out = Path(__file__).resolve().parent / "out"
        t = timing(out)
        print("\n## cryosam pick --extended, full size")
        print(format_table([t], list(t)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
