"""A finished pick cut again by the user: ``cryosam recut OUT --min-score S``.

The automatic cut is one decision per class (:mod:`cryosam.method.cut`); where the scores form
one population, it is a guess a user may disagree with after looking at ``gallery.png``. A
recut reads what the pick left in its folder (``run.json``: input, configuration, prompts,
queries and cuts; ``candidates.csv``: every scored candidate), cuts the candidates again at
the user's score and rewrites the whole output set in place. Matching and verification are
not run again: only the prompts and the newly accepted candidates are segmented.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from cryosam.app.pick import PickRun, cut_record, write_pick_outputs
from cryosam.app.record import input_record, tomogram_checksum
from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.outputs import clear_abandoned
from cryosam.io.prompts import Prompt
from cryosam.io.tomogram import Tomogram, read_tomogram
from cryosam.method.candidates import Candidates, Status
from cryosam.method.cut import Cut, CutRule
from cryosam.method.pick import ClassQuery, ClassReport
from cryosam.method.pick import recut as recut_candidates
from cryosam.timing import Timer


def read_pick_folder(out: Path) -> tuple[dict, pd.DataFrame]:
    """``(run.json, candidates.csv)`` of a finished ``cryosam pick`` folder, or a one-line
    error saying what is missing."""
    out = Path(out)
    if out.is_dir():
        clear_abandoned(out)  # a commit a killed run left half done is finished first
    if not (out / "run.json").is_file():
        raise CryosamError(f"{out}: no run.json here; give the --out folder of a cryosam pick")
    try:
        record = json.loads((out / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise CryosamError(f"{out / 'run.json'} is not readable JSON ({exc})") from None
    if record.get("command") != "pick" or "classes" not in record:
        what = record.get("command", "an unknown command")
        raise CryosamError(f"{out} holds the outputs of {what}, not of a particle pick")
    if not (out / "candidates.csv").is_file():
        raise CryosamError(f"{out}: no candidates.csv; rerun the pick (it writes one)")
    table = pd.read_csv(out / "candidates.csv")
    missing = {"z", "y", "x", "score", "class", "status"} - set(table.columns)
    if missing:
        raise CryosamError(f"{out / 'candidates.csv'} lacks {', '.join(sorted(missing))}")
    return record, table


def parse_min_scores(items: list[str], classes: list[str]) -> dict[str, float]:
    """``--min-score S`` (every class) or ``--min-score CLASS=S`` (repeatable)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            raise CryosamError(
                f"--min-score wants a number or CLASS=NUMBER, got {item!r}"
            ) from None
        if not math.isfinite(value):
            raise CryosamError(f"--min-score must be a finite number, got {item!r}")
        names = [name] if sep else classes
        for n in names:
            if n not in classes:
                raise CryosamError(
                    f"--min-score names class {n!r}; this pick has {', '.join(classes)}"
                )
            out[n] = value
    if not out:
        raise CryosamError("give --min-score S (or CLASS=S): the score to cut at")
    return out


def _tomogram(record: dict, path: Path | None) -> Tomogram:
    """The pick's input, re-read (from ``path`` when the file moved) and checked to be the
    same file."""
    given = record["input"]
    source = path or (Path(given["path"]) if given.get("path") else None)
    if source is None:
        raise CryosamError("this pick had no input file; give it with --tomogram")
    tomo = read_tomogram(source, given.get("voxel_size"))
    if tomogram_checksum(tomo) != given.get("sha256"):
        raise CryosamError(
            f"{source} is not the tomogram this pick was made on (its checksum differs); "
            "give the original with --tomogram"
        )
    return tomo


def _candidates(table: pd.DataFrame, reports: list[ClassReport]) -> Candidates:
    size = {r.name: r.diameter_px for r in reports}
    names = table["class"].astype(str).to_numpy(dtype=object)
    unknown = set(names) - set(size)
    if unknown:
        raise CryosamError(f"candidates.csv names classes run.json does not: {sorted(unknown)}")
    try:
        status = np.array([Status(s) for s in table["status"].astype(str)], dtype=object)
    except ValueError as exc:
        raise CryosamError(f"candidates.csv: {exc}") from None
    columns = {
        c: table[c].to_numpy(np.float64)
        for c in ("correlation", "similarity", "mass")
        if c in table
    }
    return Candidates(
        table[["z", "y", "x"]].to_numpy(np.float64),
        table["score"].to_numpy(np.float64),
        status,
        names,
        np.array([size[n] for n in names], np.float64),
        columns,
    )


def recut(
    out: Path,
    min_scores: list[str],
    tomogram: Path | None = None,
    progress=None,
    command_line: str | None = None,
) -> PickRun:
    """Cut the pick in ``out`` again at ``min_scores`` (see :func:`parse_min_scores`) and
    rewrite its outputs in place, as one set. ``run.json`` keeps each class's automatic cut
    under ``recut``."""
    out = Path(out)
    record, frame = read_pick_folder(out)
    queries = {n: ClassQuery.from_dict(q) for n, q in record.get("queries", {}).items()}
    reports = []
    for entry in record["classes"]:
        rep = ClassReport(
            **{k: v for k, v in entry.items() if k in ClassReport.__dataclass_fields__}
        )
        rep.query = queries.get(rep.name)
        if rep.query is None:
            raise CryosamError(f"run.json has no query for class {rep.name!r}; rerun the pick")
        reports.append(rep)
    scores = parse_min_scores(min_scores, [r.name for r in reports])
    tomo = _tomogram(record, tomogram)
    config = Config.from_dict(record["config"])
    prompts = [Prompt(tuple(p["zyx"]), p["class_name"], p["negative"], p.get("tomogram"))
               for p in record.get("prompts", [])]  # fmt: skip
    automatic = record.get("recut", {}).get("automatic") or record.get("cut", {})
    timer = Timer()
    with timer.stage("recut"):
        outcome = recut_candidates(
            tomo.data,
            prompts,
            {k: float(v) for k, v in record["diameters_px_given"].items()},
            config,
            _candidates(frame, reports),
            reports,
            {n: Cut(s, CutRule.USER) for n, s in scores.items()},
            queries,  # the prompted classes' own are not used: setup keeps the others
            progress,
            tomo.voxel_size,
            _reference_maps(record),
            record.get("symmetry") or {},
        )
    outcome.picks.tomogram = tomo.name
    rec = {
        **record,
        "input": input_record(
            tomo,
            outcome.inverted,
            record["input"]["sha256"],
            record["input"].get("missing_wedge"),
            record["input"].get("spectrum_balanced"),
        ),
        **cut_record(outcome),
        "recut": {"min_score": scores, "automatic": automatic},
    }
    rec.pop("timings_s", None)
    rec.pop("versions", None)
    rec.pop("cryosam_command", None)
    run = PickRun(outcome, rec, list(outcome.prompt_outcome.warnings))
    relion5 = record.get("star_dialect") == "relion5"
    run.out = write_pick_outputs(out, tomo, run, relion5, timer, command_line, overwrite=True)
    return run


def _reference_maps(record: dict) -> dict:
    """The pick's ``--reference`` maps, read again (the angles stay in their frames)."""
    out = {}
    for cls, path in (record.get("reference_maps") or {}).items():
        try:
            m = read_tomogram(Path(path))
        except CryosamError as exc:
            raise CryosamError(
                f"the {cls} reference map {path} cannot be read ({exc}); the picks' angles are "
                "in its frame: put it back where the pick found it"
            ) from exc
        out[cls] = (m.data, m.require_voxel_size())
    return out


__all__ = ["parse_min_scores", "read_pick_folder", "recut"]
