"""copick projects: tomograms and prompt picks in, picks and segmentations out.

``pip install "cryosam[copick]"``. A copick project (its ``config.json``) holds runs; each
run has tomograms per voxel spacing and picks per (object, user, session). ``cryosam
copick`` reads the tomogram of every run, takes the prompts from the picks of one object
(by any user/session you name), picks the runs that have prompts with their own and the
others with the query pooled from them (as ``cryosam batch`` does), and writes back, as
``--user-id``/``--session-id``: picks per object (Å, with scores) and one multilabel
segmentation named ``cryosam`` whose voxel values are the objects' copick labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryosam.app.inputs import map_diameters, parse_diameters
from cryosam.app.pick import class_queries, in_memory, pick
from cryosam.app.runner import Runner, pick_in_two_rounds
from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io import coords
from cryosam.io.copick_json import copick_transforms, has_angles
from cryosam.io.prompts import Prompt
from cryosam.io.tomogram import read_tomogram
from cryosam.method.queries import ClassQuery


def _copick():
    try:  # the optional 'copick' extra
        import copick
    except ImportError:
        raise CryosamError(
            "copick projects need the copick package: pip install 'cryosam[copick]'"
        ) from None
    return copick


def open_project(config_path):
    """The copick root of ``config_path`` (one-line errors for a missing or bad config)."""
    copick = _copick()
    path = Path(config_path)
    if not path.is_file():
        raise CryosamError(f"{path}: no such copick config file; check the path")
    try:
        return copick.from_file(str(path))
    except Exception as exc:  # copick/pydantic raise many types on a bad config
        raise CryosamError(f"{path}: not a readable copick config ({exc})") from exc


def parse_prompt_source(text: str) -> tuple[str, str | None, str | None]:
    """``OBJECT[:USER[:SESSION]]`` -> (object, user or None, session or None)."""
    parts = [p.strip() or None for p in str(text).split(":")]
    if not parts or parts[0] is None or len(parts) > 3:
        raise CryosamError(f"--prompt-object {text!r}: expected OBJECT[:USER[:SESSION]]")
    parts += [None] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


@dataclass
class CopickRun:
    """One run to pick: its name and the prompts found in it (voxels). The tomogram is read
    by the job that picks it, so a project of hundreds of runs is never all in memory."""

    name: str
    prompts: list[Prompt] = field(default_factory=list)
    map_classes: list[str] = field(default_factory=list)
    """Objects a reference map seeds in this run (no prompt picks anywhere)."""

    @property
    def classes(self) -> list[str]:
        return list(dict.fromkeys(p.class_name for p in self.prompts if not p.negative))

    @property
    def picked_classes(self) -> list[str]:
        """The prompted objects and those a reference map seeds."""
        return list(dict.fromkeys(self.classes + self.map_classes))


def list_runs(root, voxel_size: float, tomo_type: str, sources, run_names=None, exclude=None):
    """Every run (or ``run_names``) with a ``tomo_type`` tomogram at ``voxel_size``, with the
    prompts of ``sources`` (``[(object, user, session), ...]``) in voxels. Picks of the
    ``exclude`` (user, session), cryosam's own earlier output, are never prompts."""
    wanted = set(run_names or [])
    runs = [r for r in root.runs if not wanted or r.name in wanted]
    missing = wanted - {r.name for r in runs}
    if missing:
        raise CryosamError(f"copick project has no run {', '.join(sorted(missing))}")
    out = []
    for run in runs:
        spacing = run.get_voxel_spacing(voxel_size)
        if spacing is None or not spacing.get_tomograms(tomo_type):
            continue
        item = CopickRun(run.name)
        for obj, user, session in sources:
            for picks in run.get_picks(object_name=obj, user_id=user, session_id=session):
                if exclude and (picks.user_id, picks.session_id) == tuple(exclude):
                    continue
                pts, _ = picks.numpy()
                for zyx in coords.angstrom_xyz_to_zyx(pts, voxel_size):
                    item.prompts.append(Prompt(tuple(float(v) for v in zyx), obj))
        out.append(item)
    if not out:
        raise CryosamError(
            f"no run has a '{tomo_type}' tomogram at voxel spacing {voxel_size:g} Å; check "
            "--tomo-type and --voxel-spacing"
        )
    return out


@dataclass
class CopickSettings:
    """What every copick job needs (picklable, for dask workers)."""

    config_path: str
    voxel_size: float
    tomo_type: str
    diameters_px: dict
    method: Config
    user_id: str
    session_id: str
    overwrite: bool
    use_cache: bool = True
    reference_maps: dict = field(default_factory=dict)
    """class -> absolute path of a known structure's map (read by each job)."""
    symmetry: dict = field(default_factory=dict)
    """class -> point group of its map."""


def copick_job(item: CopickRun, st: CopickSettings, queries: dict, query_only: bool) -> dict:
    """Read one run's tomogram; compute its queries, or pick it and write the results back.
    Never raises: a failure comes back as a row with status ``failed``."""
    t0 = time.perf_counter()
    row = {"run": item.name, "status": "failed", "picks": {}, "seconds": 0.0, "message": ""}
    try:
        run = open_project(st.config_path).get_run(item.name)
        tomo = run.get_voxel_spacing(st.voxel_size).get_tomograms(st.tomo_type)[0]
        tomogram = in_memory(tomo.numpy(), st.voxel_size, item.name)
        if query_only:
            diam = {c: st.diameters_px[c] for c in item.classes}
            qs = class_queries(tomogram, item.prompts, diam, st.method, st.use_cache)
            row.update(status="queried", queries={c: q.to_dict() for c, q in qs.items()})
        else:
            ext = {c: ClassQuery.from_dict(q) for c, q in queries.items()}
            maps = {c: read_tomogram(Path(p)) for c, p in st.reference_maps.items()}
            out = pick(
                tomogram,
                item.prompts,
                st.diameters_px,
                st.method,
                queries=ext,
                cache=st.use_cache,
                reference_maps=maps,
                symmetry=st.symmetry,
            ).outcome
            write_results(
                run,
                st.voxel_size,
                out.picks,
                out.semantic,
                out.class_ids,
                st.user_id,
                st.session_id,
                st.overwrite,
            )
            row.update(
                status="done",
                picks={r.name: r.n_accepted for r in out.reports},
                queries={c: q.to_dict() for c, q in out.queries.items()},
            )
    except CryosamError as exc:
        row["message"] = str(exc)
    except Exception as exc:  # a bug or a copick error: report it, keep the others going
        row["message"] = f"{type(exc).__name__}: {exc}"
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def write_results(run, voxel_size, picks, semantic, class_ids, user_id, session_id, overwrite):
    """Picks per object and one multilabel segmentation (copick labels) into the run."""
    root = run.root
    labels = {o.name: o.label for o in root.config.pickable_objects}
    unknown = sorted(set(class_ids) - set(labels))
    if unknown:
        raise CryosamError(
            f"class {', '.join(unknown)} is not a pickable object of the copick project; "
            "add it to the config or use its object name"
        )
    for cls in class_ids:
        sel = picks.of_class(cls) if picks is not None else None
        if sel is None or len(sel) == 0:
            continue
        xyz = coords.zyx_to_angstrom_xyz(sel.zyx, voxel_size)
        obj = run.new_picks(cls, session_id=session_id, user_id=user_id, exist_ok=overwrite)
        scores = np.nan_to_num(np.asarray(sel.score, dtype=np.float64), nan=1.0)
        obj.meta.trust_orientation = has_angles(sel)  # stored by from_numpy
        obj.from_numpy(xyz, transforms=copick_transforms(sel), scores=scores)
    lut = np.zeros(max(class_ids.values()) + 1, dtype=np.uint8)
    for cls, i in class_ids.items():
        lut[i] = labels[cls]
    seg = run.new_segmentation(
        voxel_size,
        "cryosam",
        session_id=session_id,
        is_multilabel=True,
        user_id=user_id,
        exist_ok=overwrite,
    )
    seg.from_numpy(lut[semantic])


def refuse_existing(root, items, user_id, session_id, objects) -> None:
    """Nothing is replaced without --overwrite: say which run already has our results."""
    for item in items:
        run = root.get_run(item.name)
        for obj in objects:
            if run.get_picks(object_name=obj, user_id=user_id, session_id=session_id):
                raise CryosamError(
                    f"run {item.name} already has {obj} picks by {user_id}/{session_id}; pass "
                    "--overwrite or another --session-id"
                )


def plan_project(
    config_path,
    prompt_objects: list[str],
    diameters: list[str],
    method: Config,
    voxel_size: float = 10.0,
    tomo_type: str = "wbp",
    run_names=None,
    user_id: str = "cryosam",
    session_id: str = "0",
    overwrite: bool = False,
    use_cache: bool = True,
    reference_maps: dict | None = None,
    symmetry: dict | None = None,
) -> tuple[list[CopickRun], CopickSettings]:
    """The runs to pick (each with its prompts from ``prompt_objects``, OBJECT[:USER[:SESSION]])
    and the settings every job gets; refuses to replace earlier results unless ``overwrite``.
    Without ``prompt_objects`` the objects are those of ``reference_maps`` (object -> map
    path), found in every run from the map alone (as ``pick --reference`` without a click)."""
    maps = dict(reference_maps or {})
    if not prompt_objects and not maps:
        raise CryosamError(
            "--prompt-object OBJECT[:USER[:SESSION]] is required (or --reference-map "
            "MAP.mrc:OBJECT to find the object from its map alone)"
        )
    sources = [parse_prompt_source(s) for s in prompt_objects]
    seeded = [] if sources else list(maps)
    classes = list(dict.fromkeys(s[0] for s in sources)) or seeded
    sizes = map_diameters({c: read_tomogram(Path(maps[c])) for c in seeded}, [], diameters)
    diam = parse_diameters(diameters, classes, voxel_size, known=sizes)
    root = open_project(config_path)
    known = {o.name for o in root.pickable_objects}
    for c in seeded:
        if c not in known:
            raise CryosamError(
                f"--reference-map ...:{c}: the project has no object {c!r} "
                f"(objects: {', '.join(sorted(known))})"
            )
    items = list_runs(root, voxel_size, tomo_type, sources, run_names, (user_id, session_id))
    for item in items:
        item.map_classes = list(seeded)
    if not overwrite:
        refuse_existing(root, items, user_id, session_id, classes)
    if sources and not any(i.prompts for i in items):
        raise CryosamError(
            f"no run has picks of {', '.join(prompt_objects)}; check the object, user and session"
        )
    settings = CopickSettings(
        str(config_path),
        voxel_size,
        tomo_type,
        diam,
        method,
        user_id,
        session_id,
        overwrite,
        use_cache,
        dict(reference_maps or {}),
        dict(symmetry or {}),
    )
    return items, settings


def _failed(item: CopickRun, message: str) -> dict:
    return {"run": item.name, "status": "failed", "picks": {}, "seconds": 0.0, "message": message}


def run_project(
    items: list[CopickRun],
    st: CopickSettings,
    scheduler: str | None = None,
    workers: int = 0,
    progress=None,
) -> list[dict]:
    """Pick every run in two rounds (prompted runs first, then the others with the pooled
    queries), in this process or on dask; ``progress(row)`` as each run finishes."""
    runner = Runner(scheduler, workers, 1)
    rows = []
    try:
        rounds = pick_in_two_rounds(
            runner,
            items,
            lambda i: i.picked_classes,
            lambda i: i.name,
            lambda row: row["run"],
            lambda item, queries, query_only: (copick_job, (item, st, queries, query_only)),
            lambda i: _failed(i, "no query: every prompted run failed"),
            lambda args, message: _failed(args[0], message),
        )
        for _, row in rounds:
            if row["status"] != "queried":
                rows.append(row)
                if progress is not None:
                    progress(row)
    finally:
        runner.close()
    return rows
