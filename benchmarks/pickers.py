"""Pickers the benchmark harness can run. Each takes the tomogram, one prompt and the
diameter and returns candidates ``(zyx, scores)`` plus the picker's own fixed cutoff."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cryosam.eval.baselines import exemplar_template_match, log_blob_pick
from cryosam.io.tomogram import write_volume


def pick_log(tomogram, voxel_size, prompt, diameter_angst, **_):
    """Baseline 1: LoG blob picker sized from the diameter."""
    return log_blob_pick(tomogram, diameter_angst / voxel_size, dark=True)


def pick_tm_ncc(tomogram, voxel_size, prompt, diameter_angst, **_):
    """Baseline 2 (own implementation): exemplar template matching, FFT NCC, 30 deg."""
    return exemplar_template_match(tomogram, [prompt], diameter_angst / voxel_size)


def pytme_executable() -> str | None:
    """``pytme`` from $PYTME or PATH (it lives in its own venv: pip install pytme)."""
    exe = os.environ.get("PYTME") or shutil.which("pytme")
    return exe if exe and Path(exe).exists() else None


def pick_tm_pytme(tomogram, voxel_size, prompt, diameter_angst, tomogram_path=None, **_):
    """Baseline 2 (third party): exemplar template matching with pytme, 30 deg sampling,
    spherical-mask FLC; its n-false-positives=1 rule gives the fixed cutoff."""
    exe = pytme_executable()
    if exe is None:
        raise RuntimeError("pytme not found: set PYTME=/path/to/venv/bin/pytme")
    d = diameter_angst / voxel_size
    half = int(np.ceil(0.65 * d))
    c = np.round(prompt).astype(int)
    box = np.zeros((2 * half + 1,) * 3, np.float32)
    lo = c - half
    src = tuple(slice(max(a, 0), min(a + 2 * half + 1, s)) for a, s in zip(lo, tomogram.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
    box[dst] = tomogram[src]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_volume(tmp / "template.mrc", box, voxel_size)
        if tomogram_path is None:
            tomogram_path = write_volume(tmp / "tomo.mrc", tomogram, voxel_size)
        run = [
            exe,
            "match",
            "-m",
            str(tomogram_path),
            "-i",
            str(tmp / "template.mrc"),
            "-a",
            "30",
            "-n",
            "2",
            "-o",
            str(tmp / "tm.pickle"),
        ]
        subprocess.run(run, check=True, capture_output=True)
        common = [
            exe,
            "postprocess",
            "--input-file",
            str(tmp / "tm.pickle"),
            "--output-format",
            "orientations",
            "--num-peaks",
            "5000",
            "--min-distance",
            str(max(1, int(round(0.5 * d)))),
        ]
        subprocess.run(
            common + ["--output-prefix", str(tmp / "all")], check=True, capture_output=True
        )
        proc = subprocess.run(
            common + ["--n-false-positives", "1", "--output-prefix", str(tmp / "fp")],
            check=True,
            capture_output=True,
            text=True,
        )
        table = pd.read_csv(tmp / "all.tsv", sep="\t")
        cutoff = float("nan")
        for line in proc.stdout.splitlines() + proc.stderr.splitlines():
            if "Determined cutoff --min-score" in line:
                cutoff = float(line.rsplit(" ", 1)[-1].rstrip("."))
    # pytme transposes the array to (x, y, z) and names its columns to match
    zyx = table[["z", "y", "x"]].to_numpy(np.float64)
    return zyx, table["score"].to_numpy(np.float64), cutoff


PICKERS = {"log": pick_log, "tm-pytme": pick_tm_pytme, "tm-ncc": pick_tm_ncc}
