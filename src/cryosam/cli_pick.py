"""`cryosam pick` and `cryosam demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from cryosam.cli import app
from cryosam.cli_common import (
    DEVICE_OPT,
    DIAMETER_OPT,
    INVERT_OPT,
    MODEL_OPT,
    NEGATIVE_OPT,
    OVERWRITE_OPT,
    POINT_OPT,
    PROMPTS_OPT,
    SEGMENTER_OPT,
    SET_OPT,
    TOMOGRAM_ARG,
    VOXEL_SIZE_OPT,
)

PICK_OUTPUTS = ["picks.csv", "candidates.csv", "picks.star", "masks/semantic.mrc",
                "masks/instances.mrc", "preview.png", "run.json"]  # fmt: skip
EXTENDED_OUTPUTS = [*PICK_OUTPUTS, "components.csv"]


@app.command()
def pick(
    tomogram: Path = TOMOGRAM_ARG,
    point: list[str] = POINT_OPT,
    negative: list[str] = NEGATIVE_OPT,
    prompts: Path | None = PROMPTS_OPT,
    diameter: list[str] = DIAMETER_OPT,
    out: Path = typer.Option(Path("cryosam-pick"), "--out", "-o", help="Output folder."),
    voxel_size: float | None = VOXEL_SIZE_OPT,
    invert: str = INVERT_OPT,
    top_k: int = typer.Option(512, "--top-k", help="At most this many candidates per class."),
    tau_sim: float = typer.Option(0.5, "--tau-sim", help="Similarity kept at each level."),
    relion5: bool = typer.Option(
        False, "--relion5", help="Write picks.star as RELION 5 (centred Å) instead of RELION 3."
    ),
    segmenter: str = SEGMENTER_OPT,
    model: str | None = MODEL_OPT,
    encoder: str = typer.Option(
        "classical", "--encoder", help="classical (no weights) or dinov2 (--encoder-model)."
    ),
    encoder_model: str | None = typer.Option(
        None, "--encoder-model", help="DINOv2 checkpoint folder or hub id."
    ),
    device: str = DEVICE_OPT,
    naive: bool = typer.Option(False, "--naive", help="Brute-force matching (comparison only)."),
    extended: bool = typer.Option(
        False,
        "--extended",
        help="The prompted classes are membranes or filaments: find every such structure as "
        "a mask (masks/semantic.mrc, components in masks/instances.mrc and components.csv), "
        "no particle picks. --diameter is then optional: the thickness in Å.",
    ),  # fmt: skip
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Do not read or write the feature cache ($CRYOSAM_CACHE)."
    ),
    set_: list[str] = SET_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Find every particle like the prompted ones: picks, masks and a preview.

    Click one particle (--point z,y,x) and give its approximate --diameter in Å. Writes
    OUT/picks.csv (accepted picks: z,y,x,score,class,instance), OUT/candidates.csv (every
    scored candidate and its status), OUT/picks.star, OUT/masks/semantic.mrc,
    OUT/masks/instances.mrc, OUT/preview.png and OUT/run.json (config, cut, timings).
    """
    from cryosam.cli_common import load_prompts, parse_diameters
    from cryosam.config import Config
    from cryosam.io.tomogram import read_tomogram
    from cryosam.resources import check_fits
    from cryosam.runinfo import check_outputs

    config = Config(invert=invert, top_k=top_k, tau_sim=tau_sim, segmenter=segmenter,
                    model=model, encoder=encoder, encoder_model=encoder_model,
                    device=device).with_overrides(set_)  # fmt: skip
    check_outputs(out, EXTENDED_OUTPUTS if extended else PICK_OUTPUTS, overwrite)
    tomo = read_tomogram(tomogram, voxel_size=voxel_size)
    vs = tomo.require_voxel_size()
    check_fits(tomo.shape, tomo.file_dtype == "float32")
    all_prompts = load_prompts(point, negative, prompts, tomo.shape, vs, tomogram)
    classes = list(dict.fromkeys(p.class_name for p in all_prompts if not p.negative))
    if extended:
        thickness = parse_diameters(diameter, classes, vs) if diameter else {}
        result = run_extended_pick(tomo, tomogram, all_prompts, thickness, config, out, relion5)
        for name, o in result.outcomes.items():
            typer.echo(f"{name}: {len(o.table)} {o.kind} component(s), "
                       f"{int(o.mask.sum())} voxels (scale {o.sigma_px * vs:.0f} Å)")  # fmt: skip
            for w in o.warnings:
                typer.echo(f"warning: {w}", err=True)
        typer.echo(f"masks: {out / 'masks' / 'semantic.mrc'}")
        typer.echo(f"preview: {out / 'preview.png'}")
        return
    diam = parse_diameters(diameter, classes, vs)
    outcome = run_pick(tomo, tomogram, all_prompts, diam, config, out, relion5, naive,
                       use_cache=not no_cache)  # fmt: skip
    for rep in outcome.reports:
        typer.echo(
            f"{rep.name}: {rep.n_accepted} picks ({rep.n_prompts} prompted, "
            f"{rep.n_candidates} candidates, cut {rep.cut:.3f} by {rep.cut_method})"
        )
    typer.echo(f"picks: {out / 'picks.csv'}")
    typer.echo(f"preview: {out / 'preview.png'}")


def run_pick(tomo, tomogram_path, prompts, diam, config, out, relion5=False, naive=False,
             use_cache=True, queries=None, record=None, say=None):  # fmt: skip
    """Pick and write every output of ``cryosam pick`` as one set; returns the outcome.

    The caller checks first (:func:`~cryosam.runinfo.check_outputs`) that nothing is
    replaced without ``--overwrite``; files are staged and moved in at the end.
    ``queries`` (class -> :class:`~cryosam.pipeline.ClassQuery`) search for classes
    without prompts here; ``record`` adds entries to run.json; ``say`` gets progress lines
    (default: stderr)."""
    from cryosam.feature_cache import FeatureCache
    from cryosam.io.atomic import atomic_path
    from cryosam.io.outputs import output_set
    from cryosam.io.picks import write_picks_csv
    from cryosam.io.star import RELION3, RELION5, write_star
    from cryosam.io.tomogram import tomogram_stem, write_volume
    from cryosam.pipeline import pick_particles
    from cryosam.preview import write_pick_preview
    from cryosam.runinfo import Timer, input_record, sha256_file, write_run_json

    timer = Timer()
    final = out
    with timer.stage("checksum"):
        checksum = sha256_file(tomogram_path)
    with timer.stage("pick"):
        outcome = pick_particles(
            tomo.data, prompts, diam, config,
            progress=say or (lambda stage: typer.echo(f"  {stage}", err=True)), naive=naive,
            cache=FeatureCache() if use_cache else None, input_sha256=checksum,
            queries=queries,
        )  # fmt: skip
    for w in outcome.prompt_outcome.warnings:
        typer.echo(f"warning: {w}", err=True)
    vs = tomo.voxel_size
    with output_set(final) as out, timer.stage("write"):  # fresh staging folder
        picks = outcome.picks
        picks.tomogram = Path(tomogram_path).name
        write_picks_csv(out / "picks.csv", picks, overwrite=True)
        cand = outcome.candidates.to_frame().drop(columns=["instance"])
        cand["status"] = outcome.candidate_status
        with atomic_path(out / "candidates.csv", overwrite=True) as tmp:
            cand.to_csv(tmp, index=False)
        write_star(out / "picks.star", picks, RELION5 if relion5 else RELION3, tomo.shape, vs,
                   tomogram=Path(tomogram_path).name, overwrite=True)  # fmt: skip
        write_volume(out / "masks" / "semantic.mrc", outcome.semantic, vs, tomo.origin,
                     kind="class", overwrite=True)  # fmt: skip
        write_volume(out / "masks" / "instances.mrc", outcome.instances, vs, tomo.origin,
                     kind="instance", overwrite=True)  # fmt: skip
        names = {i: n for n, i in outcome.class_ids.items()}
        scores = {r.name: outcome.candidates.of_class(r.name).score for r in outcome.reports}
        write_pick_preview(
            out / "preview.png", tomo.data, outcome.semantic, names, picks.zyx,
            [outcome.class_ids[c] for c in picks.class_name], scores,
            {r.name: r.cut for r in outcome.reports},
            centre=picks.zyx[0] if len(picks) else None,
            title=f"{tomogram_stem(tomogram_path)}: {len(picks)} picks "
            f"({', '.join(f'{r.name} {r.n_accepted}' for r in outcome.reports)})",
            overwrite=True,
        )  # fmt: skip
        write_run_json(out / "run.json", {
            "command": "pick",
            "input": input_record(tomogram_path, tomo, outcome.inverted, checksum),
            "config": config.to_dict(),
            "class_ids": outcome.class_ids,
            "classes": [{k: v for k, v in r.__dict__.items() if k != "query"}
                        for r in outcome.reports],
            "queries": {name: q.to_dict() for name, q in outcome.queries.items()},
            "cut": {r.name: {"value": r.cut, "method": r.cut_method} for r in outcome.reports},
            "prompts": [p.__dict__ for p in prompts],
            "diameters_px_given": diam,
            "n_picks": len(outcome.picks),
            "timings_s": {**outcome.timings, **timer.seconds, "total": timer.total()},
            "star_dialect": "relion5" if relion5 else "relion3",
            **(record or {}),
        })  # fmt: skip
    return outcome


def run_extended_pick(tomo, tomogram_path, prompts, thickness, config, out, relion5=False):
    """``pick --extended``: masks of every membrane/filament like the prompted ones, written
    as one set (picks files hold no rows: extended structures are not particles)."""
    import numpy as np
    import pandas as pd

    from cryosam.extended import segment_extended_classes
    from cryosam.io.atomic import atomic_path
    from cryosam.io.outputs import output_set
    from cryosam.io.picks import Picks, write_picks_csv
    from cryosam.io.star import RELION3, RELION5, write_star
    from cryosam.io.tomogram import tomogram_stem, write_volume
    from cryosam.preview import write_preview
    from cryosam.runinfo import Timer, input_record, write_run_json

    timer = Timer()
    vs = tomo.voxel_size
    with timer.stage("segment_extended"):
        result = segment_extended_classes(
            tomo.data, prompts, vs, config, thickness,
            progress=lambda stage: typer.echo(f"  {stage}", err=True),
        )  # fmt: skip
    rows = result.components()
    with output_set(out) as staging, timer.stage("write"):
        empty = Picks(np.zeros((0, 3)), score=[], class_name=[], instance=[])
        empty.tomogram = Path(tomogram_path).name
        write_picks_csv(staging / "picks.csv", empty, overwrite=True)
        with atomic_path(staging / "candidates.csv", overwrite=True) as tmp:
            pd.DataFrame(columns=["z", "y", "x", "score", "class", "status"]).to_csv(
                tmp, index=False
            )
        write_star(staging / "picks.star", empty, RELION5 if relion5 else RELION3, tomo.shape,
                   vs, tomogram=Path(tomogram_path).name, overwrite=True)  # fmt: skip
        with atomic_path(staging / "components.csv", overwrite=True) as tmp:
            cols = ["class", "instance", "voxels", "z", "y", "x", "area_nm2", "length_nm"]
            pd.DataFrame(rows, columns=cols).dropna(axis=1, how="all").to_csv(tmp, index=False)
        write_volume(staging / "masks" / "semantic.mrc", result.semantic, vs, tomo.origin,
                     kind="class", overwrite=True)  # fmt: skip
        write_volume(staging / "masks" / "instances.mrc", result.instances, vs, tomo.origin,
                     kind="instance", overwrite=True)  # fmt: skip
        positives = [p for p in prompts if not p.negative]
        names = {i: n for n, i in result.class_ids.items()}
        write_preview(
            staging / "preview.png", tomo.data, result.semantic, names,
            np.array([p.zyx for p in positives]),
            [result.class_ids[p.class_name] for p in positives], centre=positives[0].zyx,
            title=f"{tomogram_stem(tomogram_path)}: "
            + ", ".join(f"{n} {len(o.table)} {o.kind}(s)" for n, o in result.outcomes.items()),
            overwrite=True,
        )  # fmt: skip
        write_run_json(staging / "run.json", {
            "command": "pick", "mode": "extended",
            "input": input_record(tomogram_path, tomo, result.inverted),
            "config": config.to_dict(),
            "class_ids": result.class_ids,
            "classes": [{"name": n, "kind": o.kind, "scale_angst": o.sigma_px * vs,
                         "binning": o.binning, "prompt_response_z": o.prompt_z,
                         "components": len(o.table), "voxels": int(o.mask.sum()),
                         "warnings": o.warnings} for n, o in result.outcomes.items()],
            "prompts": [p.__dict__ for p in prompts],
            "thickness_px_given": thickness,
            "n_picks": 0,
            "timings_s": {**timer.seconds, "total": timer.total()},
        })  # fmt: skip
    return result


@app.command()
def demo(
    out: Path = typer.Option(Path("cryosam-demo"), "--out", "-o", help="Output folder."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated tomogram."),
    snr: float = typer.Option(0.5, "--snr", help="Tomogram SNR of the simulation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier demo."),
) -> None:
    """Simulate a tomogram, pick ribosomes from one prompt, score against the truth.

    Everything runs offline with the weight-free backend: a 100 x 200 x 200 tomogram at
    10 Å with ribosomes, proteasomes, double rings, small proteins, vesicles and
    filaments. Prints precision, recall and F1 and where the preview picture is.
    """
    import numpy as np

    from cryosam.config import Config
    from cryosam.evaluate import score_picks
    from cryosam.io.prompts import Prompt
    from cryosam.io.tomogram import read_tomogram
    from cryosam.runinfo import check_outputs
    from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation
    from cryosam.simulate.species import template

    check_outputs(out / "pick", PICK_OUTPUTS, overwrite)
    typer.echo("simulating a 100 x 200 x 200 tomogram (10 Å voxels) ...")
    sim = simulate(SimulationConfig(shape=(100, 200, 200), imaging=Imaging(snr=snr), seed=seed))
    write_simulation(sim, out / "truth", overwrite=True)
    ribos = sim.centres("ribosome")
    centre = np.array(sim.tomogram.shape) / 2
    prompt = ribos[np.argmin(np.linalg.norm(ribos - centre, axis=1))]
    diameter = round(template("ribosome", 10.0).diameter_angst / 100) * 10.0  # voxels
    typer.echo(
        f"prompt: one ribosome at z,y,x={prompt[0]:g},{prompt[1]:g},{prompt[2]:g}; "
        f"--diameter {diameter * 10:g} Å"
    )
    tomo = read_tomogram(out / "truth" / "tomogram.mrc")
    outcome = run_pick(tomo, out / "truth" / "tomogram.mrc",
                       [Prompt(tuple(prompt), "ribosome")], {"ribosome": diameter},
                       Config(), out / "pick", use_cache=False)  # fmt: skip
    radius = 0.5 * template("ribosome", 10.0).diameter_angst / 10.0
    s = score_picks(outcome.picks.of_class("ribosome").zyx, ribos, radius)
    typer.echo(
        f"ribosomes: {s.n_true} true, {s.n_pred} picked -> precision {s.precision:.3f}, "
        f"recall {s.recall:.3f}, F1 {s.f1:.3f} (match radius {radius:.1f} voxels)"
    )
    typer.echo(f"picks: {out / 'pick' / 'picks.csv'}")
    typer.echo(f"preview: {out / 'pick' / 'preview.png'}")
    typer.echo(f"truth preview: {out / 'truth' / 'preview.png'}")
