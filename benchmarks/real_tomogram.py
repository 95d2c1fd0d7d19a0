"""One click on a real tomogram: pick count, time, memory, and a sheet to judge the picks by eye.

    python benchmarks/real_tomogram.py --tomogram /tmp/real/00254_wbp_10A.mrc
    python benchmarks/real_tomogram.py --tomogram /tmp/real/00254_wbp_20A.mrc --point 62,112,183
    python benchmarks/real_tomogram.py --tomogram /tmp/real/00254_wbp_10A.mrc \
        --reference ../shared/data/templates/4v4r.mrc --no-click     # the map alone

The tomogram is EMPIAR-10499 00254 as ``../shared/data/real/reconstruct.py`` writes it (no
truth). Runs ``cryosam pick`` in a child process, as a user would, and reports the picks, the
cut's rule, the candidates near gold fiducials, wall time and the child's peak RSS. There is no
ground truth, so two checks stand in for it:

- ``eyecheck.png``: 50 accepted picks drawn with a fixed seed, beside 50 random places of the
  volume, each a 9 nm xy slab low-passed to 2.5 nm with the particle's circle: count how many
  of the picks show a ribosome-sized dark particle in the circle (the random places say how
  often one is there by chance).
- agreement with an independent picker: the share of our picks within half a diameter of one
  of the same number of best LoG blobs at the particle's size (and of those blobs, how many we
  picked).
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
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from cryosam.eval.baselines import log_blob_pick  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.io.tomogram import read_tomogram  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "real"


def eye_sheet(volume, voxel_size, picks, diameter_px, path: Path, seed: int = 0) -> None:
    """A sheet of 50 random picks (rows 1-5) and 50 random places (rows 6-10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    take = picks[rng.choice(len(picks), min(50, len(picks)), replace=False)]
    places = rng.uniform(0, 1, (50, 3)) * (np.asarray(volume.shape) - 1)
    h = int(np.ceil(1.2 * diameter_px))
    slab = max(1, int(round(4.5 * 10.0 / voxel_size)))
    sigma = 2.5 * 10.0 / voxel_size
    fig, axes = plt.subplots(10, 10, figsize=(15, 16))
    crops = []
    fill = float(np.median(np.asarray(volume[:: max(1, volume.shape[0] // 8)], np.float32)))
    for zyx in np.concatenate([take, places]):
        z, y, x = np.round(zyx).astype(int)
        lo = np.array([z - slab - 3 * sigma, y - h - 3 * sigma, x - h - 3 * sigma]).astype(int)
        hi = np.array([z + slab + 1 + 3 * sigma, y + h + 3 * sigma, x + h + 3 * sigma]).astype(int)
        box = np.full(hi - lo, fill, np.float32)  # outside the volume: its median
        a, b = np.maximum(lo, 0), np.minimum(hi, volume.shape)
        box[tuple(slice(i - j, k - j) for i, j, k in zip(a, lo, b))] = volume[
            a[0] : b[0], a[1] : b[1], a[2] : b[2]
        ]
        box = ndimage.gaussian_filter(box, sigma)
        c = -lo + [z, y, x]
        crops.append(
            -box[c[0] - slab : c[0] + slab + 1, c[1] - h : c[1] + h, c[2] - h : c[2] + h].mean(0)
        )
    vmin, vmax = np.percentile(np.concatenate([c.ravel() for c in crops]), [1, 99.5])
    # picks fill rows 1-5 (fewer than 50 leave blanks), the random places rows 6-10
    cells = [(i, "pick") for i in range(len(take))] + [(50 + i, "random") for i in range(50)]
    for (cell, kind), crop in zip(cells, crops):
        ax = axes.flat[cell]
        ax.imshow(crop, cmap="gray_r", vmin=vmin, vmax=vmax)
        ax.add_patch(plt.Circle((h - 0.5, h - 0.5), diameter_px / 2, fill=False, color="r", lw=0.6))
        ax.set_title(f"{kind} {cell % 50}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(
        f"rows 1-5: {len(take)} random accepted picks; rows 6-10: 50 random places "
        "(xy slabs 9 nm thick, low-passed to 2.5 nm; dark = protein; circle = the diameter)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tomogram", required=True, type=Path)
    ap.add_argument("--point", default="124,224,366", help="z,y,x of the click (voxels)")
    ap.add_argument("--diameter", type=float, default=250.0, help="Å")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--reference", type=Path, default=None, help="a map: pick --reference")
    ap.add_argument(
        "--no-click",
        action="store_true",
        help="with --reference: no --point and no --diameter (the map finds the prompts and "
        "gives the size; --diameter then only sizes the checks)",
    )
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    out = args.out or OUT / (args.tomogram.stem + ("-map" if args.no_click else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["cryosam", "pick", str(args.tomogram), "--out", str(out), "--overwrite", "--no-cache"]
    if args.reference is not None:
        cmd += ["--reference", str(args.reference)]
    for item in args.set:
        cmd += ["--set", item]
    if not (args.no_click and args.reference is not None):
        cmd += ["--point", args.point, "--diameter", f"{args.diameter:g}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    tomo = read_tomogram(args.tomogram)
    vs = tomo.require_voxel_size()
    d_px = args.diameter / vs
    picks = pd.read_csv(out / "picks.csv")[["z", "y", "x"]].to_numpy(float)
    status = pd.read_csv(out / "candidates.csv")["status"].value_counts()
    run = json.loads((out / "run.json").read_text())
    blobs, _, _ = log_blob_pick(tomo.data, d_px, dark=run["input"]["protein_dark_inverted"])
    agree = score_picks(picks, blobs[: len(picks)], 0.5 * d_px)
    eye_sheet(tomo.data, vs, picks, d_px, out / "eyecheck.png")
    cls = run["classes"][0]
    rows = {
        "tomogram": args.tomogram.name,
        "picks": len(picks),
        "candidates": int(cls["n_candidates"]),
        "near fiducial": int(status.get("near_fiducial", 0)),
        "cut rule": cls["cut_method"].split(":")[0],
        "picks near a LoG blob": f"{agree.precision:.2f}",
        "LoG blobs picked": f"{agree.recall:.2f}",
        "seconds": f"{seconds:.0f}",
        "peak GB": f"{peak_gb:.2f}",
    }
    print("| " + " | ".join(rows) + " |")
    print("|" + "---|" * len(rows))
    print("| " + " | ".join(str(v) for v in rows.values()) + " |")
    print(f"eye check: {out / 'eyecheck.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
