"""``cryosam demo``: simulate a tomogram, pick ribosomes from one prompt, score the picks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosam.app.pick import PICK_OUTPUTS, PickRun, pick
from cryosam.config import Config
from cryosam.eval.metrics import PickScores, score_picks
from cryosam.io.outputs import check_outputs
from cryosam.io.prompts import Prompt
from cryosam.io.tomogram import read_tomogram
from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation
from cryosam.simulate.species import template

SHAPE = (100, 200, 200)
VOXEL_SIZE = 10.0


@dataclass
class DemoScene:
    """The simulated tomogram (in ``out/truth``), its true ribosomes and the prompt."""

    out: Path
    ribosomes: np.ndarray
    prompt: np.ndarray
    diameter_px: float
    radius_px: float


def check_demo_outputs(out: Path, overwrite: bool) -> None:
    """Refuse before simulating when an earlier demo would be replaced."""
    check_outputs(out / "pick", PICK_OUTPUTS, overwrite)


def simulate_demo(out: Path, seed: int = 0, snr: float = 0.5) -> DemoScene:
    """Simulate ``SHAPE`` at ``VOXEL_SIZE`` Å into ``out/truth``; the prompt is the ribosome
    nearest the centre, the diameter a round number as a user would type it."""
    sim = simulate(SimulationConfig(shape=SHAPE, imaging=Imaging(snr=snr), seed=seed))
    write_simulation(sim, out / "truth", overwrite=True)
    ribos = sim.centres("ribosome")
    prompt = ribos[np.argmin(np.linalg.norm(ribos - np.array(sim.tomogram.shape) / 2, axis=1))]
    true_d = template("ribosome", VOXEL_SIZE).diameter_angst
    return DemoScene(out, ribos, prompt, round(true_d / 100) * 10.0, 0.5 * true_d / VOXEL_SIZE)


def pick_demo(
    scene: DemoScene, progress=None, command_line: str | None = None
) -> tuple[PickRun, PickScores]:
    """Pick ribosomes from the one prompt into ``out/pick`` and score them against the truth."""
    tomo = read_tomogram(scene.out / "truth" / "tomogram.mrc")
    run = pick(
        tomo,
        [Prompt(tuple(scene.prompt), "ribosome")],
        {"ribosome": scene.diameter_px},
        Config(),
        out=scene.out / "pick",
        overwrite=True,
        cache=False,
        progress=progress,
        command_line=command_line,
    )
    picked = run.outcome.picks.of_class("ribosome").zyx
    return run, score_picks(picked, scene.ribosomes, scene.radius_px)
