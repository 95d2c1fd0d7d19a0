"""The fixed simulated benchmark suite, generated once and cached on disk.

Every case is a ``cryosam simulate`` folder under ``benchmarks/out/suite/``. A
condition (SNR x crowding) has evaluation seeds and one separate tuning seed, so
a threshold tuned on the tuning tomogram can be carried to the evaluation ones,
the way a user carries a threshold from one tomogram to the next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosam.eval.truth import load_truth
from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation

OUT = Path(__file__).resolve().parent / "out" / "suite"
SHAPE = (100, 200, 200)
EVAL_SEEDS = (101, 102)
TUNE_SEED = 201
TARGETS = ("ribosome", "proteasome", "ball")


@dataclass(frozen=True)
class Condition:
    snr: float
    preset: str

    @property
    def name(self) -> str:
        return f"{self.preset}-snr{self.snr:g}"


SUITES = {
    "quick": [Condition(0.25, "crowded")],
    "headline": [Condition(0.25, p) for p in ("default", "crowded", "sparse")],
    "default": [Condition(0.25, "default")],
    "full": [Condition(s, "crowded") for s in (0.1, 0.25, 0.5, 1.0, 2.0)]
    + [Condition(0.25, "sparse"), Condition(0.25, "default")],
}


def case_dir(cond: Condition, seed: int) -> Path:
    return OUT / f"{cond.name}-seed{seed}"


def ensure_case(cond: Condition, seed: int, shape=SHAPE) -> Path:
    """Simulate the case unless its folder is already complete."""
    out = case_dir(cond, seed)
    if (out / "truth.json").exists() and (out / "tomogram.mrc").exists():
        return out
    cfg = SimulationConfig(
        shape=shape, preset=cond.preset, imaging=Imaging(snr=cond.snr), seed=seed
    )
    write_simulation(simulate(cfg), out, overwrite=True)
    return out


def prompt_for(case: Path, target: str) -> np.ndarray:
    """The true particle of ``target`` nearest the volume centre, away from the borders."""
    truth = load_truth(case)
    sel = truth.picks.of_class(target).zyx
    shape = np.asarray(truth.shape)
    radius = 0.5 * truth.diameters_angst[target] / truth.voxel_size
    inside = np.all((sel >= radius) & (sel <= shape - 1 - radius), axis=1)
    pool = sel[inside] if inside.any() else sel
    return pool[np.argmin(np.linalg.norm(pool - shape / 2.0, axis=1))]


def describe(case: Path) -> dict:
    meta = json.loads((case / "truth.json").read_text())
    return {
        "snr": meta["tomogram_snr"],
        "fraction": meta["envelope_fraction"],
        "placed": meta["placed"],
    }
