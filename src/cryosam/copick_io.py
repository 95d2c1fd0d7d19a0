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

from dataclasses import dataclass, field

import numpy as np

from cryosam.errors import CryosamError
from cryosam.io.prompts import Prompt


def _copick():
    try:
        import copick
    except ImportError:
        raise CryosamError(
            "copick projects need the copick package: pip install 'cryosam[copick]'"
        ) from None
    return copick


def open_project(config_path):
    """The copick root of ``config_path`` (one-line errors for a missing or bad config)."""
    from pathlib import Path

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
    """One run's tomogram (z, y, x), voxel size and the prompts found in it."""

    name: str
    run: object
    volume: np.ndarray
    voxel_size: float
    prompts: list[Prompt] = field(default_factory=list)


def load_runs(root, voxel_size: float, tomo_type: str, sources, run_names=None, exclude=None):
    """Every run (or ``run_names``) with a ``tomo_type`` tomogram at ``voxel_size``, with
    the prompts of ``sources`` (``[(object, user, session), ...]``) in voxels. Picks of the
    ``exclude`` (user, session), cryosam's own earlier output, are never prompts."""
    wanted = set(run_names or [])
    runs = [r for r in root.runs if not wanted or r.name in wanted]
    missing = wanted - {r.name for r in runs}
    if missing:
        raise CryosamError(f"copick project has no run {', '.join(sorted(missing))}")
    out = []
    for run in runs:
        spacing = run.get_voxel_spacing(voxel_size)
        tomos = [] if spacing is None else spacing.get_tomograms(tomo_type)
        if not tomos:
            continue
        data = np.asarray(tomos[0].numpy(), dtype=np.float32)
        item = CopickRun(run.name, run, data, float(voxel_size))
        for obj, user, session in sources:
            for picks in run.get_picks(object_name=obj, user_id=user, session_id=session):
                if exclude and (picks.user_id, picks.session_id) == tuple(exclude):
                    continue
                pts, _ = picks.numpy()
                for x, y, z in np.asarray(pts, dtype=np.float64).reshape(-1, 3):
                    item.prompts.append(Prompt((z / voxel_size, y / voxel_size, x / voxel_size),
                                               obj))  # fmt: skip
        out.append(item)
    if not out:
        raise CryosamError(
            f"no run has a '{tomo_type}' tomogram at voxel spacing {voxel_size:g} Å; check "
            "--tomo-type and --voxel-spacing"
        )
    return out


def write_results(item: CopickRun, picks, semantic, class_ids, user_id, session_id, overwrite):
    """Picks per object and one multilabel segmentation (copick labels) into the run."""
    root = item.run.root
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
        zyx = sel.zyx * item.voxel_size
        obj = item.run.new_picks(cls, session_id=session_id, user_id=user_id, exist_ok=overwrite)
        scores = np.nan_to_num(np.asarray(sel.score, dtype=np.float64), nan=1.0)
        obj.from_numpy(zyx[:, ::-1].copy(), scores=scores)
    lut = np.zeros(max(class_ids.values()) + 1, dtype=np.uint8)
    for cls, i in class_ids.items():
        lut[i] = labels[cls]
    seg = item.run.new_segmentation(item.voxel_size, "cryosam", session_id=session_id,
                                    is_multilabel=True, user_id=user_id,
                                    exist_ok=overwrite)  # fmt: skip
    seg.from_numpy(lut[semantic])


def refuse_existing(items, user_id, session_id, objects) -> None:
    """Nothing is replaced without --overwrite: say which run already has our results."""
    for item in items:
        for obj in objects:
            if item.run.get_picks(object_name=obj, user_id=user_id, session_id=session_id):
                raise CryosamError(
                    f"run {item.name} already has {obj} picks by {user_id}/{session_id}; pass "
                    "--overwrite or another --session-id"
                )
