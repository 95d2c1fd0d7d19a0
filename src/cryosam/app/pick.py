"""The one pick path: a tomogram in, picks (and, with ``out``, every output file) out.

The command line, ``cryosam batch``, copick projects and the napari widget all call
:func:`pick`, so all of them get the feature cache, the run record and the same options.
Nothing is printed: progress goes to a callback and warnings come back in :class:`PickRun`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryosam.app.record import input_record, tomogram_checksum, write_run_json
from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.atomic import atomic_path
from cryosam.io.dynamo import write_dynamo_table
from cryosam.io.figures import write_average_figure, write_gallery, write_pick_preview
from cryosam.io.outputs import check_outputs, output_set
from cryosam.io.picks import write_picks_csv
from cryosam.io.prompts import Prompt
from cryosam.io.star import RELION3, RELION5, write_relion5_index, write_star
from cryosam.io.tomogram import Tomogram, tomogram_stem, write_volume
from cryosam.method.cut import CutRule, weak_cut
from cryosam.method.pick import ClassQuery, PickOutcome, pick_particles, prompt_queries
from cryosam.models.cache import FeatureCache
from cryosam.timing import Timer

PICK_OUTPUTS = [
    "picks.csv",
    "candidates.csv",
    "picks.star",
    "picks.tbl",
    "picks.doc",
    "masks/semantic.mrc",
    "masks/instances.mrc",
    "preview.png",
    "gallery.png",
    "run.json",
]
"""Every file ``cryosam pick`` always writes (one set: all of them or none); beside them
``references/CLASS.mrc`` (and ``CLASS_mask.mrc``) per verified class and, with ``--relion5``,
``relion5_import.star``."""
RELION5_INDEX = "relion5_import.star"


@dataclass
class PickRun:
    """What :func:`pick` gives back: the method's outcome, the run record (what ``run.json``
    holds), the warnings a user should see, and where the outputs went (``None``: nowhere)."""

    outcome: PickOutcome
    record: dict
    warnings: list[str] = field(default_factory=list)
    out: Path | None = None


def feature_cache(cache) -> FeatureCache | None:
    """``True``: the default cache ($CRYOSAM_CACHE); ``False``/``None``: none; or a cache."""
    if cache is True:
        return FeatureCache()
    return cache or None


def pick(
    tomogram: Tomogram,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    relion5: bool = False,
    naive: bool = False,
    cache: bool | FeatureCache | None = True,
    queries: dict[str, ClassQuery] | None = None,
    progress=None,
    command_line: str | None = None,
    record: dict | None = None,
    tomo_name: str | None = None,
    reference_maps: dict[str, Tomogram] | None = None,
    symmetry: dict[str, str] | None = None,
) -> PickRun:
    """Find every particle like the prompted ones in ``tomogram``.

    Args:
        tomogram: from :func:`~cryosam.io.tomogram.read_tomogram` (or built around an array:
            then its checksum keys the feature cache).
        prompts: positive and negative prompts, voxel indices ``(z, y, x)``.
        diameters_px: class -> approximate diameter in voxels.
        out: write every output of ``cryosam pick`` there, as one set (refused when it holds
            outputs already, unless ``overwrite``).
        relion5: ``picks.star`` in RELION 5's centred Å; cache: see :func:`feature_cache`.
        queries: class -> query from other tomograms, for classes without prompts here.
        progress: ``progress(stage: str)`` between stages.
        command_line: what ran it, for ``run.json``; ``record``: more entries for it.
        tomo_name: the tomogram's name in the particle files (``rlnTomoName``,
            ``rlnMicrographName``): a template where ``{stem}`` and ``{name}`` stand for the
            file's stem and name (default: RELION 5 the stem, RELION 3 the name).
        reference_maps, symmetry: class -> a known structure (read with ``read_tomogram``) to
            verify and orient it against, and its point group (``D7``; the map's frame).
    """
    config = config or Config()
    if out is not None:
        check_outputs(Path(out), PICK_OUTPUTS, overwrite)
    maps, timer = reference_maps or {}, Timer()
    with timer.stage("checksum"):
        checksum = tomogram_checksum(tomogram)
    with timer.stage("pick"):
        outcome = pick_particles(
            tomogram.data,
            prompts,
            diameters_px,
            config,
            progress=progress,
            naive=naive,
            cache=feature_cache(cache),
            input_sha256=checksum,
            queries=queries,
            voxel_size=tomogram.voxel_size,
            reference_maps={c: (m.data, m.require_voxel_size()) for c, m in maps.items()},
            symmetry=symmetry,
        )
    outcome.picks.tomogram = tomogram.name
    rec = {
        "command": "pick",
        "input": input_record(tomogram, outcome.inverted, checksum, *outcome.volume_reading()),
        "config": config.to_dict(),
        "class_ids": outcome.class_ids,
        "queries": {name: q.to_dict() for name, q in outcome.queries.items()},
        **prompt_record(prompts, outcome.prompts),
        "diameters_px_given": diameters_px,
        **cut_record(outcome),
        **particle_file_record(relion5, tomo_name, tomogram.name, reference_maps, symmetry),
        **(record or {}),
    }
    run = PickRun(outcome, rec, run_notes(outcome, prompts, out))
    if out is not None:
        run.out = write_pick_outputs(
            Path(out), tomogram, run, relion5, timer, command_line, overwrite
        )
    rec["timings_s"] = {**outcome.timings, **timer.seconds, "total": timer.total()}
    return run


def prompt_record(prompts, used) -> dict:
    """The prompts as given and where each was used (a positive click moved to its
    particle's centre by ``prompt_snap``; negatives stay where they were)."""
    return {
        "prompts": [p.__dict__ for p in prompts],
        "prompts_used": [[round(v, 2) for v in p.zyx] for p in used],
    }


def run_notes(outcome: PickOutcome, prompts, out) -> list[str]:
    """What a pick says to its user: the prompts' segmentation warnings, a weak cut
    (:func:`weak_cut_warnings`) and the clicks that were moved (:func:`moved_prompt_notes`)."""
    return [
        *outcome.prompt_outcome.warnings,
        *weak_cut_warnings(outcome.reports, out),
        *mass_count_notes(outcome.reports, out),
        *moved_prompt_notes(prompts, outcome.prompts),
    ]


MOVED_LISTED = 3
"""At most this many moved clicks are named one by one; more are counted."""


def moved_prompt_notes(prompts, used) -> list[str]:
    """What the user should hear about clicks ``prompt_snap`` moved (a click on a particle's
    flank goes to the particle's centre): each moved click, or how many when there are more
    than :data:`MOVED_LISTED`."""
    moved = [
        (p.zyx, u.zyx)
        for p, u in zip(prompts, used)
        if not p.negative and np.linalg.norm(np.subtract(p.zyx, u.zyx)) > 0
    ]
    if not moved:
        return []
    how = "run.json's prompts_used lists each as used; --set prompt_snap=0 keeps clicks in place"
    if len(moved) > MOVED_LISTED:
        n = len(moved)
        return [f"{n} clicks lay on a particle's flank and were moved to its centre ({how})"]
    fmt = lambda z: ",".join(f"{v:.0f}" for v in z)  # noqa: E731
    return [
        f"the click at z,y,x={fmt(a)} lay on a particle's flank and was moved "
        f"{np.linalg.norm(np.subtract(a, b)):.1f} voxels to its centre, {fmt(b)} ({how})"
        for a, b in moved
    ]


def particle_file_record(relion5: bool, tomo_name, file_name: str, maps, symmetry) -> dict:
    """The entries of ``run.json`` that the particle files (and a recut) follow: the STAR
    dialect, the tomogram's name in them, the reference maps the angles are relative to and
    their symmetry."""
    return {
        "symmetry": dict(symmetry or {}),
        "star_dialect": "relion5" if relion5 else "relion3",
        "tomo_name": particle_tomo_name(tomo_name, file_name),
        "reference_maps": {
            c: str(m.path.resolve()) if m.path is not None else m.name
            for c, m in (maps or {}).items()
        },
    }


def particle_tomo_name(template: str | None, file_name: str) -> str | None:
    """``template`` with ``{stem}`` and ``{name}`` filled from the tomogram's file name
    (``None`` without a template). The result must be one word: it goes into STAR columns."""
    if not template:
        return None
    try:
        name = template.format(stem=tomogram_stem(file_name), name=file_name)
    except (KeyError, IndexError, ValueError) as exc:
        raise CryosamError(
            f"--tomo-name {template!r}: only {{stem}} and {{name}} may be filled in ({exc})"
        ) from exc
    if not name or any(c.isspace() for c in name) or '"' in name:
        raise CryosamError(f"--tomo-name {template!r} gives {name!r}: use one word, no spaces")
    return name


def cut_record(outcome: PickOutcome) -> dict:
    """The entries of ``run.json`` a cut decides: each class's report, the cuts, the count."""
    return {
        "classes": [r.record() for r in outcome.reports],
        "cut": {r.name: {"value": r.cut, "method": r.cut_method} for r in outcome.reports},
        "n_picks": len(outcome.picks),
    }


def _recut(out, min_score: str) -> str:
    """The ``cryosam recut`` command line for the pick written to ``out`` (``OUT`` where it
    was not written) with ``--min-score min_score``."""
    return f"'cryosam recut {out if out is not None else 'OUT'} --min-score {min_score}'"


def _down(value: float) -> str:
    """``value`` to four decimals, rounded down (a recut at it loses none it was read from)."""
    return f"{np.floor(value * 1e4) / 1e4:.4f}"


def weak_cut_warnings(reports, out) -> list[str]:
    """For each verified class whose accepted candidates do not stand apart from the rejected
    (:func:`~cryosam.method.cut.weak_cut`): its cut is a guess, and how to move it."""
    by_mass = CutRule.SHAPE_MASS_COUNT.value
    return [
        (
            f"{r.name}: by shape the matches stand only {r.separation:.1f} robust spreads above "
            f"the rest (no population of their own): the cut at {r.cut:.3f} keeps as many as "
            "have the class's mass, a guess"
            if r.cut_method == by_mass
            else f"{r.name}: the accepted candidates stand only {r.separation:.1f} robust "
            f"spreads above the rejected (no population of their own): the cut at "
            f"{r.cut:.3f} is a guess"
        )
        + f"; judge it in gallery.png and move it with {_recut(out, 'S')}"
        for r in reports
        if r.verified and weak_cut(r.separation, r.separation_nearest)
    ]


MASS_NOTE_RATIO = 5.0
"""A shape cut that keeps under 1 / this of the candidates of the class's mass is pointed out
(from 1 / :data:`~cryosam.method.cut.MASS_COUNT_RATIO` the count is taken instead). On the
real 00254 (ribosome, 10 Å) three clicks of five cut at the knee, which kept 70-84 of the pool
where 717-993 had the class's mass (8.5-14 times); on the dev tomograms the knee kept at least
1 / 4.8 of the count for the crowded 20S proteasome, where counting by mass is wrong (the
crowded TRiC's 1 / 4.5-6.2 is pointed out though its count is wrong too: stop 59 measured it)."""


def mass_count_notes(reports, out) -> list[str]:
    """For each verified class cut by its scores that kept far fewer than have its mass
    (:data:`MASS_NOTE_RATIO`): the count, and the ``recut`` that would keep them; for each
    class counted by mass because its shape cut kept a few of many (``SHAPE_MASS_MANY``): the
    few, and the ``recut`` that would keep only them (scores rounded down: none is lost)."""
    notes = []
    for r in reports:
        if not r.verified or not np.isfinite(r.cut_by_mass):
            continue
        if r.cut_method == CutRule.SHAPE_MASS_MANY.value:
            notes.append(
                f"{r.name}: by shape only {r.n_by_shape} candidates stand out "
                f"({r.separation:.1f} robust spreads above the rest), but {r.n_by_mass} have "
                f"the class's mass: the cut at {r.cut:.3f} keeps as many as have it; if only "
                "the few are wanted, judge the kept in gallery.png and keep the few with "
                + _recut(out, f"{r.name}={_down(r.cut_by_shape)}")
            )
        elif (
            r.cut_method != CutRule.SHAPE_MASS_COUNT.value
            and r.n_by_mass >= MASS_NOTE_RATIO * max(r.n_by_shape, 1)
        ):
            notes.append(
                f"{r.name}: the cut keeps {r.n_by_shape} candidates by shape, but "
                f"{r.n_by_mass} have the class's mass; if the tomogram holds that many, judge "
                "the rejected in gallery.png and keep them with "
                + _recut(out, f"{r.name}={_down(r.cut_by_mass)}")
            )
    return notes


def write_pick_outputs(
    out: Path,
    tomogram: Tomogram,
    run: PickRun,
    relion5: bool,
    timer: Timer,
    command_line: str | None,
    overwrite: bool = True,
) -> Path:
    """Every file of ``cryosam pick``, staged and moved into ``out`` as one set."""
    outcome, vs = run.outcome, tomogram.voxel_size
    picks = outcome.picks
    with output_set(out, PICK_OUTPUTS, overwrite) as staging, timer.stage("write"):
        write_picks_csv(staging / "picks.csv", picks, overwrite=True)
        cand = outcome.candidates.to_frame().drop(columns=["instance"])
        cand["status"] = outcome.candidate_status
        for name, values in outcome.candidate_columns.items():
            cand[name] = values
        with atomic_path(staging / "candidates.csv", overwrite=True) as tmp:
            cand.to_csv(tmp, index=False)
        name = run.record.get("tomo_name")
        write_star(
            staging / "picks.star",
            picks,
            RELION5 if relion5 else RELION3,
            tomogram.shape,
            vs,
            tomogram=name or tomogram.name,
            overwrite=True,
            exact_name=bool(name),
        )
        if relion5:
            write_relion5_index(
                staging / RELION5_INDEX, {name or tomogram_stem(tomogram.name): out / "picks.star"}
            )
        source = str(tomogram.path.resolve()) if tomogram.path is not None else tomogram.name
        write_dynamo_table(staging / "picks.tbl", picks, vs, source, overwrite=True)
        write_references(staging / "references", outcome, vs)
        write_averages(staging, outcome, vs)
        write_masks(staging, tomogram, outcome.semantic, outcome.instances)
        write_preview_of(staging / "preview.png", tomogram, outcome)
        write_gallery_of(staging / "gallery.png", tomogram, outcome)
        run.record["timings_s"] = {**outcome.timings, **timer.seconds, "total": timer.total()}
        write_run_json(staging / "run.json", run.record, command_line)
    return out


def write_references(folder: Path, outcome: PickOutcome, voxel_size: float | None) -> None:
    """Each class's shape reference (``CLASS.mrc``, bright protein, standardised) and its soft
    mask (``CLASS_mask.mrc``) at the reference's own binned voxel size: the frame the picks'
    angles are relative to."""
    for name, query in outcome.queries.items():
        ref = query.reference if query is not None else None
        if ref is None:
            continue
        vs = voxel_size * ref.bin if voxel_size else None
        write_volume(folder / f"{name}.mrc", ref.template, vs, overwrite=True)
        write_volume(folder / f"{name}_mask.mrc", ref.weight, vs, overwrite=True)


def average_name(outcome: PickOutcome, cls: str) -> str:
    """``average.mrc`` for a one-class pick, ``average_CLASS.mrc`` for each of several."""
    return "average.mrc" if len(outcome.class_ids) == 1 else f"average_{cls}.mrc"


def write_averages(folder: Path, outcome: PickOutcome, voxel_size: float | None) -> None:
    """Each class's aligned average of its picks (the tomogram's voxel size, protein bright)
    and ``average.png``: its central sections beside the class reference's."""
    if not outcome.averages:
        return
    rows = []
    for cls, avg in outcome.averages.items():
        write_volume(folder / average_name(outcome, cls), avg, voxel_size, overwrite=True)
        query = outcome.queries.get(cls)
        ref = query.reference.template if query is not None and query.reference else None
        rows.append((cls, int(np.sum(outcome.picks.class_name == cls)), avg, ref))
    write_average_figure(folder / "average.png", rows, overwrite=True)


def write_masks(folder: Path, tomogram: Tomogram, semantic, instances) -> None:
    """``masks/semantic.mrc`` (class ids) and ``masks/instances.mrc`` (instance ids) with the
    tomogram's shape, voxel size and origin."""
    for name, labels, kind in (
        ("semantic", semantic, "class"),
        ("instances", instances, "instance"),
    ):
        write_volume(
            folder / "masks" / f"{name}.mrc",
            labels,
            tomogram.voxel_size,
            tomogram.origin,
            kind=kind,
            overwrite=True,
        )


def write_preview_of(path: Path, tomogram: Tomogram, outcome: PickOutcome) -> Path:
    """``preview.png`` of a pick: slabs with masks and picks, each class's score histogram."""
    picks = outcome.picks
    names = {i: n for n, i in outcome.class_ids.items()}
    scores = {r.name: outcome.candidates.of_class(r.name).score for r in outcome.reports}
    counts = ", ".join(f"{r.name} {r.n_accepted}" for r in outcome.reports)
    radius = 0.5 * min((r.diameter_px for r in outcome.reports), default=12.0)
    return write_pick_preview(
        path,
        tomogram.data,
        outcome.semantic,
        names,
        picks.zyx,
        [outcome.class_ids[c] for c in picks.class_name],
        scores,
        {r.name: r.cut for r in outcome.reports},
        centre=picks.zyx[0] if len(picks) else None,
        title=f"{tomogram_stem(tomogram.name)}: {len(picks)} picks ({counts})",
        overwrite=True,
        voxel_size=tomogram.voxel_size,
        radius_px=radius,
    )


GALLERY_PER_ROW = 10


def write_gallery_of(path: Path, tomogram: Tomogram, outcome: PickOutcome) -> Path:
    """``gallery.png``: per class, crops of the best and the worst accepted picks and of the
    best rejected candidates, so a user judges the cut at a glance."""
    rows = []
    n = GALLERY_PER_ROW
    for rep in outcome.reports:
        mine = outcome.picks.of_class(rep.name)
        order = np.argsort(-mine.score, kind="stable")
        cands = outcome.candidates
        below = np.flatnonzero(
            (cands.class_name == rep.name) & (outcome.candidate_status == "below_cut")
        )
        below = below[np.argsort(-cands.score[below], kind="stable")][:n]
        stray = np.flatnonzero(
            (cands.class_name == rep.name) & (outcome.candidate_status == "stray")
        )
        stray = stray[np.argsort(-cands.score[stray], kind="stable")][:n]
        worst = order[::-1][:n][::-1]
        rows += [
            (f"{rep.name}: best", mine.zyx[order[:n]], mine.score[order[:n]]),
            (f"{rep.name}: worst kept", mine.zyx[worst], mine.score[worst]),
            (f"{rep.name}: best rejected", cands.zyx[below], cands.score[below]),
        ]
        if len(stray):  # dropped after the cut: unlike the class's average
            rows.append((f"{rep.name}: strays", cands.zyx[stray], cands.score[stray]))
    d = max((r.diameter_px for r in outcome.reports), default=12.0)
    title = (
        f"{tomogram_stem(tomogram.name)}: accepted picks and best rejected candidates "
        "(xy slabs through each centre; scores above each crop)"
    )
    return write_gallery(
        path, tomogram.data, rows, d, title, tomogram.voxel_size, n, overwrite=True
    )


def class_queries(
    tomogram: Tomogram,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config | None = None,
    cache: bool | FeatureCache | None = True,
) -> dict[str, ClassQuery]:
    """The prompted classes' queries, without searching (``batch``/``copick`` round 1); the
    features go to the cache, so the tomogram's own pick later reuses them."""
    return prompt_queries(
        tomogram.data,
        prompts,
        diameters_px,
        config,
        feature_cache(cache),
        tomogram_checksum(tomogram),
        tomogram.voxel_size,
    )


def in_memory(volume: np.ndarray, voxel_size: float | None, name: str = "tomogram") -> Tomogram:
    """A :class:`Tomogram` around an array that has no file (napari, copick)."""
    return Tomogram(np.asarray(volume, dtype=np.float32), voxel_size, label=name)
