"""``cryosam segment``: one 3D instance mask per prompt, written as one output set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryosam.app.record import input_record, write_run_json
from cryosam.config import Config
from cryosam.io.atomic import atomic_path
from cryosam.io.figures import write_instance_preview
from cryosam.io.outputs import check_outputs, output_set
from cryosam.io.prompts import Prompt
from cryosam.io.tomogram import Tomogram, write_volume
from cryosam.method.extended import segment_extended_classes
from cryosam.method.instances import SegmentOutcome, segment_prompts
from cryosam.models import build_segmenter
from cryosam.timing import Timer

SEGMENT_OUTPUTS = ["masks/instances.mrc", "instances.csv", "preview.png", "run.json"]


@dataclass
class SegmentRun:
    """What :func:`segment` gives back: instance labels (id k = k-th positive prompt), one
    row per prompt, the run record and warnings."""

    labels: np.ndarray
    rows: list[dict]
    record: dict
    warnings: list[str] = field(default_factory=list)
    outcome: SegmentOutcome | None = None

    @property
    def n_ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)


def segment(
    tomogram: Tomogram,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    extended: bool = False,
    progress=None,
    command_line: str | None = None,
) -> SegmentRun:
    """Segment the particle (``extended``: the membrane or filament) under each positive
    prompt; with ``out``, write ``masks/instances.mrc``, ``instances.csv``, ``preview.png``
    and ``run.json`` there as one set. ``progress(1)`` is called per finished prompt."""
    config = config or Config()
    if out is not None:
        check_outputs(Path(out), SEGMENT_OUTPUTS, overwrite)
    timer = Timer()
    with timer.stage("segment"):
        if extended:
            run = _segment_extended(tomogram, prompts, diameters_px, config)
        else:
            outcome = segment_prompts(
                tomogram.data, prompts, diameters_px, config, build_segmenter(config), progress
            )
            run = SegmentRun(outcome.labels, outcome.summary(), {}, outcome.warnings, outcome)
            run.record = {
                "input": input_record(tomogram, outcome.inverted, balanced=outcome.balanced),
                "diameters_px": diameters_px,
            }
    run.record = {
        "command": "segment",
        **run.record,
        "config": config.to_dict(),
        "prompts": [p.__dict__ for p in prompts],
        "instances": run.rows,
        "warnings": run.warnings,
    }
    if out is not None:
        half = int(max(diameters_px.values())) if diameters_px and not extended else None
        _write(Path(out), tomogram, prompts, run, config, half, timer, command_line, overwrite)
    run.record["timings_s"] = {**timer.seconds, "total": timer.total()}
    return run


def _segment_extended(tomogram, prompts, thickness_px, config) -> SegmentRun:
    """The connected membrane/filament under each prompt (``segment --extended``)."""
    result = segment_extended_classes(
        tomogram.data, prompts, tomogram.voxel_size, config, thickness_px, only_prompted=True
    )
    positives = [p for p in prompts if not p.negative]
    counts = np.bincount(result.instances.ravel(), minlength=len(positives) + 1)
    rows = [
        {
            "instance": k,
            "class": p.class_name,
            "prompt_z": p.zyx[0],
            "prompt_y": p.zyx[1],
            "prompt_x": p.zyx[2],
            "voxels": int(counts[k]),
            "kind": result.outcomes[p.class_name].kind,
            "status": "ok" if counts[k] else "empty",
        }
        for k, p in enumerate(positives, start=1)
    ]
    vs = tomogram.voxel_size
    classes = {
        n: {"kind": o.kind, "scale_angst": o.sigma_px * vs, "warnings": o.warnings}
        for n, o in result.outcomes.items()
    }
    record = {
        "mode": "extended",
        "input": input_record(tomogram, result.inverted, balanced=result.balanced),
        "classes": classes,
    }
    warnings = [w for o in result.outcomes.values() for w in o.warnings]
    return SegmentRun(result.instances, rows, record, warnings)


def _write(
    out: Path, tomogram, prompts, run: SegmentRun, config, half, timer, command_line, overwrite
):
    vs = tomogram.voxel_size
    positives = [p.zyx for p in prompts if not p.negative]
    with output_set(out, SEGMENT_OUTPUTS, overwrite) as staging, timer.stage("write"):
        write_volume(
            staging / "masks" / "instances.mrc",
            run.labels,
            vs,
            tomogram.origin,
            kind="instance",
            overwrite=True,
        )
        with atomic_path(staging / "instances.csv", overwrite=True) as tmp:
            pd.DataFrame(run.rows).to_csv(tmp, index=False)
        what = (
            "extended structures"
            if half is None
            else (f"{len(positives)} prompt(s), {config.segmenter} segmenter")
        )
        write_instance_preview(
            staging / "preview.png",
            tomogram.data,
            run.labels,
            positives,
            half if half is not None else int(min(tomogram.shape) // 2),
            title=f"{tomogram.name}: {what}",
            overwrite=True,
            voxel_size=tomogram.voxel_size,
        )
        run.record["timings_s"] = {**timer.seconds, "total": timer.total()}
        write_run_json(staging / "run.json", run.record, command_line)
