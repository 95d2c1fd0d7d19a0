"""Record each run's cut inputs, then replay the cut rules of the current code on them.

    python benchmarks/cut_replay.py record external --methods cryosam --targets ribosome,proteasome
    python benchmarks/cut_replay.py record other_samples --methods cryosam
    python benchmarks/cut_replay.py replay

``record`` runs ``benchmarks/external.py`` or ``benchmarks/other_samples.py`` (the rest of
the line is theirs) with the cut's inputs of every cryosam run written to
``benchmarks/out/cuts/<tomogram>-<target>-<click>.npz``: the scores of the cut's pool, the
floor, the feature similarities and background, whether strays follow, the class-mass flags
the count by mass counts, the separations, the cut each rule gave, and whether each pool
candidate lies within half a diameter of a true particle of the target. ``replay`` runs
``verified_cut`` (the pick's whole cut) of the code as it is now on every recorded input and
prints the runs whose cut moves, with how many of the pool it keeps and the F1 of that many
against the truth (pool-level: duplicates count, so below a pick's own F1; a comparison of two
cuts, not a pick). Replaying the code that recorded them gives every recorded cut back to
1e-12, so a change to a cut rule can be judged on all recorded runs in seconds, before the
runs themselves are repeated. Stop 57 chose its two cut rules this way (README, "Matches clear
of a crowd of another class").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchmarks.defocus_sweep as sweep  # noqa: E402
import benchmarks.external as external  # noqa: E402
import cryosam.method.pick as pick_module  # noqa: E402
from cryosam.method import cut as cut_module  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "cuts"


class Recorder:
    """Wraps the benchmark's cryosam run and the pick's cut rules; writes one file per run."""

    def __init__(self, out: Path):
        self.out, self.run, self.cands = out, {}, None
        out.mkdir(parents=True, exist_ok=True)

    def install(self) -> None:
        run, mark, decide = (
            external.run_cryosam,
            pick_module.mark_not_particles,
            pick_module.verified_cut,
        )

        def run_cryosam(volume, vs, click, d_px, true, config, name, **kw):
            at = "_".join(str(int(c)) for c in np.asarray(click).ravel())
            tag = f"{name}-{kw.get('target', f'd{d_px:g}')}-{at}"
            self.run = {"tag": tag, "true": np.asarray(true, float), "d": float(d_px)}
            return run(volume, vs, click, d_px, true, config, name, **kw)

        def mark_not_particles(s, cls, cands, timer):
            self.cands = cands  # the last call before the cut: the pool is read from it
            return mark(s, cls, cands, timer)

        def verified_cut(scores, floor=0.0, similarity=None, background=None,
                         strays_follow=False, of_class_mass=None):  # fmt: skip
            cut = decide(scores, floor, similarity, background, strays_follow, of_class_mass)
            zyx = self.cands.zyx[self.cands.cut_pool]
            near, _ = cKDTree(self.run["true"]).query(zyx) if len(zyx) else (np.zeros(0), None)
            mass = np.asarray([] if of_class_mass is None else of_class_mass, bool)
            self._write(
                scores=np.asarray(scores, np.float64),
                floor=float(floor),
                similarity=np.asarray([] if similarity is None else similarity, np.float64),
                background=np.nan if background is None else float(background),
                strays_follow=bool(strays_follow),
                has_mass=of_class_mass is not None,
                of_class_mass=mass,
                shape_value=cut.first.value,
                separation=cut.separation,
                nearest=cut.nearest,
                final_value=cut.final.value,
                match=near < self.run["d"] / 2,
            )
            return cut

        external.run_cryosam = external.METHODS["cryosam"] = sweep.run_cryosam = run_cryosam
        pick_module.mark_not_particles = mark_not_particles
        pick_module.verified_cut = verified_cut

    def _write(self, **inputs) -> None:
        np.savez_compressed(self.out / f"{self.run['tag']}.npz", **inputs)


def replay_one(z) -> tuple[float, float, float | None]:
    """``(recorded cut, the first rule's cut now, the final cut now)`` of one recorded run
    (the final ``None`` where the run had no count by mass to consider). Files recorded
    before ``has_mass`` was kept (stop 57) said so by holding a ``separation``."""
    x, floor = z["scores"], float(z["floor"])
    sim = z["similarity"] if len(z["similarity"]) else None
    background = None if np.isnan(float(z["background"])) else float(z["background"])
    has_mass = bool(z["has_mass"]) if "has_mass" in z else "separation" in z
    mass = z["of_class_mass"] if has_mass else None
    cut = cut_module.verified_cut(x, floor, sim, background, bool(z["strays_follow"]), mass)
    return float(z["final_value"]), cut.first.value, cut.final.value if has_mass else None


def pool_f1(x, match, value: float) -> tuple[int, float]:
    kept = x >= value
    return int(kept.sum()), 2 * float(np.sum(kept & match)) / max(kept.sum() + match.sum(), 1)


def replay(folder: Path) -> int:
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise SystemExit(f"no recorded cuts in {folder}: run 'record' first")
    moved = 0
    for path in files:
        z = np.load(path)
        before, shape, final = replay_one(z)
        now = shape if final is None else final
        if abs(now - before) <= 1e-12:
            continue
        moved += 1
        n0, f0 = pool_f1(z["scores"], z["match"], before)
        n1, f1 = pool_f1(z["scores"], z["match"], now)
        print(f"{path.stem}: kept {n0} -> {n1}, pool F1 {f0:.3f} -> {f1:.3f}")
    print(f"{moved} of {len(files)} recorded cuts move")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["record", "replay"])
    ap.add_argument("benchmark", nargs="?", choices=["external", "other_samples"])
    ap.add_argument("--cuts", type=Path, default=OUT, help="where the cut inputs are kept")
    args, rest = ap.parse_known_args(argv)
    if args.mode == "replay":
        return replay(args.cuts)
    if args.benchmark is None:
        ap.error("record needs a benchmark: external or other_samples")
    Recorder(args.cuts).install()
    if args.benchmark == "external":
        return external.main(rest)
    from benchmarks import other_samples

    return other_samples.main(rest)


if __name__ == "__main__":
    sys.exit(main())
