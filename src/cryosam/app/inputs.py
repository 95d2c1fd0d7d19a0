"""What a run is given, parsed the same way for every front-end: prompts and diameters."""

from __future__ import annotations

from pathlib import Path

from cryosam.errors import CryosamError
from cryosam.io.coords import diameter_to_voxels
from cryosam.io.prompts import Prompt, parse_point, prompts_for_tomogram, read_prompt_file
from cryosam.method.instances import check_diameters


def load_prompts(points, negatives, prompts_file, shape, voxel_size, tomogram) -> list[Prompt]:
    """Command-line prompts first (in order), then the file's rows for this tomogram."""
    prompts = [parse_point(p) for p in points or []]
    prompts += [parse_point(p, negative=True) for p in negatives or []]
    if prompts_file is not None:
        rows = read_prompt_file(Path(prompts_file), shape, voxel_size)
        mine = prompts_for_tomogram(rows, tomogram)
        if rows and not mine and not prompts:
            named = sorted({str(r.tomogram) for r in rows})
            raise CryosamError(
                f"{prompts_file}: its {len(rows)} row(s) name the tomogram(s) "
                f"{', '.join(named[:3])}{' ...' if len(named) > 3 else ''}, not "
                f"{Path(tomogram).name}; give the matching tomogram, or fix the file's "
                "tomogram column (rlnTomoName / rlnMicrographName)"
            )
        prompts += mine
    return prompts


def positive_classes(prompts: list[Prompt]) -> list[str]:
    """The classes of the positive prompts, in order of first appearance."""
    return list(dict.fromkeys(p.class_name for p in prompts if not p.negative))


def map_diameters(maps: dict, prompts, items: list[str]) -> dict[str, float]:
    """Class -> the diameter (Å) of its reference map (a :class:`Tomogram`;
    :func:`~cryosam.method.seeds.map_diameter_angst`), for the classes no point prompts and
    no ``--diameter`` item names."""
    from cryosam.method.seeds import map_diameter_angst

    named = {item.rpartition("=")[0].strip() for item in items}
    clicked = {p.class_name for p in prompts if not p.negative}
    return {
        cls: map_diameter_angst(m.data, m.require_voxel_size())
        for cls, m in maps.items()
        if cls not in clicked and cls not in named and "" not in named
    }


def parse_diameters(
    items: list[str], classes: list[str], voxel_size: float, shape=None, known=None
) -> dict[str, float]:
    """``['250']`` or ``['ribosome=250', 'proteasome=150']`` -> class -> diameter in voxels
    (with ``shape``, each must be smaller than the volume). ``known``: class -> Å for the
    classes whose size is known otherwise (a reference map's), used when no item names one."""
    known = dict(known or {})
    if not items and not all(c in known for c in classes):
        raise CryosamError("--diameter is required: the approximate particle diameter in Å")
    default, per_class = None, {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            angst = float(value)
        except ValueError:
            raise CryosamError(f"--diameter {item!r}: expected Å or CLASS=Å") from None
        px = diameter_to_voxels(angst, voxel_size)
        if sep:
            per_class[name.strip()] = px
        else:
            default = px
    out = {}
    for cls in classes:
        if cls in per_class:
            out[cls] = per_class[cls]
        elif default is not None:
            out[cls] = default
        elif cls in known:
            out[cls] = diameter_to_voxels(known[cls], voxel_size)
        else:
            raise CryosamError(f"no diameter for class {cls!r}; add --diameter {cls}=Å")
    if shape is not None:
        check_diameters(shape, out)
    return out
