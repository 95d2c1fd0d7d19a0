"""Accuracy on tomograms this project did not simulate (``../shared/data/dev``), from five
different single clicks per target, beside the pickers a user would otherwise run.

    python benchmarks/external.py                                  # everything (~1 h)
    python benchmarks/external.py --tomograms dev1 --targets ribosome --clicks 2
    python benchmarks/external.py --methods cryosam --set verify_top=40 --tag top40

Data: three PolNet tomograms (200 x 400 x 400 at 10 Å, protein dark; dev1 sparse, dev2 and
dev3 crowded) with their particle lists. Targets: ribosome (70S, label 2), 20S proteasome
(3), TRiC (4), rubisco (5), at the diameter a user would type. Clicks: five particles per
target drawn with a fixed seed among those whose centre is at least a quarter diameter
inside the volume (not the best-centred); the click is the listed centre.

Methods, each with its own cut and, for the baselines, with a threshold tuned on another
tomogram (dev1 <- dev2, dev2 <- dev3, dev3 <- dev2; the median of the best-F1 thresholds of
the tuning tomogram's clicks):
- ``cryosam``: ``cryosam.pick`` with the default configuration (and ``--set`` changes);
- ``cryosam-map``: ``cryosam pick --reference MAP`` with no click and no diameter: the
  target's own molecular map (as ``tm-map``) finds the prompts and the size, and is the
  class reference (not a default of ``--methods``; one run per tomogram and target);
- ``log``: the LoG blob picker at the diameter (cryosam.eval.baselines; its own cut: one
  expected false positive under a Gaussian null of its response);
- ``tm``: exemplar template matching with pytme (``$PYTME`` or ``pytme`` on PATH; its own
  venv: ``pip install pytme``) from the click's box, on the tomogram binned 2x (20 Å), 30°
  sampling; its own cut: pytme's ``--n-false-positives 1``;
- ``tm-map``: the same with the target's own molecular map (``../shared/data/templates``, the
  map the tomogram was simulated from) as the template, no click: the oracle a user who has
  the exact structure would run (not a default of this command's ``--methods``: 15 s a run).

Scores per run: P, R, F1 (a pick within half a diameter of a true centre, one to one),
F-beta 4 (within half the particle radius, the CZII challenge's rule), and from the ranked
scores of every candidate the best-threshold F1 and AP, so the ranking and the cut are judged
apart. cryosam's per-stage losses: how many true particles a candidate reaches after
matching, after verification (not duplicate or negative), after the cut, and among the picks.
Every run is cached in ``benchmarks/out/external/runs.csv`` (keyed by method, settings,
tomogram, target, click and offset; not by the code: delete the file after changing the
method), so a rerun only computes what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryosam.app.pick import in_memory, pick  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.baselines import log_blob_pick  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402
from cryosam.io.prompts import Prompt  # noqa: E402
from cryosam.io.tomogram import read_tomogram, write_volume  # noqa: E402
from cryosam.method.seeds import map_diameter_angst  # noqa: E402
from cryosam.models.cache import FeatureCache  # noqa: E402
from cryosam.volume.binning import block_mean, extract_boxes  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
OUT = Path(__file__).resolve().parent / "out" / "external"
TARGETS = {  # label in the particle lists, the diameter a user would type (Å)
    "ribosome": (2, 250.0),
    "proteasome": (3, 160.0),
    "tric": (4, 220.0),
    "rubisco": (5, 120.0),
}
TOMOGRAMS = ("dev1", "dev2", "dev3")
TUNE_ON = {"dev1": "dev2", "dev2": "dev3", "dev3": "dev2"}
KIND = {"dev1": "sparse", "dev2": "crowded", "dev3": "crowded"}
CLICK_SEED = 20261201
TM_BIN = 2
TEMPLATES = DATA.parent / "templates"
MAPS = {"ribosome": "4v4r", "proteasome": "3j9i", "tric": "4v94", "rubisco": "1bxn"}


def load(name: str):
    """``(volume float32, voxel size, particles table)`` of one dev tomogram (read once)."""
    cache = OUT / f"{name}.npy"
    if cache.exists():
        volume = np.load(cache, mmap_mode="r")
    else:
        volume = np.asarray(read_tomogram(DATA / f"{name}.int8.mrc.gz").data, np.float32)
        OUT.mkdir(parents=True, exist_ok=True)
        np.save(cache, volume)
    return volume, 10.0, pd.read_csv(DATA / f"{name}_particles.csv")


def clicks(
    particles: pd.DataFrame, label: int, d_px: float, shape, n: int, offset: float = 0.0
) -> np.ndarray:
    """``n`` particles of ``label`` drawn with a fixed seed among those at least a quarter
    diameter inside the volume (the same draw for every method); with ``offset``, each click
    is moved that many diameters from the centre in a random direction (a user's click is
    rarely on the centre)."""
    zyx = particles.loc[particles.label == label, ["z", "y", "x"]].to_numpy(np.float64)
    inside = np.all((zyx >= d_px / 4) & (zyx <= np.asarray(shape) - 1 - d_px / 4), axis=1)
    pool = zyx[inside]
    rng = np.random.default_rng(CLICK_SEED + label)
    chosen = pool[rng.permutation(len(pool))[:n]]
    if offset:
        u = rng.normal(size=chosen.shape)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        chosen = np.clip(chosen + offset * d_px * u, 0, np.asarray(shape) - 1)
    return chosen


def scores_of(pred, scores, true, d_px, cand_zyx=None, cand_scores=None) -> dict:
    """P, R, F1 at half a diameter, F-beta 4 at half a radius, best-F1 and AP of the ranking."""
    s = score_picks(pred, true, 0.5 * d_px)
    f4 = score_picks(pred, true, 0.25 * d_px, beta=4.0)
    rank_zyx = pred if cand_zyx is None else cand_zyx
    rank_scores = scores if cand_scores is None else cand_scores
    ranked = score_picks(rank_zyx, true, 0.5 * d_px, rank_scores)
    return {"n_true": s.n_true, "n_picked": s.n_pred, "P": s.precision, "R": s.recall,
            "F1": s.f1, "F4": f4.fbeta, "best F1": ranked.best_f1, "AP": ranked.average_precision,
            "best thr": ranked.best_threshold}  # fmt: skip


def reached(zyx, true, d_px) -> int:
    """How many true particles have a point within half a diameter."""
    from scipy.spatial import cKDTree

    if not len(zyx):
        return 0
    dist, idx = cKDTree(np.asarray(zyx).reshape(-1, 3)).query(true, distance_upper_bound=d_px / 2)
    return int(np.isfinite(dist).sum())


def run_cryosam(volume, vs, click, d_px, true, config: Config, name: str, **kw) -> dict:
    tomo = in_memory(volume, vs, name)
    cache = FeatureCache(OUT / "cache")
    t0 = time.perf_counter()
    if kw.get("target_map"):  # the map alone: no click, the map's own size
        density = true_map(kw["target_map"], 1)
        size = map_diameter_angst(density, vs) / vs
        maps = {"target": in_memory(density, vs, kw["target_map"])}
        run = pick(tomo, [], {"target": size}, config, cache=cache, reference_maps=maps)
    else:
        run = pick(tomo, [Prompt(tuple(click), "target")], {"target": d_px}, config, cache=cache)
    secs = time.perf_counter() - t0
    out = run.outcome
    st = out.candidate_status
    cz, cs = out.candidates.zyx, out.candidates.score
    ranked = np.isin(st, ["accepted", "below_cut", "size_mismatch", "other_class", "candidate"])
    top = float(np.max(cs[ranked], initial=0.0)) + 1.0  # the prompt ranks first
    row = scores_of(out.picks.zyx, out.picks.score, true, d_px,
                    np.concatenate([cz[ranked], out.picks.zyx[:1]]),
                    np.concatenate([cs[ranked], [top]]))  # fmt: skip
    rep = out.reports[0]
    row["_zyx"], row["_scores"] = cz[ranked], cs[ranked]  # for studies of the cut
    # every candidate with its status: the cut's own pool (membranes, beads) can be replayed
    row["_all_zyx"], row["_all_scores"], row["_all_status"] = cz, cs, np.asarray(st, str)
    # and the picks themselves (mask centroids): pick-level studies (duplicates, the tail)
    row["_picks_zyx"], row["_picks_score"] = out.picks.zyx, np.asarray(out.picks.score)
    for col, values in out.candidate_columns.items():
        row[f"_{col}"] = np.asarray(values)[ranked]
    row.update({
        "seconds": secs, "cut": rep.cut, "cut rule": rep.cut_method,
        "reach candidates": reached(cz, true, d_px),
        "reach verified": reached(cz[~np.isin(st, ["duplicate", "negative"])], true, d_px),
        "reach cut": reached(cz[np.isin(st, ["accepted", "prompt", "size_mismatch",
                                             "other_class"])], true, d_px),
        "reach size": reached(cz[np.isin(st, ["accepted", "prompt"])], true, d_px),
        "reach picks": reached(out.picks.zyx, true, d_px),
    })  # fmt: skip
    # the cut's two rules: what each keeps, and the F1 of that many of the best ranked
    # candidates (README, Benchmarks: "The cut's two rules")
    best_first = cz[ranked][np.argsort(-cs[ranked])]
    for rule, n in (("shape", rep.n_by_shape), ("mass", rep.n_by_mass)):
        hit = score_picks(best_first[:n], true, d_px / 2) if n else None
        row[f"{rule} kept"] = n
        row[f"F1 {rule} count"] = 2 * hit.tp / (n + len(true)) if hit else float("nan")
    row["separation"] = rep.separation
    return row


def run_log(volume, vs, click, d_px, true, **_) -> dict:
    t0 = time.perf_counter()
    zyx, scores, cutoff = log_blob_pick(np.asarray(volume), d_px, dark=True)
    secs = time.perf_counter() - t0
    keep = scores >= cutoff
    row = scores_of(zyx[keep], scores[keep], true, d_px, zyx, scores)
    row.update({"seconds": secs, "cut": cutoff, "_zyx": zyx, "_scores": scores})
    return row


def pytme_executable() -> str | None:
    exe = os.environ.get("PYTME") or shutil.which("pytme")
    return exe if exe and Path(exe).exists() else None


def _binned(volume, b: int = TM_BIN) -> np.ndarray:
    """``volume`` binned ``b`` times (the edge remainder dropped)."""
    return block_mean(np.asarray(volume)[tuple(slice(0, (s // b) * b) for s in volume.shape)], b)


def true_map(target: str, b: int = TM_BIN) -> np.ndarray:
    """The molecular map the dev tomograms' ``target`` was simulated from (``MAPS``; protein
    bright, 10 Å), binned ``b`` times."""
    import mrcfile

    with mrcfile.open(TEMPLATES / f"{MAPS[target]}.mrc", permissive=True) as f:
        return _binned(np.asarray(f.data, np.float32), b)


def _pytme(v, template, d_px, vs) -> dict:
    """pytme's match (30° sampling) and peaks on the binned tomogram ``v`` with ``template``
    (both protein dark); its own cut: ``--n-false-positives 1``."""
    exe = pytme_executable()
    if exe is None:
        raise RuntimeError("pytme not found: set PYTME=/path/to/venv/bin/pytme")
    b = TM_BIN
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_volume(tmp / "t.mrc", v, vs * b)
        write_volume(tmp / "template.mrc", template, vs * b)
        subprocess.run([exe, "match", "-m", str(tmp / "t.mrc"), "-i", str(tmp / "template.mrc"),
                        "-a", "30", "-n", "2", "-o", str(tmp / "tm.pickle")],
                       check=True, capture_output=True)  # fmt: skip
        common = [exe, "postprocess", "--input-file", str(tmp / "tm.pickle"),
                  "--output-format", "orientations", "--num-peaks", "3000",
                  "--min-distance", str(max(1, int(round(0.5 * d_px / b))))]  # fmt: skip
        subprocess.run(common + ["--output-prefix", str(tmp / "all")], check=True,
                       capture_output=True)  # fmt: skip
        proc = subprocess.run(common + ["--n-false-positives", "1", "--output-prefix",
                                        str(tmp / "fp")], check=True, capture_output=True,
                              text=True)  # fmt: skip
        table = pd.read_csv(tmp / "all.tsv", sep="\t")
    cutoff = float("nan")
    for line in proc.stdout.splitlines() + proc.stderr.splitlines():
        if "Determined cutoff --min-score" in line:
            cutoff = float(line.rsplit(" ", 1)[-1].rstrip("."))
    zyx = table[["z", "y", "x"]].to_numpy(np.float64) * b + (b - 1) / 2.0
    scores = table["score"].to_numpy(np.float64)
    return {"zyx": zyx, "scores": scores, "cutoff": cutoff,
            "seconds": time.perf_counter() - t0}  # fmt: skip


def _tm_row(found: dict, true, d_px) -> dict:
    zyx, scores = found["zyx"], found["scores"]
    keep = scores >= found["cutoff"]
    row = scores_of(zyx[keep], scores[keep], true, d_px, zyx, scores)
    row.update({"seconds": found["seconds"], "cut": found["cutoff"], "_zyx": zyx,
                "_scores": scores})  # fmt: skip
    return row


def run_tm(volume, vs, click, d_px, true, **_) -> dict:
    """pytme exemplar template matching on the tomogram binned ``TM_BIN`` times, the
    template the click's box."""
    v = _binned(volume)
    d = d_px / TM_BIN
    n = 2 * int(np.ceil(0.65 * d)) + 1
    box = extract_boxes(v, np.asarray(click)[None] / TM_BIN, n)[0]
    return _tm_row(_pytme(v, box, d_px, vs), true, d_px)


def run_tm_map(volume, vs, click, d_px, true, target: str = "", **_) -> dict:
    """pytme template matching with the target's own molecular map (``MAPS``: the map the
    tomogram was simulated from, inverted to dark protein and binned as the tomogram): the
    oracle a user with the exact structure would run; no click."""
    return _tm_row(_pytme(_binned(volume), -true_map(target), d_px, vs), true, d_px)


def run_cryosam_map(volume, vs, click, d_px, true, config: Config, name: str, target="") -> dict:
    """cryosam with the target's own map (``MAPS``) and no click: the map's best matches are
    the prompts, its size the diameter (picks scored at the typed diameter, as the others)."""
    return run_cryosam(volume, vs, click, d_px, true, config, name, target_map=target)


METHODS = {"cryosam": run_cryosam, "log": run_log, "tm": run_tm, "tm-map": run_tm_map,
           "cryosam-map": run_cryosam_map}  # fmt: skip


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def candidates_path(method, tomo, target, k, settings="-", offset: float = 0.0) -> Path:
    tag = ("" if settings == "-" else f"-{settings}") + (f"-offset{offset:g}" if offset else "")
    return OUT / "candidates" / f"{method}-{tomo}-{target}-{k}{tag}.npz"


def run_all(args, config: Config) -> pd.DataFrame:
    runs_csv = OUT / "runs.csv"
    done = pd.read_csv(runs_csv) if runs_csv.exists() else pd.DataFrame()
    if len(done) and "offset" not in done:
        done["offset"] = 0.0
    settings = digest(config.to_dict())
    rows = []
    needed = set(args.tomograms) | {TUNE_ON[t] for t in args.tomograms}
    for tomo in [t for t in TOMOGRAMS if t in needed]:
        volume, vs, particles = load(tomo)
        for target in args.targets:
            label, d_angst = TARGETS[target]
            d_px = d_angst / vs
            true = particles.loc[particles.label == label, ["z", "y", "x"]].to_numpy(float)
            picked = clicks(particles, label, d_px, volume.shape, args.clicks, args.offset)
            for k, click in enumerate(picked):
                for method in args.methods:
                    if method.startswith("cryosam") and tomo not in args.tomograms:
                        continue  # a tuning tomogram: only the baselines need it
                    own = method.startswith("cryosam")
                    key = {"method": method, "settings": settings if own else "-",
                           "tomogram": tomo, "target": target, "click": k,
                           "offset": float(args.offset)}  # fmt: skip
                    if method in ("log", "tm-map", "cryosam-map") and k > 0:  # no click
                        continue
                    old = done
                    for col, val in key.items():
                        old = old[old[col].astype(str) == str(val)] if len(old) else old
                    if len(old):
                        rows.append(old.iloc[-1].to_dict())
                        continue
                    if method.startswith("tm") and pytme_executable() is None:
                        continue
                    row = METHODS[method](volume, vs, click, d_px, true, config=config,
                                          name=tomo, target=target)  # fmt: skip
                    extra = {c[1:]: row.pop(c) for c in list(row) if c.startswith("_")}
                    if extra:
                        path = candidates_path(
                            method, tomo, target, k, key["settings"], key["offset"]
                        )
                        path.parent.mkdir(parents=True, exist_ok=True)
                        extra["scores"] = extra.pop("scores")
                        np.savez_compressed(path, **extra)
                    row = {**key, "tag": args.tag, "click zyx": ",".join(f"{c:g}" for c in click),
                           **row}  # fmt: skip
                    rows.append(row)
                    done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                    done.to_csv(runs_csv, index=False)
                    print(f"{method} {tomo} {target} click {k}: F1 {row['F1']:.3f} "
                          f"(P {row['P']:.2f} R {row['R']:.2f}, best {row['best F1']:.3f}) "
                          f"in {row['seconds']:.0f} s", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def tuned(df: pd.DataFrame, method: str, tomo: str, target: str) -> float:
    """The median best-F1 threshold of ``method`` over the clicks on the tuning tomogram."""
    sel = df[(df.method == method) & (df.tomogram == TUNE_ON[tomo]) & (df.target == target)]
    return float(np.median(sel["best thr"])) if len(sel) else float("nan")


def with_tuned(df: pd.DataFrame, particles_of) -> pd.DataFrame:
    """Rows of the baselines at the threshold tuned on another tomogram."""
    out = []
    for _, r in df[df.method.isin(["log", "tm", "tm-map"])].iterrows():
        thr = tuned(df, r.method, r.tomogram, r.target)
        path = candidates_path(r.method, r.tomogram, r.target, int(r.click))
        if not np.isfinite(thr) or not path.exists():
            continue
        data = np.load(path)
        label, d_angst = TARGETS[r.target]
        true = particles_of(r.tomogram, label)
        keep = data["scores"] >= thr
        row = {**r.to_dict(), "method": f"{r.method} (tuned)", "cut": thr}
        row.update(scores_of(data["zyx"][keep], data["scores"][keep], true, d_angst / 10.0,
                             data["zyx"], data["scores"]))  # fmt: skip
        out.append(row)
    return pd.concat([df, pd.DataFrame(out)], ignore_index=True) if out else df


def summary(df: pd.DataFrame, tomograms) -> pd.DataFrame:
    rows = []
    df = df[df.tomogram.isin(tomograms)]
    for (tomo, target, method), g in df.groupby(["tomogram", "target", "method"], sort=False):
        rows.append({"tomogram": f"{tomo} ({KIND[tomo]})", "target": target, "method": method,
                     "clicks": len(g), "F1 median": g.F1.median(), "F1 worst": g.F1.min(),
                     "P": g.P.median(), "R": g.R.median(), "F4": g.F4.median(),
                     "best F1": g["best F1"].median(), "AP": g.AP.median(),
                     "picks": int(round(g.n_picked.median())), "true": int(g.n_true.iloc[0]),
                     "seconds": round(float(g.seconds.median()), 1)})  # fmt: skip
    out = pd.DataFrame(rows)
    methods = ["cryosam", "log", "log (tuned)", "tm", "tm (tuned)", "cryosam-map", "tm-map",
               "tm-map (tuned)"]  # fmt: skip
    order = {m: k for k, m in enumerate(methods)}
    out["_t"] = out.target.map({t: k for k, t in enumerate(TARGETS)})
    out["_m"] = out.method.map(order).fillna(len(order))
    return out.sort_values(["tomogram", "_t", "_m"], kind="stable").drop(columns=["_t", "_m"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tomograms", default=",".join(TOMOGRAMS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--methods", default="cryosam,log,tm", help="also: tm-map, cryosam-map")
    ap.add_argument("--clicks", type=int, default=5)
    ap.add_argument(
        "--offset",
        type=float,
        default=0.0,
        help="move each click this many diameters off the centre (0.25: a quarter)",
    )
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--tag", default="", help="a label for this configuration's rows")
    args = ap.parse_args(argv)
    args.tomograms = args.tomograms.split(",")
    args.targets = args.targets.split(",")
    args.methods = args.methods.split(",")
    config = Config().with_overrides(args.set)
    df = run_all(args, config)
    tables = {}

    def particles_of(tomo, label):
        if tomo not in tables:
            tables[tomo] = pd.read_csv(DATA / f"{tomo}_particles.csv")
        t = tables[tomo]
        return t.loc[t.label == label, ["z", "y", "x"]].to_numpy(float)

    df = with_tuned(df, particles_of)
    df = df[df.tomogram.isin(args.tomograms)]
    summary_df = summary(df, args.tomograms)
    print("\n## Median and worst over clicks (each method with its own cut)\n")
    print(format_table(summary_df.to_dict("records"), list(summary_df.columns)))
    stages = df[df.method == "cryosam"]
    if len(stages):
        cols = ["n_true", "reach candidates", "reach verified", "reach cut", "reach size",
                "reach picks"]  # fmt: skip
        loss = stages.groupby(["tomogram", "target"], sort=False)[cols].median().round()
        loss = loss.astype(int).reset_index()
        print("\n## cryosam: true particles reached at each stage (median over clicks)\n")
        print(format_table(loss.to_dict("records"), list(loss.columns)))
        if "separation" in stages:  # runs.csv rows from before stop 51 lack it
            cols = ["tomogram", "target", "click", "separation", "F1", "shape kept",
                    "F1 shape count", "mass kept", "F1 mass count"]  # fmt: skip
            two = stages[cols].dropna(subset=["separation"]).round(3)
            print("\n## cryosam: the cut's two rules, per click (F1 of that many best ranked)\n")
            print(format_table(two.to_dict("records"), cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
