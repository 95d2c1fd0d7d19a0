"""Real molecules across defocus: one sparse scene of our simulator built from the molecular maps
of ``../shared/data/templates``, imaged at several defoci, one click per run, beside the LoG
blob picker.

    python benchmarks/defocus_sweep.py
    python benchmarks/defocus_sweep.py --defocus 1.5 3.5 --targets proteasome --clicks 3

The dev tomograms were imaged at 3.5-5 µm; users bring 1.5-6 µm (the real EMPIAR-10499
tomogram: 1.8 µm). Lower defocus transfers less of the low band where a 25 nm particle's
outline lives, higher defocus more, with more fringes. This scene (``cryosam simulate
--templates``: 160 x 320 x 320 at 10 Å, the 70S ribosome 4v4r, the 20S proteasome 3j9i, TRiC
4v94 and rubisco 1bxn at dev1's sparse fractions, two vesicles, shot noise of 120 e/Å² over
-60..60° in 3° steps, B 100 Å², seed 7) is the same molecules at the same places in every
column; only the defocus changes. It is our own simulator (projection, noise and contrast
transfer are ours), so it says how the method moves with defocus, not how it scores on data we
did not make: those numbers are ``benchmarks/external.py``'s.

Clicks: ``--clicks N`` particles of the target drawn with a fixed seed among those a quarter
diameter inside the volume (the listed centre). Scores: F1 within half the typed diameter
(250 Å ribosome, 160 Å proteasome), precision, recall, best-threshold F1 and AP of the ranked
candidates, picks, seconds; the LoG row is the blob picker at the typed diameter with its own
cut. The last line is the process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.external import run_cryosam, run_log  # noqa: E402
from benchmarks.imaging_transfer import score_columns  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.simulate import SimulationConfig, simulate  # noqa: E402
from cryosam.simulate.imaging import Imaging  # noqa: E402

MAPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "templates"
SPECIES = {"4v4r": 0.025, "3j9i": 0.008, "4v94": 0.004, "1bxn": 0.003}
"""Fractions of the volume (dev1's sparse cell: ribosome and proteasome counts alike)."""
TARGETS = {"ribosome": ("4v4r", 250.0), "proteasome": ("3j9i", 160.0)}
SHAPE = (160, 320, 320)
CLICK_SEED = 0


def scene(defocus_um: float, seed: int = 7, dose: float = 120.0, species=None, vesicles=2):
    """The simulation at ``defocus_um`` (same molecules and places for every defocus):
    ``species`` (map name -> fraction of the volume; :data:`SPECIES` unless given)."""
    species = species or SPECIES
    maps = {name: str(MAPS / f"{name}.mrc") for name in species}
    missing = [p for p in maps.values() if not Path(p).exists()]
    if missing:
        raise SystemExit(f"missing maps {missing}: run from a checkout beside ../shared")
    imaging = Imaging(defocus_um=defocus_um, dose=dose, snr=None, bfactor=100.0)
    config = SimulationConfig(shape=SHAPE, voxel_size=10.0, preset="sparse", fractions=species,
                              vesicles=vesicles, filaments=0, imaging=imaging, seed=seed,
                              templates=maps)  # fmt: skip
    return simulate(config)


def chosen_clicks(true: np.ndarray, d_px: float, n: int) -> np.ndarray:
    """``n`` of ``true`` drawn with a fixed seed among those a quarter diameter inside."""
    r = d_px / 4
    inside = true[np.all((true >= r) & (true <= np.array(SHAPE) - 1 - r), axis=1)]
    rng = np.random.default_rng(CLICK_SEED)
    return inside[rng.choice(len(inside), min(n, len(inside)), replace=False)]


def target_rows(sim, where: dict, target: str, methods, n_clicks: int, config) -> list[dict]:
    """One target of a simulated scene: ``n_clicks`` seeded clicks of cryosam and LoG at its
    own cut (``methods``), each row ``where`` (the scene's columns) and its scores, printed
    as it comes."""
    species, typed = TARGETS[target]
    true = np.array([[o["z"], o["y"], o["x"]] for o in sim.particles
                     if o["class"] == species], float)  # fmt: skip
    d_px = typed / 10.0
    runs = []
    if "cryosam" in methods:
        runs += [("cryosam", k, c) for k, c in enumerate(chosen_clicks(true, d_px, n_clicks))]
    if "log" in methods:
        runs.append(("log", "-", None))
    rows = []
    name = "-".join(str(v) for v in where.values())
    for method, k, click in runs:
        if method == "cryosam":
            r = run_cryosam(sim.tomogram, 10.0, click, d_px, true, config, name=name)
        else:
            r = run_log(sim.tomogram, 10.0, None, d_px, true)
        rows.append({**where, "target": target, "method": method, "click": k, **score_columns(r)})
        print(format_table(rows[-1:], list(rows[-1])), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--defocus", nargs="+", type=float, default=[1.5, 2.5, 3.5, 5.0])
    args = run_arguments(ap).parse_args(argv)
    config = Config().with_overrides(args.set)
    rows = []
    for defocus in args.defocus:
        t0 = time.perf_counter()
        sim = scene(defocus)
        print(f"defocus {defocus:g} µm: simulated in {time.perf_counter() - t0:.0f} s, "
              f"placed {sim.info['placed']}", flush=True)  # fmt: skip
        for target in args.targets:
            where = {"defocus µm": defocus}
            rows += target_rows(sim, where, target, args.methods, args.clicks, config)
    report(rows, "defocus µm")
    return 0


def run_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``ap`` with the options every scene benchmark takes: targets, clicks, methods, --set."""
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--clicks", type=int, default=3, help="clicks per target")
    ap.add_argument("--methods", nargs="+", default=["cryosam", "log"])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    return ap


def report(rows: list[dict], key: str) -> None:
    """Every row, the :func:`medians` per ``key`` and target, and the peak memory."""
    print("\n" + format_table(rows, list(rows[0])))
    print(medians(rows, key))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"\npeak memory of this process: {peak:.2f} GB")


def medians(rows: list[dict], key: str) -> str:
    """Per ``key`` (the scene's column) and target: cryosam's median (worst) F1 over the clicks
    beside LoG's."""
    out = []
    for value in dict.fromkeys(r[key] for r in rows):
        for target in dict.fromkeys(r["target"] for r in rows):
            mine = [r for r in rows if r[key] == value and r["target"] == target]
            if not mine:
                continue
            ours = [r["F1"] for r in mine if r["method"] == "cryosam"]
            log = [r["F1"] for r in mine if r["method"] == "log"]
            out.append({key: value, "target": target,
                        "cryosam median (worst)": f"{np.median(ours):.3f} ({min(ours):.3f})"
                        if ours else "-", "LoG": f"{log[0]:.3f}" if log else "-"})  # fmt: skip
    return "\n" + format_table(out, list(out[0]))


if __name__ == "__main__":
    raise SystemExit(main())
