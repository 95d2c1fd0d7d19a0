"""Membranes and filaments: extended structures from a few prompts, without weights.

A particle is bounded; a membrane or a filament is not, so the particle machinery
(size-bounded propagation, peak matching) does not apply. Instead:

1. **What and how thick**, from the prompts: a sheet response (bright plate: one
   strongly negative Hessian eigenvalue, the other two small) and a tube response
   (bright line: two strongly negative, one small) are computed near the prompts at a
   few scales; both are scale-normalised and penalised by the gradient magnitude, so the
   edge of a dense particle (a step, not a ridge) does not look like a membrane. Each is
   expressed in units of its own background spread (robust z-score: median and MAD over
   the tomogram). The kind and scale that stand out most at the prompts win.
2. **Every such structure**: the chosen response over the whole tomogram (binned so that
   the scale is ~2 cells, computed in z-slabs so memory stays bounded), hysteresis
   thresholding (seeds above ``extended_seed_z``, grown through ``extended_grow_z``), and
   connected components larger than a sheet or tube patch of a few scales across; the
   prompts' components always stay, a component under a negative prompt goes.
3. The kept cells are brought back to full resolution and thresholded again there, so
   the mask keeps the structure's thickness rather than the binning's blocks.

The result is a semantic mask and its connected components (instances); each
component's area (sheets) or length (tubes) is measured for ``components.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation
from skimage import measure, morphology

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.prompts import validate_prompts
from cryosam.method.propagate import propagate_instance
from cryosam.models import build_segmenter
from cryosam.volume.binning import bin_volume
from cryosam.volume.hessian import gaussian_hessian, sym_eigvalsh
from cryosam.volume.prepare import asked_balance, prepare_volume

KINDS = ("sheet", "tube")


@dataclass
class ExtendedOutcome:
    """Result of :func:`segment_extended` for one class."""

    mask: np.ndarray  # bool, full resolution
    components: np.ndarray  # uint16/uint32 component ids, 0 = none
    kind: str
    sigma_px: float
    binning: int
    prompt_z: list[float]
    table: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _hessian_response(v: np.ndarray, sigma: float, kind: str) -> np.ndarray:
    """Scale-normalised ridge response of a bright ``kind`` structure (float32)."""
    ev = sym_eigvalsh(gaussian_hessian(v, sigma)) * np.float32(sigma * sigma)  # ascending
    grad = (
        np.sqrt(
            sum(
                ndimage.gaussian_filter(v, sigma, order=o) ** 2
                for o in ((1, 0, 0), (0, 1, 0), (0, 0, 1))
            )
        )
        * sigma
    )
    l1, l2, l3 = ev[..., 0], ev[..., 1], ev[..., 2]
    if kind == "sheet":
        r = np.maximum(-l1, 0) - np.abs(l2) - grad
    else:
        r = np.maximum(-l2, 0) - np.abs(l3) - grad
    return r.astype(np.float32)


def response(v: np.ndarray, sigma: float, kind: str, slab: int | None = None) -> np.ndarray:
    """:func:`_hessian_response` over the whole volume in z-slabs (memory ~ one slab of
    ~16 M voxels plus its halo, whatever the volume)."""
    halo = int(np.ceil(4 * sigma)) + 1
    if slab is None:
        slab = int(np.clip(16e6 // max(1, v.shape[1] * v.shape[2]), 8, 64))
    if v.shape[0] <= slab + 2 * halo:
        return _hessian_response(v, sigma, kind)
    out = np.empty(v.shape, np.float32)
    for z0 in range(0, v.shape[0], slab):
        z1 = min(z0 + slab, v.shape[0])
        a, b = max(0, z0 - halo), min(v.shape[0], z1 + halo)
        out[z0:z1] = _hessian_response(v[a:b], sigma, kind)[z0 - a : z0 - a + (z1 - z0)]
    return out


def robust_z(r: np.ndarray) -> np.ndarray:
    """(r - median) / (1.4826 MAD), from a subsample; float32, in place when possible."""
    step = max(1, int(round((r.size / 2e6) ** (1 / 3))))
    sample = r[::step, ::step, ::step].astype(np.float64)
    med = float(np.median(sample))
    mad = float(median_abs_deviation(sample, axis=None, scale="normal"))
    r -= np.float32(med)
    r /= np.float32(mad if mad > 0 else 1.0)
    return r


def _near(point, b: int, shape, radius: int = 2) -> tuple[slice, ...]:
    """The box of binned cells within ``radius`` of a full-resolution ``point``."""
    c = np.clip(
        np.round(np.asarray(point, dtype=np.float64) / b).astype(int), 0, np.asarray(shape) - 1
    )
    return tuple(slice(max(0, a - radius), a + radius + 1) for a in c)


def _binning(sigma_px: float) -> int:
    return max(1, int(sigma_px // 2))


def choose_structure(
    volume,
    points_zyx,
    voxel_size: float,
    thickness_px: float | None = None,
    config: Config | None = None,
):
    """``(kind, sigma_px, z at each prompt)``: the kind and scale that stand out most at the
    prompts, judged on a crop around them against the crop's own background."""
    pts = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
    if thickness_px:
        sigmas = [f * thickness_px for f in (0.5, 0.75, 1.0)]
    else:
        sigmas = [s / voxel_size for s in (config or Config()).extended_scales_angst]
    sigmas = sorted({round(max(1.0, s), 2) for s in sigmas})
    found = []  # (score, kind, sigma, z at each prompt)
    for sigma in sigmas:
        b = _binning(sigma)
        half = int(np.ceil(24 * sigma))  # context for the background statistics
        lo = np.maximum(np.floor(pts.min(0)).astype(int) - half, 0)
        hi = np.minimum(np.ceil(pts.max(0)).astype(int) + half + 1, volume.shape)
        crop = bin_volume(volume[tuple(slice(a, c) for a, c in zip(lo, hi))], b)
        for kind in KINDS:
            z = robust_z(_hessian_response(crop, sigma / b, kind))
            at = [float(z[_near(p - lo, b, z.shape)].max()) for p in pts]
            found.append((float(np.median(at)), kind, sigma, at))
    best = max(found, key=lambda f: f[0])
    # the finest scale that stands out nearly as well: larger scales gain contrast in noise
    # but blur a thin sheet into its neighbours (measured: benchmarks/membrane_accuracy.py)
    tolerance = (config or Config()).extended_scale_tolerance
    close = [f for f in found if f[1] == best[1] and f[0] >= tolerance * best[0]]
    pick = min(close, key=lambda f: f[2])
    return pick[1], pick[2], pick[3]


def _min_voxels(kind: str, sigma_px: float, b: int) -> int:
    """Smallest component kept, in binned cells: a sheet patch ~12 scales across, or a
    tube ~30 scales long (a membrane or filament, not a particle's flank)."""
    s = sigma_px
    full = 2 * s * (12 * s) ** 2 if kind == "sheet" else np.pi * s * s * 30 * s
    return max(8, int(full / b**3))


def _component_table(components: np.ndarray, kind: str, voxel_size: float, scale: int) -> list:
    """Per component: voxels, centroid, and area (nm², sheets) or length (nm, tubes)."""
    rows = []
    vs_nm = voxel_size / 10.0
    for k, sl in enumerate(ndimage.find_objects(components), start=1):
        if sl is None:
            continue
        sub = components[sl] == k
        cz, cy, cx = (np.argwhere(sub).mean(0) + [s.start for s in sl]).tolist()
        row = {
            "component": k,
            "voxels": int(sub.sum()),
            "z": round(cz, 1),
            "y": round(cy, 1),
            "x": round(cx, 1),
        }
        small = sub[::scale, ::scale, ::scale] if scale > 1 else sub
        if kind == "sheet":
            padded = np.pad(small, 1).astype(np.float32)
            if padded.sum() >= 4:
                verts, faces, _, _ = measure.marching_cubes(padded, 0.5)
                area = measure.mesh_surface_area(verts, faces) / 2  # two faces per sheet
            else:
                area = 0.0
            row["area_nm2"] = round(float(area) * (scale * vs_nm) ** 2, 1)
        else:
            skel = morphology.skeletonize(small)
            row["length_nm"] = round(float(skel.sum()) * scale * vs_nm, 1)
        rows.append(row)
    return rows


def segment_extended(
    volume: np.ndarray,
    points_zyx,
    voxel_size: float,
    config: Config | None = None,
    negatives_zyx=(),
    thickness_px: float | None = None,
    only_prompted: bool = False,
    progress=None,
) -> ExtendedOutcome:
    """Every membrane (or filament) like the prompted one, as a mask and components.

    Args:
        volume: prepared tomogram (protein bright, standardised).
        points_zyx: positive prompts on the structure.
        voxel_size: Å per voxel (sets the candidate scales).
        negatives_zyx: points whose components are dropped.
        thickness_px: the structure's thickness, when the user gave it (``--diameter``).
        only_prompted: keep only the components under the prompts (``segment``).
    """
    config = config or Config()
    say = progress or (lambda stage: None)
    pts = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        raise CryosamError("an extended class needs at least one --point on the structure")
    kind, sigma, at = choose_structure(volume, pts, voxel_size, thickness_px, config)
    say(f"{kind}, scale {sigma * voxel_size:.0f} Å")
    b = _binning(sigma)
    vb = bin_volume(volume, b)
    z = robust_z(response(vb, sigma / b, kind))
    say("response")
    seed_z, grow_z = config.extended_seed_z, config.extended_grow_z
    warnings = []
    seeds = z > seed_z
    for p, zp in zip(pts, at):
        if zp < seed_z:
            warnings.append(
                f"the prompt at z,y,x={p[0]:g},{p[1]:g},{p[2]:g} is on a weak {kind} "
                f"(response {zp:.1f} background SDs, seeds need {seed_z:g}); check it is on "
                "the structure"
            )
        box = _near(p, b, z.shape)
        seeds[box] |= z[box] > grow_z
    labels, has_seed, sizes = _seeded_components(z, seeds, grow_z)
    n = len(sizes) - 1
    prompted = np.zeros(n + 1, bool)
    for p in pts:
        prompted[np.unique(labels[_near(p, b, z.shape)])] = True
    if only_prompted:
        keep = prompted.copy()
    else:
        keep = (has_seed & (sizes >= _min_voxels(kind, sigma, b))) | prompted
    for q in np.asarray(negatives_zyx, dtype=np.float64).reshape(-1, 3):
        keep[np.unique(labels[_near(q, b, z.shape)])] = False
    keep[0] = False
    kept_cells = keep[labels]
    del labels, seeds
    mask = _to_full(kept_cells, z, b, volume.shape, grow_z)
    say("mask")
    comps, n_comp = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(comps.ravel(), minlength=n_comp + 1)
    crumbs = sizes < (2 * sigma) ** 3  # split off by the full-resolution threshold
    crumbs[0] = False
    if crumbs.any():
        mask &= ~crumbs[comps]
        comps, n_comp = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    comps = comps.astype(np.uint16 if n_comp < 65535 else np.uint32)
    table = _component_table(comps, kind, voxel_size, b)
    return ExtendedOutcome(
        mask, comps, kind, float(sigma), b, [float(a) for a in at], table, warnings
    )


def _seeded_components(z: np.ndarray, seeds: np.ndarray, grow_z: float):
    """Hysteresis: the connected components of ``z > grow_z``, ``(labels, whether each
    holds a seed, its size in cells)`` (index 0: the background)."""
    grown = z > grow_z
    labels, n = ndimage.label(grown)
    has_seed = np.zeros(n + 1, bool)
    has_seed[np.unique(labels[seeds & grown])] = True
    return labels, has_seed, np.bincount(labels.ravel(), minlength=n + 1)


MEMBRANE_SCALE_ANGST = 30.0
"""The sheet scale of :func:`membrane_zone` (a lipid bilayer is 40-50 Å thick)."""
MEMBRANE_MARGIN_ANGST = 60.0
"""How far around a found membrane a particle's centre is taken to lie on it (a
membrane-bound ribosome's centre lies ~120-150 Å from its membrane's)."""


def membrane_zone(volume, voxel_size: float | None, config: Config | None = None):
    """Where membranes are, without prompts: ``(mask, b)``, a boolean mask on the grid binned
    by ``b``, of the sheets of the :data:`MEMBRANE_SCALE_ANGST` ridge response that are
    seeded above ``extended_seed_z``, grown through ``extended_grow_z`` and larger than a
    membrane patch (as ``cryosam pick --extended`` finds them), widened by
    :data:`MEMBRANE_MARGIN_ANGST`. ``volume`` is prepared (protein bright); ``voxel_size``
    in Å (10 when unknown)."""
    config = config or Config()
    vs = voxel_size or 10.0
    sigma = MEMBRANE_SCALE_ANGST / vs
    b = max(1, int(round(sigma / 1.5)))
    z = robust_z(response(bin_volume(volume, b), sigma / b, "sheet"))
    labels, has_seed, sizes = _seeded_components(
        z, z > config.extended_seed_z, config.extended_grow_z
    )
    del z
    keep = has_seed & (sizes >= _min_voxels("sheet", sigma, b))
    keep[0] = False
    if not keep.any():
        return np.zeros((0, 0, 0), bool), b
    mask = keep[labels]
    margin = int(round(MEMBRANE_MARGIN_ANGST / (b * vs)))
    return (ndimage.binary_dilation(mask, iterations=margin) if margin else mask), b


def in_zone(zone: tuple[np.ndarray, int], zyx) -> np.ndarray:
    """Per point, whether it lies in a :func:`membrane_zone`."""
    mask, b = zone
    zyx = np.asarray(zyx, np.float64).reshape(-1, 3)
    if not mask.size or not len(zyx):
        return np.zeros(len(zyx), bool)
    c = np.clip(np.floor(zyx / b).astype(int), 0, np.asarray(mask.shape) - 1)
    return mask[tuple(c.T)]


def _to_full(kept_cells: np.ndarray, z: np.ndarray, b: int, shape, level: float) -> np.ndarray:
    """Full-resolution mask: inside the kept cells (nearest, one cell of slack), where the
    linearly interpolated response is above ``level``."""
    if b == 1:
        return kept_cells & (z > level)
    near = ndimage.binary_dilation(kept_cells)
    mask = np.zeros(shape, bool)
    zz = ndimage.zoom(z, b, order=1, grid_mode=True, mode="nearest")
    kk = np.repeat(np.repeat(np.repeat(near, b, 0), b, 1), b, 2)
    sl = tuple(slice(0, min(s, t)) for s, t in zip(shape, zz.shape))
    mask[sl] = kk[sl] & (zz[sl] > level)
    return mask


@dataclass
class ExtendedResult:
    """Every extended class of a run: label maps and per-class outcomes."""

    semantic: np.ndarray
    instances: np.ndarray
    class_ids: dict[str, int]
    outcomes: dict[str, ExtendedOutcome]
    inverted: bool
    balanced: bool = False  # the spectrum's low frequencies turned down first

    def components(self) -> list[dict]:
        """``components.csv`` rows: class, instance id in instances.mrc, size, centre."""
        rows, offset = [], 0
        for name, out in self.outcomes.items():
            for r in out.table:
                rows.append(
                    {
                        "class": name,
                        "instance": r["component"] + offset,
                        **{k: v for k, v in r.items() if k != "component"},
                    }
                )
            offset += len(out.table)
        return rows


def segment_extended_classes(
    volume: np.ndarray,
    prompts,
    voxel_size: float,
    config: Config | None = None,
    thickness_px: dict[str, float] | None = None,
    only_prompted: bool = False,
    progress=None,
) -> ExtendedResult:
    """:func:`segment_extended` for every prompted class, on one prepared volume.

    ``instances`` numbers the components of all classes consecutively (class order);
    with ``only_prompted`` (``segment``), id ``k`` is the component under the ``k``-th
    positive prompt instead."""
    config = config or Config()
    validate_prompts(prompts, volume.shape)
    thickness_px = thickness_px or {}
    positives = [p for p in prompts if not p.negative]
    classes = list(dict.fromkeys(p.class_name for p in positives))
    pts = np.array([p.zyx for p in positives])
    d = min([thickness_px.get(c, 0) or 40.0 / voxel_size for c in classes])
    prepared, inverted = prepare_volume(
        volume,
        config.invert,
        max(4.0, 2 * d),
        pts,
        balance=asked_balance(config.balance_spectrum),
    )
    class_ids = {c: i + 1 for i, c in enumerate(classes)}
    if only_prompted and config.segmenter != "classical":
        return _propagate_extended(prepared, inverted, prompts, class_ids, config)
    semantic = np.zeros(volume.shape, np.uint8)
    total = 0
    outcomes = {}
    for cls in classes:
        mine = [p.zyx for p in positives if p.class_name == cls]
        negs = [p.zyx for p in prompts if p.negative and p.class_name in (None, cls)]
        out = segment_extended(
            prepared, mine, voxel_size, config, negs, thickness_px.get(cls), only_prompted, progress
        )
        outcomes[cls] = out
        semantic[out.mask] = class_ids[cls]
        total += len(out.table)
    instances = np.zeros(volume.shape, np.uint16 if total < 65535 else np.uint32)
    if only_prompted:
        for k, p in enumerate(positives, start=1):
            comps = outcomes[p.class_name].components
            c = np.clip(np.round(p.zyx).astype(int), 0, np.asarray(volume.shape) - 1)
            box = tuple(slice(max(0, a - 3), a + 4) for a in c)
            ids = np.unique(comps[box])
            ids = ids[ids > 0]
            if len(ids):
                instances[(comps == ids[0]) & (instances == 0)] = k
    else:
        offset = 0
        for out in outcomes.values():
            sel = out.components > 0
            instances[sel] = out.components[sel] + offset
            offset += len(out.table)
    return ExtendedResult(semantic, instances, class_ids, outcomes, inverted, prepared.balanced)


def _propagate_extended(prepared, inverted, prompts, class_ids, config) -> ExtendedResult:
    """``segment --extended`` with a foundation segmenter (SAM): cross-plane propagation
    with the particle-size bound lifted. Propagation still stops on the IoU rule, and a
    slice mask larger than 40 % of the plane (a flood of the background) ends it."""
    shape = prepared.shape
    size = float(max(shape))
    plane = float(np.prod(sorted(shape)[1:]))
    area_factor = 2 * np.sqrt(0.4 * plane / np.pi) / size
    cfg = config.replace(max_extent_factor=1.0, max_area_factor=area_factor)
    segmenter = build_segmenter(config)
    segmenter.set_volume(prepared, size)
    positives = [p for p in prompts if not p.negative]
    semantic = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.uint16 if len(positives) < 65535 else np.uint32)
    outcomes = {}
    for k, p in enumerate(positives, start=1):
        negs = [q.zyx for q in prompts if q.negative and q.class_name in (None, p.class_name)]
        m = propagate_instance(segmenter, shape, p.zyx, size, cfg, negs)
        if not m.empty:
            view = instances[m.box()]
            view[m.mask & (view == 0)] = k
            semantic[m.box()][m.mask] = class_ids[p.class_name]
        out = outcomes.setdefault(
            p.class_name,
            ExtendedOutcome(np.zeros(0, bool), np.zeros(0, np.uint16), "propagated", 0.0, 1, []),
        )
        out.prompt_z.append(float(m.score))
        if m.empty:
            out.warnings.append(f"prompt {k} segmented to nothing")
    for name, out in outcomes.items():
        out.mask = semantic == class_ids[name]
    return ExtendedResult(semantic, instances, class_ids, outcomes, inverted, prepared.balanced)
