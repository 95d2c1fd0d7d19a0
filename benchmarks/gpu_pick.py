"""The whole ``cryosam pick`` with full-size foundation models (random weights: timing only).

    python benchmarks/gpu_pick.py --shape 200,400,400 --device cuda \
        --runs classical,dinov2-vit-l14,sam-vit-h,sam2.1-hiera-l

Simulates one tomogram (default preset, SNR 0.25), saves each full-size model with random
weights through ``save_pretrained`` (the folder a user's checkpoint would be), and runs
``cryosam pick`` on it with one ribosome prompt: the weight-free path, DINOv2 features, and
the SAM / SAM 2.1 segmenters. Reports wall seconds, the stages from run.json, peak GPU
memory, peak RSS and F1 (meaningful for the weight-free run only: random weights pick
nothing in particular).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.model_timing import DINO_SIZES, SAM2_SIZES, SAM_SIZES, print_rows  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402


def save_random(name: str, root: Path) -> Path:
    """A full-size model of ``name`` with random weights, saved as a checkpoint folder."""
    from transformers import Dinov2Config, Dinov2Model, Sam2Config, Sam2Model, SamConfig, SamModel
    from transformers.models.sam.configuration_sam import SamVisionConfig

    if name in DINO_SIZES:
        model = Dinov2Model(Dinov2Config(**DINO_SIZES[name], patch_size=14, image_size=518))
    elif name in SAM2_SIZES:
        model = Sam2Model(Sam2Config(vision_config=SAM2_SIZES[name]))
    else:
        model = SamModel(SamConfig(vision_config=SamVisionConfig(**SAM_SIZES[name]).to_dict()))
    path = root / name
    model.save_pretrained(path)
    return path


def one_run(name: str, tomo: Path, prompt: str, out: Path, device: str, models: Path) -> dict:
    import torch

    from cryosam.cli.main import main as cli
    from cryosam.eval.metrics import score_picks
    from cryosam.eval.truth import load_truth
    from cryosam.io.picks import read_picks_csv

    args = [
        "pick",
        str(tomo),
        "--point",
        prompt,
        "--diameter",
        "280",
        "--out",
        str(out),
        "--no-cache",
        "--device",
        device,
    ]
    if name in DINO_SIZES:
        args += ["--encoder", "dinov2", "--encoder-model", str(save_random(name, models))]
    elif name in SAM_SIZES or name in SAM2_SIZES:
        args += ["--segmenter", "sam", "--model", str(save_random(name, models))]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        rc = cli(args)
    except SystemExit as e:  # the CLI exits with its code
        rc = e.code
    wall = time.perf_counter() - t0
    row = {"run": name, "exit": rc, "wall s": wall}
    if (out / "run.json").exists():
        timing = json.loads((out / "run.json").read_text()).get("timings_s", {})
        for k in ("features", "segment_prompts", "match", "segment_matches"):
            if k in timing:
                row[f"{k} s"] = timing[k]
    if (out / "picks.csv").exists():
        truth = load_truth(tomo.parent)
        picks = read_picks_csv(out / "picks.csv")
        true = truth.picks.of_class("ribosome").zyx
        r = 0.5 * truth.diameters_angst["ribosome"] / truth.voxel_size
        s = score_picks(picks.zyx, true, r)
        row.update({"picks": len(picks.zyx), "F1": s.f1})
    if torch.cuda.is_available():
        row["peak GPU MB"] = torch.cuda.max_memory_allocated() / 2**20
    row["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="200,400,400")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--runs", default="classical,dinov2-vit-l14,sam-vit-h,sam2.1-hiera-l")
    args = ap.parse_args(argv)
    import numpy as np

    from cryosam.eval.truth import load_truth
    from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shape = tuple(int(s) for s in args.shape.split(","))
        t0 = time.perf_counter()
        cfg = SimulationConfig(shape=shape, imaging=Imaging(snr=0.25), seed=7)
        write_simulation(simulate(cfg), tmp / "sim", overwrite=True)
        print(f"simulated {shape} in {time.perf_counter() - t0:.1f} s", flush=True)
        truth = load_truth(tmp / "sim")
        ribos = truth.picks.of_class("ribosome").zyx
        centre = np.asarray(shape) / 2.0
        p = ribos[np.argmin(np.linalg.norm(ribos - centre, axis=1))]
        prompt = ",".join(str(int(round(v))) for v in p) + ":ribosome"
        (tmp / "models").mkdir()
        for name in args.runs.split(","):
            row = one_run(
                name,
                tmp / "sim" / "tomogram.mrc",
                prompt,
                tmp / f"out-{name}",
                args.device,
                tmp / "models",
            )
            rows.append(row)
            print(format_table([row], list(row)), flush=True)
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
