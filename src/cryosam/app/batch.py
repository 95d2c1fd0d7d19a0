"""Many tomograms at once: ``cryosam batch`` on dask.distributed, resumable.

Each input gets its own output folder ``OUT/<input name without extensions>/`` with
exactly what ``cryosam pick`` writes there, plus ``OUT/summary.csv`` (one row per
input: status, picks per class, seconds) and every tomogram's picks in one file each for the
averaging programs: ``OUT/particles.star`` (RELION 3, or 5 with ``--relion5``, then also
``OUT/relion5_import.star``, the index RELION 5's Import -> Coordinates takes) and
``OUT/particles.tbl`` (Dynamo, tomogram index k = the k-th input, named in
``OUT/particles.doc``). ``--tomo-name`` names each tomogram in the STAR files (a template:
``{stem}.tomostar`` for Warp).

Prompts: a prompt row goes to the tomogram it names (CSV column ``tomogram``, STAR
``rlnMicrographName``/``rlnTomoName``); rows that name none and ``--point`` /
``--negative`` flags belong to the first input. A tomogram without positive prompts
for a class is searched with that class's query pooled (weighted by number of
prompts) over the tomograms that have them. So the work is two rounds:

1. every prompted tomogram that lacks none of the prompted classes is picked
   outright; a prompted tomogram that lacks some class only has its queries computed
   (its features go to the cache and are reused in round 2);
2. every other tomogram is picked with its own prompts plus the pooled queries.

Resuming: a tomogram whose folder holds a ``run.json`` with the same batch key
(input file, size and modification time, settings, its own prompts and where its
pooled queries come from) is skipped. Outputs are staged and moved in only when a
tomogram is complete (:mod:`cryosam.io.outputs`), so an interrupted batch leaves
finished tomograms whole and nothing half-written; a failing tomogram is reported in
the summary and does not stop the others.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import starfile

from cryosam.app.inputs import map_diameters, parse_diameters
from cryosam.app.pick import PICK_OUTPUTS, RELION5_INDEX, class_queries, pick
from cryosam.app.resources import available_bytes, check_fits, estimate_run_bytes
from cryosam.app.runner import Runner, pick_in_two_rounds
from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.atomic import write_text_atomic
from cryosam.io.dynamo import merge_dynamo_tables
from cryosam.io.outputs import acquire_lock, check_outputs, clear_abandoned
from cryosam.io.prompts import Prompt, parse_point, read_prompt_file, validate_prompts
from cryosam.io.star import merge_star, write_relion5_index
from cryosam.io.tomogram import (
    is_tomogram_name,
    maps_float32,
    read_header,
    read_tomogram,
    tomogram_stem,
)
from cryosam.method.queries import ClassQuery

SUMMARY = "summary.csv"
LIST_SUFFIXES = (".txt", ".lst", ".list")


def collect_inputs(items: list[str]) -> list[Path]:
    """Tomogram paths from files, folders (their tomograms), glob patterns and list files
    (``.txt``: one path per line, relative to the list; ``#`` comments), in order, once each."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise CryosamError(f"{item}: the pattern matches no file")
            found += [m for m in matches if m.is_file()]
        elif path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and is_tomogram_name(p.name))
            if not inside:
                raise CryosamError(f"{path}: the folder holds no tomogram (.mrc, .rec, ...)")
            found += inside
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
            entries = [Path(ln) for ln in lines if ln]
            if not entries:
                raise CryosamError(f"{path}: the list file names no tomogram")
            listed = [e if e.is_absolute() else path.parent / e for e in entries]
            missing = [str(e) for e in listed if not e.is_file()]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise CryosamError(
                    f"{path}: names {missing[0]}{more}, which is not a file; fix the list "
                    "(paths are relative to the list's folder)"
                )
            found += listed
        elif path.suffix.lower() == ".json" and path.is_file():
            raise CryosamError(
                f"{path} looks like a copick project: pick it with 'cryosam copick {path} "
                "--prompt-object OBJECT[:USER] --diameter Å' (same --workers/--scheduler)"
            )
        elif path.exists():
            found.append(path)
        else:
            raise CryosamError(f"{path}: no such file, folder or pattern; check the path")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise CryosamError("no input tomograms; give files, folders, patterns or a list file")
    stems: dict[str, Path] = {}
    for p in unique:
        stem = tomogram_stem(p)
        if stem in stems:
            raise CryosamError(
                f"{stems[stem]} and {p} would share the output folder {stem}/; rename one"
            )
        stems[stem] = p
    return unique


@dataclass
class Job:
    """One input tomogram of a batch."""

    path: Path
    name: str
    out: Path
    prompts: list[Prompt] = field(default_factory=list)
    map_classes: list[str] = field(default_factory=list)
    """Classes with no click anywhere that a reference map seeds in this tomogram."""

    @property
    def classes(self) -> list[str]:
        """The classes prompted in this tomogram."""
        return list(dict.fromkeys(p.class_name for p in self.prompts if not p.negative))

    @property
    def picked_classes(self) -> list[str]:
        """Every class picked here without another tomogram's query: the prompted ones and
        those a reference map seeds."""
        return list(dict.fromkeys(self.classes + self.map_classes))


@dataclass
class BatchSettings:
    """Everything a worker needs besides the job (picklable)."""

    diameters: list[str]
    config: Config
    voxel_size: float | None = None
    relion5: bool = False
    use_cache: bool = True
    overwrite: bool = False
    command_line: str | None = None
    tomo_name: str | None = None
    reference_maps: dict[str, str] = field(default_factory=dict)
    """Class -> path of a known structure (``--reference-map``), read by each job."""
    symmetry: dict[str, str] = field(default_factory=dict)


def plan_jobs(
    inputs,
    points,
    negatives,
    prompts_file,
    out: Path,
    voxel_size=None,
    reference: str | None = None,
    map_classes=(),
) -> list[Job]:
    """One job per input with the prompts that belong to it (see the module's doc).

    ``reference`` names the input (file name or name without extensions) that the
    command-line points and the file rows without a tomogram belong to (default: the first).
    ``map_classes``: the classes reference maps are given for; when no tomogram is prompted
    for any class, every tomogram's are found from the maps alone (as ``pick --reference``
    without a click)."""
    jobs = [Job(Path(p), tomogram_stem(p), out / tomogram_stem(p)) for p in inputs]
    by_stem = {j.name: j for j in jobs}
    ref = 0
    if reference is not None:
        stem = tomogram_stem(reference)
        if stem not in by_stem:
            raise CryosamError(
                f"--reference {reference}: not among the inputs ({', '.join(list(by_stem)[:5])}"
                f"{', ...' if len(by_stem) > 5 else ''})"
            )
        ref = list(by_stem).index(stem)
    jobs[ref].prompts += [parse_point(p) for p in points or []]
    jobs[ref].prompts += [parse_point(p, negative=True) for p in negatives or []]
    if prompts_file is not None:
        csv_like = Path(prompts_file).suffix.lower() in (".csv", ".txt", ".tsv")
        rows_once = read_prompt_file(prompts_file) if csv_like else None
        unknown: set[str] = set()
        for k, job in enumerate(jobs):
            if rows_once is None:  # STAR/copick coordinates may need this tomogram's header
                shape, vs = read_header(job.path, voxel_size)
                rows = read_prompt_file(prompts_file, shape, vs)
            else:
                rows = rows_once
            for r in rows:
                stem = tomogram_stem(r.tomogram) if r.tomogram else None
                if stem == job.name or (stem is None and k == ref):
                    job.prompts.append(r)
                elif stem is not None and stem not in by_stem:
                    unknown.add(r.tomogram)
        if unknown:
            raise CryosamError(
                f"{prompts_file}: prompts name tomogram(s) {', '.join(sorted(unknown))} that "
                "are not among the inputs; add them or remove those rows"
            )
    if not any(j.classes for j in jobs):
        if not map_classes:
            raise CryosamError(
                "no positive prompts: give --point z,y,x[:CLASS] (and --reference) or "
                "--prompts FILE, or a --reference-map to find the particles from"
            )
        for job in jobs:  # the maps seed every tomogram (cryosam.method.seeds)
            job.map_classes = list(map_classes)
    return jobs


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def batch_key(job: Job, settings: BatchSettings, sources: dict[str, list[str]]) -> str:
    """What decides a tomogram's outputs: input file (path, size, mtime), settings, its own
    prompts and, per pooled class, the prompted tomograms the query comes from (each with its
    input and prompts: a corrected prompt redoes every tomogram its query reaches)."""
    st = job.path.stat()
    sources_prompts = {
        cls: sorted(names) for cls, names in sources.items() if cls not in job.classes
    }
    return _digest(
        {
            "input": [str(job.path.resolve()), st.st_size, st.st_mtime_ns],
            "config": settings.config.to_dict(),
            "diameters": settings.diameters,
            "voxel_size": settings.voxel_size,
            "relion5": settings.relion5,
            "tomo_name": settings.tomo_name,
            "reference_maps": settings.reference_maps,
            "symmetry": settings.symmetry,
            "prompts": [p.__dict__ for p in job.prompts],
            "sources": sources_prompts,
        }
    )


def batch_keys(jobs: list[Job], settings: BatchSettings) -> dict[str, str]:
    """Each job's :func:`batch_key`, with the prompted jobs of every class as its sources."""
    all_classes = list(dict.fromkeys(c for j in jobs for c in j.classes))
    sources = {c: [_source_id(j, c) for j in jobs if c in j.classes] for c in all_classes}
    return {j.name: batch_key(j, settings, sources) for j in jobs}


def _source_id(job: Job, cls: str) -> str:
    """What of a prompted tomogram decides the pooled query of ``cls`` it contributes to:
    its input file (path, size, mtime) and its prompts of that class (and negatives)."""
    st = job.path.stat() if job.path.exists() else None
    prompts = [p.__dict__ for p in job.prompts if p.class_name in (cls, None)]
    stat = [st.st_size, st.st_mtime_ns] if st else None
    return f"{job.name}:" + _digest({"input": [str(job.path), stat], "prompts": prompts})


def finished_run(job: Job, key: str) -> dict | None:
    """The run.json of an earlier run with the same batch key, if there is one."""
    try:
        record = json.loads((job.out / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("batch", {}).get("key") == key else None


def _row(job: Job, status: str, seconds: float, counts=None, message: str = "") -> dict:
    return {
        "tomogram": job.path.name,
        "status": status,
        "picks": counts or {},
        "seconds": round(seconds, 1),
        "output": str(job.out),
        "message": message,
    }


def run_job(job: Job, settings: BatchSettings, queries: dict, key: str, query_only=False):
    """Pick one tomogram (or, with ``query_only``, compute its queries). Runs on a worker;
    never raises: failures come back as a row with status ``failed``."""
    t0 = time.perf_counter()
    try:
        return _run_job(job, settings, queries, key, query_only, t0)
    except CryosamError as exc:
        return _row(job, "failed", time.perf_counter() - t0, message=str(exc))
    except MemoryError:
        return _row(
            job,
            "failed",
            time.perf_counter() - t0,
            message="out of memory; use fewer --workers or a larger machine",
        )
    except Exception as exc:  # a bug: report it, keep the batch going
        return _row(
            job,
            "failed",
            time.perf_counter() - t0,
            message=f"internal error: {type(exc).__name__}: {exc}",
        )


def _run_job(job, settings, queries, key, query_only, t0):
    done = finished_run(job, key)
    if done is not None:
        row = _row(
            job,
            "skipped",
            time.perf_counter() - t0,
            {c["name"]: c["n_accepted"] for c in done.get("classes", [])},
            "finished earlier with the same settings",
        )
        row["queries"] = done.get("queries", {})
        return row
    if not query_only:
        check_outputs(job.out, PICK_OUTPUTS, settings.overwrite)
    tomo = read_tomogram(job.path, voxel_size=settings.voxel_size)
    vs = tomo.require_voxel_size()
    check_fits(tomo.shape, maps_float32(job.path, tomo.mode))
    ext = {c: ClassQuery.from_dict(q) for c, q in queries.items() if c not in job.classes}
    maps = {c: read_tomogram(Path(p)) for c, p in settings.reference_maps.items()}
    classes = job.picked_classes
    sizes = map_diameters({c: maps[c] for c in job.map_classes}, [], settings.diameters)
    diam = parse_diameters(settings.diameters, classes, vs, tomo.shape, sizes) if classes else {}
    if job.prompts:
        positive = not ext and not job.map_classes  # else negatives alone are fine
        validate_prompts(job.prompts, tomo.shape, require_positive=positive)
    if query_only:
        qs = class_queries(tomo, job.prompts, diam, settings.config, settings.use_cache)
        row = _row(job, "queried", time.perf_counter() - t0)
        row["queries"] = {c: q.to_dict() for c, q in qs.items()}
        return row
    run = pick(
        tomo,
        job.prompts,
        diam,
        settings.config,
        out=job.out,
        overwrite=settings.overwrite,
        relion5=settings.relion5,
        cache=settings.use_cache,
        queries=ext,
        command_line=settings.command_line,
        tomo_name=settings.tomo_name,
        reference_maps=maps,
        symmetry=settings.symmetry,
        record={"batch": {"key": key, "pooled_classes": sorted(ext)}},
    )
    row = _row(
        job, "done", time.perf_counter() - t0, {r.name: r.n_accepted for r in run.outcome.reports}
    )
    row["queries"] = {c: q.to_dict() for c, q in run.outcome.queries.items()}
    return row


DONE = ("done", "skipped")
MERGED = ("particles.star", "particles.tbl", "particles.doc", RELION5_INDEX)
"""The batch's files with every tomogram's picks (rewritten after each batch)."""


def write_merged(out: Path, jobs: list[Job]) -> None:
    """Every finished tomogram's picks in one STAR file and one Dynamo table, and with RELION 5
    STAR files the index for RELION 5's import (each tomogram's own picks.star)."""
    jobs = [j for j in jobs if (j.out / "picks.star").exists()]
    for name in MERGED:
        (out / name).unlink(missing_ok=True)  # no stale merge of an earlier batch
    if not jobs:
        return
    merge_star(out / "particles.star", [j.out / "picks.star" for j in jobs])
    tables = [j.out / "picks.tbl" for j in jobs]
    if all(t.exists() for t in tables):
        merge_dynamo_tables(out / "particles.tbl", tables)
    index = {}
    for j in jobs:
        particles = starfile.read(j.out / "picks.star", always_dict=True).get("particles")
        if particles is not None and "rlnTomoName" in particles and len(particles):
            index[str(particles["rlnTomoName"].iloc[0])] = j.out / "picks.star"
    if index:
        write_relion5_index(out / RELION5_INDEX, index)


def write_summary(path: Path, rows: list[dict], classes: list[str]) -> None:
    """``summary.csv``: tomogram, status, picks per class, seconds, output, message."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["tomogram", "status", *[f"n_{c}" for c in classes], "seconds", "output", "message"])
    for r in rows:
        counts = [r["picks"].get(c, "") for c in classes]
        w.writerow([r["tomogram"], r["status"], *counts, r["seconds"], r["output"], r["message"]])
    write_text_atomic(path, buf.getvalue(), overwrite=True)


def default_workers(n_jobs: int, bytes_per_job: int) -> int:
    """Workers for a LocalCluster: one per core, no more than memory or the jobs allow."""
    cores = os.cpu_count() or 1
    mem = available_bytes()
    by_mem = max(1, int(0.8 * mem // max(bytes_per_job, 1))) if mem else cores
    return max(1, min(n_jobs, cores, by_mem))


def _job_bytes(job: Job) -> int:
    """Estimated peak memory of picking one input (0 when its header cannot be read)."""
    try:
        shape, _ = read_header(job.path)
    except CryosamError:
        return 0
    return estimate_run_bytes(shape)


def run_batch(
    jobs: list[Job],
    settings: BatchSettings,
    out: Path,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    progress=None,
) -> list[dict]:
    """Run every job; write ``out/summary.csv`` as tomograms finish. Returns the rows."""
    all_classes = list(dict.fromkeys(c for j in jobs for c in j.picked_classes))
    keys = batch_keys(jobs, settings)
    finished = {j.name: finished_run(j, keys[j.name]) is not None for j in jobs}
    if not settings.overwrite:
        stale = [
            j.out
            for j in jobs
            if any((j.out / n).exists() for n in PICK_OUTPUTS) and not finished[j.name]
        ]
        if stale:
            more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
            raise CryosamError(
                f"{stale[0]}{more} holds outputs of a different run (other inputs, prompts or "
                "settings); pass --overwrite to replace them or choose another --out"
            )
    if all(finished.values()):
        scheduler, workers = None, 0  # all skipped: no cluster to start (seconds saved)
    if workers is None:
        workers = default_workers(len(jobs), max(_job_bytes(j) for j in jobs))
    out.mkdir(parents=True, exist_ok=True)
    lock = acquire_lock(out)
    rows: dict[str, dict] = {}
    tick = progress or (lambda row: None)

    def record(row: dict) -> None:
        rows[Path(row["output"]).name] = row
        done = [
            rows[j.name] for j in jobs if j.name in rows and rows[j.name]["status"] != "queried"
        ]
        write_summary(out / SUMMARY, done, all_classes)

    def call(job, queries, query_only):
        return run_job, (job, settings, queries, keys[job.name], query_only)

    def no_query(job):
        return _row(job, "failed", 0.0, message="no query: every prompted tomogram failed")

    try:
        runner = Runner(scheduler, workers, threads)
    except BaseException:  # an unreachable scheduler: no lock left behind
        lock.unlink(missing_ok=True)
        raise
    try:
        rounds = pick_in_two_rounds(
            runner,
            jobs,
            lambda j: j.picked_classes,
            lambda j: j.name,
            lambda row: Path(row["output"]).name,
            call,
            no_query,
            lambda args, message: _row(args[0], "failed", 0.0, message=message),
        )
        for _, row in rounds:
            record(row)
            if row["status"] != "queried":
                tick(row)
        write_merged(out, [j for j in jobs if rows.get(j.name, {}).get("status") in DONE])
    finally:
        own_workers = runner.client is None or runner.cluster is not None
        runner.close()
        if own_workers:  # they are gone now: what they were writing is abandoned
            for j in jobs:
                clear_abandoned(j.out)
        lock.unlink(missing_ok=True)
    return [rows[j.name] for j in jobs if j.name in rows]
