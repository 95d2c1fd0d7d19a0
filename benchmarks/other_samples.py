"""Other samples: scenes of the real molecular maps at other densities and compositions than
the dev tomograms', one click per run, beside the LoG blob picker.

    python benchmarks/other_samples.py
    python benchmarks/other_samples.py --samples packed --targets ribosome --clicks 3

The held-out tomograms are other samples than dev1-dev3: a cell may be packed with the
target, or hold it among a few look-alikes of its size rather than none (dev1) or hundreds
(dev2, dev3). Each sample here is a scene of our simulator (``cryosam simulate --templates``
machinery, as ``benchmarks/defocus_sweep.py``: 160 x 320 x 320 at 10 Å, the maps of
``../shared/data/templates``, shot noise of 120 e/Å² over -60..60° in 3° steps, B 100 Å²,
seed 7, defocus 3 µm):

- ``packed``: 70S ribosomes fill 8 % of the volume (~240; a bacterial cytoplasm such as the
  real EMPIAR-10499 cell's), with the proteasome, TRiC and rubisco of dev1;
- ``proteasome-rich``: 20S proteasomes fill 2.5 % (~230), few ribosomes;
- ``medium``: dev1's four species and, at a third of dev2's share, its ribosome-sized
  look-alikes (yeast and human 80S, fatty acid synthase, 26S proteasome, the hollow cage)
  and four smaller proteins;
- ``half-dose``: dev1's sparse species imaged at half the dose (60 e/Å²) and 2 µm defocus.

It is our own simulator (projection, noise and contrast transfer are ours): it says how the
method moves with the sample, not how it scores on data we did not make (those numbers are
``benchmarks/external.py``'s). Clicks, scores and the LoG row as in ``defocus_sweep.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.defocus_sweep import (  # noqa: E402
    SPECIES,
    report,
    run_arguments,
    scene,
    target_rows,
)
from cryosam.config import Config  # noqa: E402

LOOK_ALIKES = {"4v7r": 0.008, "6qzp": 0.008, "2uv8": 0.004, "4cr2": 0.004, "8tux": 0.003}
SMALL = {"3ipm": 0.002, "6utj": 0.002, "1qvr": 0.002, "3cf3": 0.002}
DEFOCUS, DOSE = 3.0, 120.0
SAMPLES = {
    "packed": ({**SPECIES, "4v4r": 0.08}, 1, DEFOCUS, DOSE),
    "proteasome-rich": (
        {"4v4r": 0.006, "3j9i": 0.025, "4v94": 0.006, "1bxn": 0.006},
        2,
        DEFOCUS,
        DOSE,
    ),
    "medium": ({**SPECIES, "4v94": 0.006, "1bxn": 0.004, **LOOK_ALIKES, **SMALL}, 2, DEFOCUS, DOSE),
    "half-dose": (SPECIES, 2, 2.0, 60.0),
}
"""Sample -> (map name -> fraction of the volume, vesicles, defocus in µm, dose in e/Å²)."""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", nargs="+", default=list(SAMPLES), choices=list(SAMPLES))
    args = run_arguments(ap).parse_args(argv)
    config = Config().with_overrides(args.set)
    rows = []
    for sample in args.samples:
        species, vesicles, defocus, dose = SAMPLES[sample]
        t0 = time.perf_counter()
        sim = scene(defocus, dose=dose, species=species, vesicles=vesicles)
        print(f"{sample}: simulated in {time.perf_counter() - t0:.0f} s, "
              f"placed {sim.info['placed']}", flush=True)  # fmt: skip
        for target in args.targets:
            rows += target_rows(sim, {"sample": sample}, target, args.methods, args.clicks, config)
    report(rows, "sample")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
