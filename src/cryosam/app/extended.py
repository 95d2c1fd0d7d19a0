"""``cryosam pick --extended``: every membrane or filament like the prompted ones, as masks
and components, written as one output set (the pick files hold no rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryosam.app.pick import PICK_OUTPUTS, write_masks
from cryosam.app.record import input_record, write_run_json
from cryosam.config import Config
from cryosam.io.atomic import atomic_path
from cryosam.io.figures import write_preview
from cryosam.io.outputs import check_outputs, output_set
from cryosam.io.picks import Picks, write_picks_csv
from cryosam.io.prompts import Prompt
from cryosam.io.star import RELION3, RELION5, write_star
from cryosam.io.tomogram import Tomogram, tomogram_stem
from cryosam.method.extended import ExtendedResult, segment_extended_classes
from cryosam.timing import Timer

EXTENDED_OUTPUTS = [
    *(n for n in PICK_OUTPUTS if n not in ("gallery.png", "picks.tbl", "picks.doc")),
    "components.csv",
]
COMPONENT_COLUMNS = ["class", "instance", "voxels", "z", "y", "x", "area_nm2", "length_nm"]


def pick_extended(
    tomogram: Tomogram,
    prompts: list[Prompt],
    thickness_px: dict[str, float],
    config: Config | None = None,
    *,
    out: str | Path | None = None,
    overwrite: bool = False,
    relion5: bool = False,
    progress=None,
    command_line: str | None = None,
) -> ExtendedResult:
    """Masks of every membrane/filament like the prompted ones (written into ``out``, when
    given, as one set)."""
    config = config or Config()
    if out is not None:
        check_outputs(Path(out), EXTENDED_OUTPUTS, overwrite)
    timer = Timer()
    vs = tomogram.voxel_size
    with timer.stage("segment_extended"):
        result = segment_extended_classes(
            tomogram.data, prompts, vs, config, thickness_px, progress=progress
        )
    if out is None:
        return result
    with output_set(Path(out), EXTENDED_OUTPUTS, overwrite) as staging, timer.stage("write"):
        _write_empty_picks(staging, tomogram, relion5)
        with atomic_path(staging / "components.csv", overwrite=True) as tmp:
            frame = pd.DataFrame(result.components(), columns=COMPONENT_COLUMNS)
            frame.dropna(axis=1, how="all").to_csv(tmp, index=False)
        write_masks(staging, tomogram, result.semantic, result.instances)
        _write_preview(staging / "preview.png", tomogram, prompts, result)
        record = _record(tomogram, prompts, thickness_px, config, result)
        record["timings_s"] = {**timer.seconds, "total": timer.total()}
        write_run_json(staging / "run.json", record, command_line)
    return result


def _write_empty_picks(staging: Path, tomogram: Tomogram, relion5: bool) -> None:
    """The pick files, without rows (extended structures are not particles)."""
    empty = Picks(np.zeros((0, 3)), score=[], class_name=[], instance=[])
    empty.tomogram = tomogram.name
    write_picks_csv(staging / "picks.csv", empty, overwrite=True)
    with atomic_path(staging / "candidates.csv", overwrite=True) as tmp:
        pd.DataFrame(columns=["z", "y", "x", "score", "class", "status"]).to_csv(tmp, index=False)
    write_star(
        staging / "picks.star",
        empty,
        RELION5 if relion5 else RELION3,
        tomogram.shape,
        tomogram.voxel_size,
        tomogram=tomogram.name,
        overwrite=True,
    )


def _write_preview(path: Path, tomogram: Tomogram, prompts, result: ExtendedResult) -> None:
    positives = [p for p in prompts if not p.negative]
    names = {i: n for n, i in result.class_ids.items()}
    found = ", ".join(f"{n} {len(o.table)} {o.kind}(s)" for n, o in result.outcomes.items())
    write_preview(
        path,
        tomogram.data,
        result.semantic,
        names,
        np.array([p.zyx for p in positives]),
        [result.class_ids[p.class_name] for p in positives],
        centre=positives[0].zyx,
        title=f"{tomogram_stem(tomogram.name)}: {found}",
        overwrite=True,
        voxel_size=tomogram.voxel_size,
    )


def _record(tomogram, prompts, thickness_px, config, result: ExtendedResult) -> dict:
    vs = tomogram.voxel_size
    classes = [
        {
            "name": n,
            "kind": o.kind,
            "scale_angst": o.sigma_px * vs,
            "binning": o.binning,
            "prompt_response_z": o.prompt_z,
            "components": len(o.table),
            "voxels": int(o.mask.sum()),
            "warnings": o.warnings,
        }
        for n, o in result.outcomes.items()
    ]
    return {
        "command": "pick",
        "mode": "extended",
        "input": input_record(tomogram, result.inverted, balanced=result.balanced),
        "config": config.to_dict(),
        "class_ids": result.class_ids,
        "classes": classes,
        "prompts": [p.__dict__ for p in prompts],
        "thickness_px_given": thickness_px,
        "n_picks": 0,
    }
