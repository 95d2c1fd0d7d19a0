"""Prompts -> every similar particle, as a sequence of named stages.

1. :func:`setup`: each class's size, the prepared volume (contrast, standardisation) and
   the prompts segmented in 3D (cross-plane self-prompting).
2. :func:`class_features`: tomogram features per class size (weight-free bank or DINOv2
   tri-view), through the feature cache when one is given.
3. :func:`~cryosam.method.queries.own_query`: a class's query, the centre-weighted masked
   average of the features over its prompted masks.
4. :func:`match_candidates`: hierarchical matching, 3D NMS and top-K (raised to what the
   tomogram can hold), with query expansion (the query re-averaged with its best matches).
5. :func:`mark_candidates`: candidates on a prompt, or closer to a negative prompt's
   features than to their class's (without verification), are marked;
   :func:`mark_not_particles`: so are those on or beside a gold fiducial
   (:mod:`cryosam.volume.fiducials`) or centred on a membrane
   (:func:`~cryosam.method.extended.membrane_zone`), before they can shape the reference.
6. :func:`score_and_cut`: shape verification (:mod:`cryosam.method.verify`, on by default)
   re-centres and re-scores every candidate against a reference from the prompted particles,
   and the class's cut is decided once (:mod:`cryosam.method.cut`).
7. :meth:`~cryosam.method.candidates.Candidates.compete`: classes compete for a particle.
8. :func:`segment_accepted`: only accepted candidates are segmented; the mask centroid is
   the pick centre, a mask far from the class's size (its accepted matches' median mask,
   or the prompted masks' when there are few) is ``size_mismatch`` (a verified match whose
   mask ran into its neighbours keeps its pick; its mask stays only if stage 11 cuts it back).
9. :func:`assemble`: duplicates merged, picks numbered (each keeps its mask).
10. :func:`orient_picks`: each pick's orientation, its class's aligned average, and the
    strays that agree with neither.
11. :func:`class_shaped_masks`: each pick's mask cut back to its class's envelope, turned as
    the pick is (:mod:`cryosam.method.envelope`, ``mask_envelope``); :func:`paint`: the
    label maps, once, from the picks that stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial import cKDTree

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.picks import Picks
from cryosam.io.prompts import Prompt, validate_prompts
from cryosam.method.candidates import Candidates, PickEntry, Status, deduplicate, statuses
from cryosam.method.centre import snap_prompts
from cryosam.method.cut import (
    Cut,
    CutRule,
    background_level,
    strays,
    unverified_cut,
    verified_cut,
)
from cryosam.method.envelope import ENVELOPE_MIN_PICKS, class_envelope, trim_mask
from cryosam.method.extended import in_zone, membrane_zone
from cryosam.method.instances import (
    SegmentOutcome,
    label_dtype,
    merge_duplicate_prompts,
    segment_prompts,
)
from cryosam.method.matching import find_peaks, hierarchical_match, naive_match, similarity
from cryosam.method.orient import (
    average,
    average_correlations,
    average_reference,
    canonical,
    orient,
    relion_angles,
    symmetrize,
    symmetry_agreement,
    symmetry_frame,
    symmetry_group,
)
from cryosam.method.propagate import InstanceMask, propagate_instance
from cryosam.method.queries import (
    ClassQuery,
    class_diameter,
    encoder_identity,
    own_query,
    pooled_features,
    same_encoder,
)
from cryosam.method.seeds import map_seeds
from cryosam.method.verify import (
    FinerGrid,
    Reference,
    ShapeVerifier,
    combined_score,
    drift_warning,
    finer_grid,
    map_reference,
    prompt_reference,
    rescue_from_blobs,
    rotate_box,
    verify_candidates,
)
from cryosam.models import build_encoder, build_segmenter
from cryosam.models.cache import FeatureCache, cache_key
from cryosam.models.features import FeatureVolume
from cryosam.timing import Timer
from cryosam.volume.contrast import contrast_doubt
from cryosam.volume.fiducials import (
    count_beads,
    erase_zone,
    find_gold,
    gold_reach_px,
    near_gold,
)
from cryosam.volume.prepare import lifted_warning, prepare_volume
from cryosam.volume.wedge import wedge_to_mind


@dataclass
class ClassReport:
    """What happened to one class."""

    name: str
    class_id: int
    diameter_px: float
    n_prompts: int
    n_candidates: int = 0
    n_accepted: int = 0
    cut: float = float("nan")
    cut_method: str = ""
    background: float = float("nan")
    separation: float = float("nan")
    separation_nearest: float = float("nan")
    """``separation`` against the nearer group of the rejected alone
    (:func:`~cryosam.method.cut.nearest_separation`)."""
    n_near_fiducial: int = 0
    n_on_membrane: int = 0
    n_strays: int = 0
    cut_by_shape: float = float("nan")
    """The cut the scores gave (before any count by mass)."""
    cut_by_mass: float = float("nan")
    """The cut counting by mass gives (:func:`~cryosam.method.cut.count_by_mass`), whichever
    was taken; NaN without a mass window. ``n_by_shape`` / ``n_by_mass``: the candidates each
    keeps."""
    n_by_shape: int = 0
    n_by_mass: int = 0
    comparisons: list[int] = field(default_factory=list)
    feature_cache: str = "off"
    verified: bool = False
    reference_contrast_kept: float = float("nan")
    """The refined reference's contrast as a fraction of its click's (under 0.5: drifted)."""
    reference_dense_only: bool = False
    """The reference drifted and was refined again from the dense matches alone."""
    seeded_from_map: list = field(default_factory=list)
    """The class's prompts found from its map (no click): ``[z, y, x, correlation]`` each."""
    query: ClassQuery | None = field(default=None, repr=False)

    def record(self) -> dict:
        """The class's entry of ``run.json`` (without its query)."""
        return {k: v for k, v in self.__dict__.items() if k != "query"}


@dataclass
class PickOutcome:
    """Result of :func:`pick_particles`."""

    picks: Picks
    candidates: Picks
    candidate_status: np.ndarray
    semantic: np.ndarray
    instances: np.ndarray
    class_ids: dict[str, int]
    reports: list[ClassReport]
    prompt_outcome: SegmentOutcome
    inverted: bool
    timings: dict[str, float]
    queries: dict[str, ClassQuery] = field(default_factory=dict)
    candidate_columns: dict[str, np.ndarray] = field(default_factory=dict)
    """More per-candidate values for ``candidates.csv`` (``correlation``, ``similarity``)."""
    averages: dict[str, np.ndarray] = field(default_factory=dict)
    """Class -> the aligned average of its picks (prepared contrast: bright protein)."""
    prompts: list[Prompt] = field(default_factory=list)
    """The prompts as used (a click moved to its particle's centre when ``prompt_snap`` is on)."""
    missing_wedge: str = "off"
    """The missing wedge verification minded (``y:46``: tilts about y up to 46°), as read from
    the tomogram where ``missing_wedge`` is ``narrow`` or ``auto``."""
    spectrum_balanced: bool = False
    """Whether the tomogram's low frequencies were turned down (``balance_spectrum``)."""

    def volume_reading(self) -> tuple[str, bool]:
        """What was read from the tomogram itself: ``(missing_wedge, spectrum_balanced)``."""
        return self.missing_wedge, self.spectrum_balanced


@dataclass
class Setup:
    """What every class's search in one tomogram shares (stage 1).

    ``diameters_px`` are the user's sizes (features, verification and the segmenter's
    denoising are sized from them, so a rerun with other prompts reuses cached features);
    ``external`` are the queries from other tomograms for classes without prompts here."""

    config: Config
    prompts: list[Prompt]
    own: list[str]
    external: dict[str, ClassQuery]
    diameters_px: dict[str, float]
    prepared: object
    inverted: bool
    segmenter: object
    encoder: object
    seg: SegmentOutcome
    voxel_size: float | None = None
    gold: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), int), repr=False)
    """Gold-fiducial voxels erased from ``prepared`` (:func:`find_fiducials`)."""
    features: dict[float, FeatureVolume] = field(default_factory=dict)
    maps: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict, repr=False)
    """Class -> a known structure ``(density, voxel size Å)`` to verify and orient against."""
    symmetry: dict[str, str] = field(default_factory=dict)
    """Class -> its point group (``C7``, ``D7``) in its map's frame (needs a map)."""
    seeds: dict[str, list] = field(default_factory=dict)
    """Class -> its prompts found from its map (:mod:`cryosam.method.seeds`): ``[z, y, x,
    correlation]`` each, for a class given a map and no prompt."""
    _membranes: tuple | None = field(default=None, repr=False)

    @property
    def encoder_id(self) -> str:
        """The encoder's identity (:func:`~cryosam.method.queries.encoder_identity`)."""
        return encoder_identity(self.encoder)

    @property
    def classes(self) -> list[str]:
        return self.own + list(self.external)

    def prompted(self, cls: str) -> tuple[np.ndarray, list[InstanceMask]]:
        """The class's prompt points ``(N, 3)`` and their masks."""
        idx = [i for i, p in enumerate(self.seg.prompts) if p.class_name == cls]
        points = np.array([self.seg.prompts[i].zyx for i in idx]).reshape(-1, 3)
        return points, [self.seg.instances[i] for i in idx]

    def negatives(self, cls: str) -> list[Prompt]:
        """Negative prompts that apply to ``cls`` (their own class, or none)."""
        return [p for p in self.prompts if p.negative and p.class_name in (None, cls)]

    def membranes(self, timer: Timer) -> tuple | None:
        """Where membranes lie (:func:`~cryosam.method.extended.membrane_zone`), found on
        first use (only a search needs them, not ``recut`` or a batch's queries); None with
        ``reject_membranes`` off."""
        if self._membranes is None and self.config.reject_membranes:
            with timer.stage("membranes"):
                self._membranes = membrane_zone(self.prepared, self.voxel_size, self.config)
        return self._membranes


def setup(
    volume,
    prompts,
    diameters_px,
    config: Config,
    queries=None,
    timer=None,
    voxel_size=None,
    say=None,
    maps=None,
    symmetry=None,
) -> Setup:
    """Stage 1: classes, contrast, the prepared volume and the prompted instances (with many
    prompts, ``say`` hears how many are segmented, every tenth of them). ``maps`` and
    ``symmetry`` as for :func:`pick_particles`: a class with a map and no prompt (nor
    query) is prompted with its best matches to the map (:func:`seed_prompts`)."""
    timer = timer or Timer()
    positives = [p for p in prompts if not p.negative]
    own = list(dict.fromkeys(p.class_name for p in positives))
    external = {c: q for c, q in (queries or {}).items() if c not in own}
    maps = dict(maps or {})
    unprompted = [c for c in maps if c not in own and c not in external]
    if prompts or not (external or unprompted):
        validate_prompts(prompts, volume.shape, require_positive=not (external or unprompted))
    if not own and external and config.invert == "auto":  # the prompted tomograms decided
        config = config.replace(invert=_inverted_by_vote(external))
    diameters_px = {**{c: q.diameter_px for c, q in external.items()}, **diameters_px}
    with timer.stage("prepare"):
        d_min = min(diameters_px[c] for c in own + list(external) + unprompted)
        points = np.array([p.zyx for p in positives]) if own else None
        prepared, inverted, warns, config = _prepared(volume, config, d_min, points, bool(own))
        if own and config.prompt_snap:  # clicks to their particles' centres
            prompts = snap_prompts(prepared, prompts, diameters_px, config.prompt_snap)
            positives = [p for p in prompts if not p.negative]
            points = np.array([p.zyx for p in positives])
    with timer.stage("fiducials"):
        gold, said = find_fiducials(prepared, config, voxel_size, diameters_px, points)
    if unprompted:  # after the fiducials are erased: a gold bead is a strong blob
        with timer.stage("seeds"):
            found = seed_prompts(prepared, maps, unprompted, diameters_px, config, voxel_size, gold)
        prompts = list(prompts) + [p for c in unprompted for p in found[c][0]]
        positives = [p for p in prompts if not p.negative]
        own += [c for c in unprompted if found[c][0]]
    segmenter, encoder = build_segmenter(config), build_encoder(config)
    with timer.stage("segment_prompts"):
        sized = all(p.class_name in diameters_px for p in positives)  # else refused below
        factor = config.nms_radius_factor  # merged prompts are segmented once
        n_segmented = len(merge_duplicate_prompts(positives, diameters_px, factor)[0]) * sized
        if own:
            seg = segment_prompts(
                volume,
                prompts,
                diameters_px,
                config,
                segmenter,
                progress=_counter(n_segmented, "prompts segmented", say),
                prepared=(prepared, inverted),
            )
        else:
            seg = SegmentOutcome([], [], np.zeros((1, 1, 1), np.uint8), inverted)
    seg.warnings[:0] = said + warns
    return Setup(
        config,
        list(prompts),
        own,
        external,
        diameters_px,
        prepared,
        inverted,
        segmenter,
        encoder,
        seg,
        voxel_size,
        gold,
        maps=maps,
        symmetry=dict(symmetry or {}),
        seeds={c: found[c][1] for c in unprompted} if unprompted else {},
    )


def _prepared(volume, config: Config, d_min: float, points, skewness: bool):
    """:func:`prepare_volume` with the config's contrast and spectrum balance, the warnings
    it gives (a doubt about the contrast read, a lifted spectrum left as it is), and the
    config with the missing wedge read."""
    prepared, inverted = prepare_volume(
        volume, config.invert, d_min, points, skewness, config.balance_spectrum
    )
    doubt = contrast_doubt(prepared.reading) if prepared.reading else None
    warns = [w for w in (doubt, lifted_warning(prepared)) if w]
    return prepared, inverted, warns, with_wedge_read(config, prepared)


def _inverted_by_vote(external: dict[str, ClassQuery]) -> str:
    """``invert`` as most of the queries' tomograms read it (``yes`` on a tie)."""
    votes = [q.inverted for q in external.values()]
    return "yes" if sum(votes) * 2 >= len(votes) else "no"


def with_wedge_read(config: Config, prepared) -> Config:
    """``config`` with ``missing_wedge: narrow`` or ``auto`` replaced by the wedge to mind
    that the tomogram shows (``y:46``, or ``off``): read once, every verifier of the run
    shares it."""
    if config.missing_wedge not in ("narrow", "auto"):
        return config
    wedge = wedge_to_mind(config.missing_wedge, prepared)
    return config.replace(missing_wedge=wedge.spec() if wedge else "off")


def seed_prompts(
    prepared, maps, classes, diameters_px, config: Config, voxel_size, gold=None
) -> dict:
    """Class -> ``(prompts, record)``: the class's ``map_seeds`` best matches to its map
    (:func:`~cryosam.method.seeds.map_seeds`; none on or beside a gold fiducial) as positive
    prompts, and ``[z, y, x, correlation]`` of each for ``run.json``."""
    out = {}
    gold = np.zeros((0, 3), int) if gold is None else gold
    for cls in classes:
        density, map_vs = maps[cls]
        d = diameters_px[cls]
        ref = map_reference(prepared, d, config, density, map_vs, voxel_size or 10.0)
        reach = gold_reach_px(d, voxel_size)
        zyx, corr = map_seeds(
            prepared, ref, d, config, config.map_seeds, lambda p, r=reach: near_gold(p, gold, r)
        )
        prompts = [Prompt(tuple(float(v) for v in p), cls) for p in zyx]
        record = [[*(round(float(v), 2) for v in p), round(float(c), 4)] for p, c in zip(zyx, corr)]
        out[cls] = (prompts, record)
    return out


def _counter(total: int, what: str, say, every: int = 10):
    """A ``progress(n)`` callback that tells ``say`` ``what: k / total`` every
    ``1 / every`` of ``total`` (nothing for fewer than 2 ``every`` items)."""
    if say is None or total < 2 * every:
        return None
    done = [0]
    marks = {int(round(total * k / every)) for k in range(1, every)}

    def tick(n: int = 1) -> None:
        done[0] += n
        if done[0] in marks:
            say(f"{what}: {done[0]} / {total}")

    return tick


def find_fiducials(
    prepared, config: Config, voxel_size, diameters_px, points
) -> tuple[np.ndarray, list[str]]:
    """The gold-fiducial voxels of ``prepared`` (:mod:`cryosam.volume.fiducials`), erased
    from it, and what to tell the user. None found, or none looked for: with
    ``reject_fiducials`` off, or when a positive prompt lies within reach of gold (the user
    then asked for what is there)."""
    if not config.reject_fiducials:
        return np.zeros((0, 3), int), []
    gold = find_gold(prepared, voxel_size)
    if not len(gold):
        return gold, []
    if points is not None and len(points):
        reach = gold_reach_px(max(diameters_px.values()), voxel_size)
        if near_gold(points, gold, reach).any():
            return np.zeros((0, 3), int), [
                "a prompt lies on or beside a gold fiducial: fiducials are left in and "
                "candidates beside them kept"
            ]
    prepared.erase(erase_zone(gold, prepared.shape, voxel_size))
    n = count_beads(gold)
    return gold, [
        f"found {n} gold fiducial{'s' if n > 1 else ''}: erased, and candidates on or beside "
        "them rejected (near_fiducial in candidates.csv; --set reject_fiducials=false keeps "
        "them)"
    ]


def class_features(
    s: Setup, cls: str, cache: FeatureCache | None, input_sha256: str | None, rep: ClassReport
) -> FeatureVolume:
    """Stage 2: the features for the class's (user) size, computed once per size and read
    from / written to ``cache`` when it and the input's checksum are given."""
    key = round(s.diameters_px[cls], 1)
    if key not in s.features:
        if cache is None or input_sha256 is None:
            s.features[key] = s.encoder.encode(s.prepared, key)
        else:
            sig = s.encoder.signature()
            if len(s.gold):  # features of a volume with its fiducials erased
                sig = {**sig, "gold_erased": int(len(s.gold))}
            if s.prepared.balanced:  # ... or with its low frequencies turned down
                sig = {**sig, "spectrum_balanced": True}
            ck = cache_key(input_sha256, sig, key, s.inverted)
            info = {"input_sha256": input_sha256, "encoder": s.encoder.name}
            s.features[key], hit = cache.get_or_compute(
                ck, lambda: s.encoder.encode(s.prepared, key), info, warn=s.seg.warnings.append
            )
            rep.feature_cache = "hit" if hit else "miss"
    return s.features[key]


def effective_top_k(config: Config, shape, d: float) -> int:
    """``top_k``, raised to the number of diameter cubes that fill ``packing`` of the volume."""
    room = float(np.prod([int(s) for s in shape])) / max(d, 1.0) ** 3
    return max(config.top_k, int(config.packing * room))


def match_candidates(
    feats: FeatureVolume, query: np.ndarray, d: float, config: Config, shape, naive: bool = False
) -> tuple[Candidates, list[int]]:
    """Stage 4: hierarchical matching, NMS and top-K, with ``config.query_expansion`` rounds
    in which the query is averaged with its ``expansion_size`` best matches (prompts count
    once each in the first query). Returns the candidates and comparisons per level."""
    comparisons: list[int] = []
    nms = config.nms_radius_factor * d
    top_k = effective_top_k(config, shape, d)
    zyx, scores = np.zeros((0, 3)), np.zeros(0)
    for round_ in range(config.query_expansion + 1):
        if naive:
            result = naive_match(feats.data, feats.stride, query[None], shape)
        else:
            result = hierarchical_match(
                feats.data, feats.stride, query[None], config.pyramid, config.tau_sim
            )
        comparisons += result.evaluated
        zyx, scores = find_peaks(result, nms, top_k, config.tau_sim)
        if round_ < config.query_expansion and len(zyx):
            best = feats.sample(zyx[: config.expansion_size])
            query = (query + best.sum(axis=0)) / (1 + len(best))
    return Candidates(zyx, scores, statuses(len(zyx))), comparisons


def mark_candidates(
    s: Setup,
    cls: str,
    cands: Candidates,
    feats: FeatureVolume,
    query: np.ndarray,
    d: float,
    verify: bool,
) -> None:
    """Stage 5: candidates on a prompt become ``PROMPT``; without verification, those more
    similar to a negative prompt's features than to the query become ``NEGATIVE`` (with
    verification negatives are judged by shape, in stage 6)."""
    negs = s.negatives(cls)
    if negs and len(cands) and not verify:
        s.segmenter.set_volume(s.prepared, s.diameters_px[cls])  # the prompts' denoising
        masks = [
            propagate_instance(s.segmenter, s.prepared.shape, p.zyx, d, s.config) for p in negs
        ]
        nq = np.stack([pooled_features(feats, [m], [p.zyx]) for m, p in zip(masks, negs)])
        cands.status[similarity(feats.sample(cands.zyx).T, nq) > cands.score] = Status.NEGATIVE
    prompted, _ = s.prompted(cls)
    if len(cands) and len(prompted):
        dist = cKDTree(prompted).query(cands.zyx)[0]
        cands.status[dist < s.config.nms_radius_factor * d] = Status.PROMPT


def mark_not_particles(s: Setup, cls: str, cands: Candidates, timer: Timer) -> None:
    """Free candidates on or beside a gold fiducial (:attr:`Setup.gold`) become
    ``NEAR_FIDUCIAL``, those centred on a membrane (:meth:`Setup.membranes`) ``ON_MEMBRANE``
    (not when one of the class's own prompts lies on one: the class is then a membrane
    protein)."""
    if not len(cands):
        return
    if len(s.gold):
        reach = gold_reach_px(s.diameters_px[cls], s.voxel_size)
        cands.status[cands.free & near_gold(cands.zyx, s.gold, reach)] = Status.NEAR_FIDUCIAL
    zone = s.membranes(timer)
    if zone is not None and not in_zone(zone, s.prompted(cls)[0]).any():
        cands.status[cands.free & in_zone(zone, cands.zyx)] = Status.ON_MEMBRANE


def score_and_cut(
    s: Setup, cls: str, cands: Candidates, feats: FeatureVolume, rep: ClassReport, timer: Timer
) -> Candidates:
    """Stage 6: shape verification (when on and a reference can be had) and the class's cut,
    decided once; the free candidates become ``ACCEPTED`` or ``BELOW_CUT``."""
    config = s.config
    ext = s.external.get(cls)
    reference = ext.reference if ext else None
    verify = bool(config.verify and len(cands) and (reference is not None or not ext))
    rep.background = background_level(
        feats, rep.query.vector, config.seed, config.background_samples, config.background_quantile
    )
    if verify:
        with timer.stage("verify"):
            dv = s.diameters_px[cls]  # the user's size (as for the features)
            prompted, masks = s.prompted(cls)
            if reference is None and cls in s.maps:  # a known structure, in its own frame
                reference = class_map_reference(s, cls)
            elif reference is None:
                # the first prompt, bootstrapped from its best matches: averaging the other
                # prompts in, each aligned to that one noisy particle, blurred it (dev1, 10 %
                # of the ribosomes as prompts: F1 0.79; from the first alone 0.86)
                reference = prompt_reference(s.prepared, dv, config, prompted, masks, False)
            negatives = [p.zyx for p in s.negatives(cls)]
            grid = finer_grid(s.prepared, dv, config.verify_bin_px)
            if grid is None:  # the integer bin suits the class: the volume itself
                grid = FinerGrid(s.prepared, np.ones(3))
            v = verify_on(s, grid, cands, dv, reference, prompted, negatives)
            rep.query.reference, rep.verified = v.reference, True
            rep.reference_contrast_kept = round(v.contrast_kept, 3)
            rep.reference_dense_only = v.dense_only
            said = drift_warning(cls, v.contrast_kept, v.dense_only)
            if ext is None and cls not in s.maps and said:
                s.seg.warnings.append(said)
        columns = {"correlation": v.correlation, "similarity": cands.score, "mass": v.mass}
        cands = Candidates(v.zyx, v.score, v.status, columns=columns)
        # a negative prompt's matches go on as free ones (ranked, cut, segmented, judged for
        # strays) and leave only when the picks are final (:func:`finish`): a negative takes
        # its own matches away and changes nothing else (ranked without them, the re-ranked
        # group reached deeper and let a TRiC ring in: dev1 ribosome 0.984 -> 0.979)
        claimed = cands.status == Status.NEGATIVE
        cands.status[claimed] = Status.CANDIDATE
        columns[CLAIMED] = claimed.astype(np.float64)
        mark_not_particles(s, cls, cands, timer)  # centring may have moved one there
        pool = cands.cut_pool
        ok = None if v.mass_ok is None else v.mass_ok[pool]
        sim, strays_follow = columns["similarity"][pool], config.pick_strays
        vc = verified_cut(cands.score[pool], v.floor, sim, rep.background, strays_follow, ok)
    else:
        vc = unverified_cut(cands.score[cands.cut_pool], config.tau_sim, rep.background)
    rep.n_near_fiducial = int(np.sum(cands.status == Status.NEAR_FIDUCIAL))
    rep.n_on_membrane = int(np.sum(cands.status == Status.ON_MEMBRANE))
    # how far the matches stand apart at the cut their scores gave (the mass count, which
    # keeps more and so leaves a narrower rejected tail, must not hide a guess)
    pooled = cands.score[cands.cut_pool]
    rep.separation, rep.separation_nearest = vc.separation, vc.nearest
    rep.cut_by_shape, rep.n_by_shape = vc.first.value, int(np.sum(pooled >= vc.first.value))
    if vc.by_mass is not None:
        rep.cut_by_mass, rep.n_by_mass = vc.by_mass, int(np.sum(pooled >= vc.by_mass))
    cut = vc.final
    if verify and config.verify_refine_angles:
        with timer.stage("verify"):
            rerank_refined(s, cands, cut.value, dv, grid)
    if verify and config.verify_rescue_from_blobs:
        with timer.stage("verify"):
            rescue_rejected(s, cls, cands, cut.value, dv, grid, timer)
    _apply_cut(cands, cut, rep)
    return cands


def verify_on(s: Setup, grid, cands: Candidates, dv: float, reference, prompted, negatives):
    """:func:`~cryosam.method.verify.verify_candidates` on ``grid``'s volume (the prepared
    one, or its finer copy, :func:`~cryosam.method.verify.finer_grid`) with every point and
    the diameter taken there and back: the result's places on the original grid, and its
    reference resampled to the original grid's verifier (as a reference from another
    tomogram is; unchanged on the volume itself), kept as it was on ``grid`` in
    ``grid.reference`` for the re-ranking and the rescue."""
    fine, d = grid.fine, dv * grid.scale
    negatives = [fine(p)[0] for p in negatives]
    v = verify_candidates(
        grid.volume,
        fine(cands.zyx),
        cands.status,
        d,
        s.config,
        reference,
        fine(prompted),
        negatives,
        cands.score,
    )
    v.zyx, grid.reference = grid.native(v.zyx), v.reference
    v.reference = ShapeVerifier(s.prepared, dv, s.config).fit(v.reference)
    return v


def rescue_rejected(s: Setup, cls: str, cands: Candidates, cut: float, dv: float, grid, timer):
    """``verify_rescue_from_blobs``: the free candidates below ``cut`` climb again from
    their nearest blob centre (:func:`~cryosam.method.verify.rescue_from_blobs`) on
    verification's ``grid``, with its reference; those that moved are checked for
    fiducials and membranes again."""
    free = cands.free
    keep = (free & (cands.score >= cut)) | (cands.status == Status.PROMPT)
    before = cands.zyx.copy()
    corr = cands.columns["correlation"]
    zyx, kept, below = grid.fine(cands.zyx), grid.fine(cands.zyx[keep]), free & (cands.score < cut)
    moved, corr[:], cands.score = rescue_from_blobs(
        grid.volume, zyx, corr, cands.score, below, kept, dv * grid.scale, s.config, grid.reference
    )
    # only the moved ones change places (the others keep their exact original coordinates)
    changed = np.any(moved != zyx, axis=1)
    cands.zyx[changed] = grid.native(moved[changed])
    if np.any(cands.zyx != before):
        mark_not_particles(s, cls, cands, timer)


RERANK_MARGIN = 20
"""Besides twice the count the cut keeps, this many more of the best free candidates are
re-ranked (``verify_refine_angles``)."""


def rerank_refined(s: Setup, cands: Candidates, cut: float, dv: float, grid) -> None:
    """``verify_refine_angles``: the cut decides how many are kept (``n``, from the scores
    as verified), the refined correlation decides which. The best ``2 n + RERANK_MARGIN``
    free candidates are searched over every rotation and refined locally
    (:func:`~cryosam.method.orient.orient`, on verification's ``grid`` with its reference:
    on a finer copy, 14.3 Å dev2 / dev3 ribosome, five clicks, 9 of 10 up, medians 0.485 /
    0.574 -> 0.484 / 0.643); ranked by that correlation with half their
    feature similarity and their mass penalty (both in its units, as in the score), they take
    over the group's scores in their new order: the distribution the cut was found on, and so
    the cut and its count, stay as they were. ``correlation`` holds the refined values."""
    free = np.flatnonzero(cands.free)
    n = int(np.sum(cands.score[free] >= cut))
    if not n or len(free) < 3:
        return
    group = free[np.argsort(-cands.score[free])][: 2 * n + RERANK_MARGIN]
    at = grid.fine(cands.zyx[group])
    fine = orient(grid.volume, at, grid.reference, dv * grid.scale, s.config)[1]
    corr, sim = cands.columns["correlation"], cands.columns["similarity"]
    w = s.config.verify_similarity_weight
    before_mass = combined_score(corr, sim, cands.free, w)[group]
    scale = float(np.std(fine)) / max(float(np.std(corr[group])), 1e-9)
    penalty = np.clip(before_mass - cands.score[group], 0.0, None) * scale
    key = combined_score(fine, sim[group], np.ones(len(group), bool), w) - penalty
    scores = np.sort(cands.score[group])[::-1]
    cands.score[group[np.argsort(-key)]] = scores
    corr[group] = fine


def class_map_reference(s: Setup, cls: str):
    """The class's known structure as a reference (see :func:`map_reference`)."""
    density, map_vs = s.maps[cls]
    vs = s.voxel_size or 10.0
    ref = map_reference(s.prepared, s.diameters_px[cls], s.config, density, map_vs, vs)
    ops = symmetry_group(s.symmetry.get(cls, "C1"))
    # a map that is not quite symmetric is made so, in its own frame
    return symmetrized_reference(ref, ops) if len(ops) > 1 else ref


def _apply_cut(cands: Candidates, cut: Cut, rep: ClassReport) -> None:
    cands.cut_at(cut.value)
    rep.cut, rep.cut_method, rep.n_candidates = cut.value, cut.how, len(cands)


def search_class(
    s: Setup, cls: str, class_id: int, cache, input_sha256, naive, timer, say
) -> tuple[ClassReport, Candidates]:
    """Stages 2-6 for one class: its report and its scored, cut candidates."""
    points, masks = s.prompted(cls)
    ext = s.external.get(cls)
    tol = s.config.diameter_tolerance
    d = ext.diameter_px if ext else class_diameter(masks, s.diameters_px[cls], tol)
    rep = ClassReport(cls, class_id, d, len(points), seeded_from_map=s.seeds.get(cls, []))
    with timer.stage("features"):
        feats = class_features(s, cls, cache, input_sha256, rep)
    say(f"features for {cls}")
    with timer.stage("match"):
        # a copy of another tomogram's query: refining its reference here must not change
        # the caller's (a batch would otherwise search each tomogram with the one before's)
        if ext is None:
            rep.query = own_query(feats, masks, list(points), d, s.inverted, s.encoder_id)
        else:
            rep.query = replace(ext)
        q = rep.query.vector
        if ext and ext.encoder and not same_encoder(ext.encoder, s.encoder_id):
            raise CryosamError(
                f"the {cls} query was made with another encoder ({ext.encoder}) than this "
                f"run's ({s.encoder_id}); prompt with the same --encoder and --encoder-model"
            )
        if len(q) != feats.data.shape[0]:
            raise CryosamError(
                f"the {cls} query has {len(q)} features but this encoder makes "
                f"{feats.data.shape[0]}; prompt with the same --encoder"
            )
        cands, rep.comparisons = match_candidates(feats, q, d, s.config, s.prepared.shape, naive)
    verify = bool(s.config.verify and len(cands) and (not ext or ext.reference is not None))
    mark_candidates(s, cls, cands, feats, q, d, verify)
    mark_not_particles(s, cls, cands, timer)
    cands = score_and_cut(s, cls, cands, feats, rep, timer)
    return rep, cands.label(cls, d)


SIZE_FROM_MATCHES = 10
"""With at least this many accepted matches of a class, the size check compares each mask with
the median of theirs; with fewer, with the prompted masks' (:func:`class_voxels`)."""


def class_voxels(prompted: float, masks: list[InstanceMask]) -> float:
    """The class's mask volume for the size check: the median over its accepted matches'
    masks (at least :data:`SIZE_FROM_MATCHES`), else ``prompted`` (the prompted masks'
    median). One prompt's mask is one draw of the segmenter: on dev1 resampled to 8 Å the
    clicked proteasome's mask was 1.1 times its matches' median (1.3 times the true ones'),
    and the check dropped 17 true
    proteasomes (of 150) as too small; against the matches' median it drops 2, and the
    look-alikes it drops stay the same (2)."""
    sizes = [m.voxels for m in masks if not m.empty]
    return float(np.median(sizes)) if len(sizes) >= SIZE_FROM_MATCHES else float(prompted)


def segment_accepted(
    s: Setup, reports: list[ClassReport], table: Candidates, kept: np.ndarray
) -> list[PickEntry]:
    """Stage 8: each accepted candidate segmented (in z order: the segmenter denoises lazily
    in z-slabs and keeps the last few); the mask's centroid is the pick centre, and a mask far
    from its class's size (:func:`class_voxels`) is a size mismatch."""
    entries = []
    for rep in reports:
        mine = sorted(
            (i for i in kept if table.class_name[i] == rep.name), key=lambda i: table.zyx[i][0]
        )
        if mine:  # the user's size, as for the prompts: the denoised volume is reused
            s.segmenter.set_volume(s.prepared, s.diameters_px[rep.name])
        shape = s.prepared.shape
        masks = [propagate_instance(s.segmenter, shape, table.zyx[i], table.diameter[i], s.config)
                 for i in mine]  # fmt: skip
        ref = class_voxels(rep.query.ref_voxels, masks)
        for i, m in zip(mine, masks):
            entry = _entry(s, rep, m, ref, table.zyx[i], table.score[i], table.diameter[i])
            if entry is None:
                table.status[i] = Status.SIZE_MISMATCH
            else:
                entry.row = int(i)
                entries.append(entry)
    return entries


def _entry(s: Setup, rep: ClassReport, m: InstanceMask, ref: float, z, score, d):
    """One accepted candidate's :class:`PickEntry` from its mask ``m``, or ``None`` for a size
    mismatch (against the class's mask volume ``ref``)."""
    if _size_mismatch(m, ref, z, d, s.prepared.shape, s.config.size_tolerance):
        if rep.verified and m.voxels > ref:
            # a verified match whose mask ran into its neighbours: its shape score vouches
            # for the pick, not for the mask (kept only to be cut back to the class's shape)
            return PickEntry(z, float(score), rep.name, d, m, oversize=True)
        return None
    centre = m.centroid() if not m.empty else z
    if np.linalg.norm(centre - z) > 0.5 * d:  # the mask ran off: trust the peak
        centre, m = z, None
    return PickEntry(centre, float(score), rep.name, d, m)


def _size_mismatch(mask: InstanceMask, ref: float, centre, d: float, shape, tol: float) -> bool:
    """A match's mask is more than ``tol`` times larger, or smaller, than the prompted masks'
    median volume ``ref``. Particles cut by the volume's border may be smaller."""
    if ref <= 0 or mask.empty:
        return False
    ratio = mask.voxels / ref
    return ratio > tol or (ratio < 1 / tol and bool(inside_by(centre, d / 2, shape)[0]))


def inside_by(zyx, margin: float, shape) -> np.ndarray:
    """Per point, whether it lies at least ``margin`` voxels inside every face of a volume of
    ``shape`` (a particle centred nearer is cut by the border)."""
    z = np.asarray(zyx, np.float64).reshape(-1, 3)
    return np.all((z >= margin) & (z <= np.asarray(shape) - 1 - margin), axis=1)


def assemble(s: Setup, entries: list[PickEntry], reports: list[ClassReport]):
    """Stage 9: ``(picks, entries, rows)`` from the prompts' and the matches' entries (the
    prompts first, then by score), duplicates merged; ``entries`` those kept, one per pick;
    ``rows``: each pick's candidate (-1 for a prompt)."""
    size = {r.name: r.diameter_px for r in reports}
    head = [
        PickEntry(m.centroid(), 1.0, p.class_name, size[p.class_name], m)
        for p, m in zip(s.seg.prompts, s.seg.instances)
    ]
    entries = deduplicate(head + entries, s.config.nms_radius_factor, n_first=len(head))
    picks = Picks(
        np.array([e.centre for e in entries]) if entries else np.zeros((0, 3)),
        score=[e.score for e in entries],
        class_name=[e.class_name for e in entries],
        instance=np.arange(1, len(entries) + 1),
    )
    return picks, entries, np.array([e.row for e in entries], int)


def paint(shape, masks: list, class_names, class_ids: dict[str, int]):
    """``(semantic, instances)`` label maps of ``shape`` from each pick's mask (``None`` for
    none): id k is the k-th; a voxel two masks hold goes to the first (the prompts, then the
    best scores)."""
    instances = np.zeros(shape, dtype=label_dtype(len(masks) + 1))
    semantic = np.zeros(shape, dtype=np.uint8)
    for k, (m, name) in enumerate(zip(masks, class_names), start=1):
        if m is not None and not m.empty:
            m.paste(instances, k)
            view = semantic[m.box()]
            view[instances[m.box()] == k] = class_ids[name]
    return semantic, instances


def pick_particles(
    volume: np.ndarray,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config | None = None,
    progress=None,
    naive: bool = False,
    cache: FeatureCache | None = None,
    input_sha256: str | None = None,
    queries: dict[str, ClassQuery] | None = None,
    voxel_size: float | None = None,
    reference_maps: dict[str, tuple[np.ndarray, float]] | None = None,
    symmetry: dict[str, str] | None = None,
) -> PickOutcome:
    """Find every particle like the prompted ones (the stages of the module docstring).

    Args:
        volume: tomogram ``(z, y, x)`` as read.
        prompts: positive (and negative) prompts in voxels.
        diameters_px: class -> approximate diameter in voxels.
        progress: ``progress(stage: str)`` between stages.
        naive: match every voxel at full resolution (for comparison only).
        cache: a :class:`~cryosam.models.cache.FeatureCache`; with ``input_sha256`` the
            features are loaded from it when present and stored when computed.
        queries: class -> :class:`ClassQuery` from other tomograms, used for the classes
            that have no positive prompt here (``cryosam batch``). With queries, the
            prompt list may be empty and the result may hold no picks.
        voxel_size: Å per voxel (sizes the gold-fiducial search; 10 Å when unknown).
        reference_maps: class -> ``(density, voxel size Å)`` of a known structure: the
            class is verified against it (refined by its best matches) instead of its first
            prompt, and its picks' angles are in the map's frame.
        symmetry: class -> point group (``C7``, ``D7``) of its map (z the n-fold axis): the
            map and the average are symmetrised, each angle is the equivalent nearest the
            map's frame.
    """
    timer = Timer()
    say = progress or (lambda stage: None)
    config = config or Config()
    s = setup(
        volume, prompts, diameters_px, config, queries, timer, voxel_size, say,
        reference_maps, symmetry,
    )  # fmt: skip
    say("prompts segmented")
    class_ids = {c: i + 1 for i, c in enumerate(s.classes)}
    found = [
        search_class(s, c, class_ids[c], cache, input_sha256, naive, timer, say) for c in s.classes
    ]
    reports = [rep for rep, _ in found]
    say("matched")
    return finish(s, reports, Candidates.join([c for _, c in found]), timer, say)


CLAIMED = "_claimed"
"""Candidates column (1 or 0) of the matches a negative prompt claimed, carried as free until
:func:`finish` drops them (status ``NEGATIVE``); not written out."""


def finish(
    s: Setup, reports: list[ClassReport], table: Candidates, timer: Timer, say
) -> PickOutcome:
    """Stages 7-9 on every class's cut candidates: classes compete, the accepted are
    segmented, picks are assembled (shared by :func:`pick_particles` and :func:`recut`);
    strays and the matches a negative prompt claimed then leave the picks."""
    claimed = np.nan_to_num(table.columns.pop(CLAIMED, np.zeros(len(table)))) > 0
    kept = table.compete(s.config.nms_radius_factor)
    with timer.stage("segment_matches"):
        entries = segment_accepted(s, reports, table, kept)
    say("matches segmented")
    picks, entries, rows = assemble(s, entries, reports)
    gone = np.zeros(len(picks), bool)
    gone[rows >= 0] = claimed[rows[rows >= 0]]
    with timer.stage("orient"):
        mass = _per_pick(table.columns.get("mass"), rows)
        oriented = orient_picks(s, reports, picks, rows, mass, gone)
        picks.angles, averages, agreement, stray, turns = oriented
    column = np.full(len(table), np.nan)
    column[rows[rows >= 0]] = agreement[rows >= 0]
    table.columns["average_correlation"] = column
    table.status[rows[stray & ~gone]] = Status.STRAY
    table.status[claimed] = Status.NEGATIVE
    keep = ~(stray | gone)
    picks, rows, turns = without(picks, keep), rows[keep], turns[keep]
    entries = [e for e, k in zip(entries, keep) if k]
    with timer.stage("mask_envelope"):
        masks = class_shaped_masks(s, reports, picks, entries, turns, averages)
        class_ids = {r.name: r.class_id for r in reports}
        semantic, instances = paint(s.prepared.shape, masks, picks.class_name, class_ids)
    say("picks oriented")
    for rep in reports:
        rep.n_accepted = int(np.sum(picks.class_name == rep.name))
        rep.n_strays = int(np.sum(table.status[table.class_name == rep.name] == Status.STRAY))
    if not len(picks) and s.own:
        raise CryosamError("nothing was picked; check the prompts, --diameter and --invert")
    cands = Picks(
        table.zyx,
        score=table.score,
        class_name=table.class_name,
        instance=np.zeros(len(table), int),
    )
    status = np.array([str(st) for st in table.status], dtype=object)
    return PickOutcome(
        picks,
        cands,
        status,
        semantic,
        instances,
        class_ids,
        reports,
        s.seg,
        s.inverted,
        {**timer.seconds, "total": timer.total()},
        {r.name: r.query for r in reports},
        table.columns,
        averages,
        s.prompts,
        s.config.missing_wedge,
        s.prepared.balanced,
    )


def _per_pick(column, rows: np.ndarray) -> np.ndarray | None:
    """A candidate ``column`` read at each pick's table row (NaN for a prompt, ``rows`` -1)."""
    if column is None:
        return None
    out = np.full(len(rows), np.nan)
    out[rows >= 0] = np.asarray(column, np.float64)[rows[rows >= 0]]
    return out


def orient_picks(
    s: Setup, reports: list[ClassReport], picks: Picks, rows: np.ndarray, mass, gone: np.ndarray
):
    """Stage 10: each pick's RELION ``(rot, tilt, psi)`` relative to its class's reference
    (:mod:`cryosam.method.orient`; the verified reference, else one made from the class's
    prompts; NaN for a class with neither), and each class's aligned average of its picks
    (at the tomogram's sampling, a box of ``2 verify_box_factor`` diameters), each pick's
    correlation with the average of the others of its class (inside its diameter), and
    which matches (``rows`` >= 0: not prompts; half a diameter or more inside the volume) are
    :func:`~cryosam.method.cut.strays` (``pick_strays``, not under a user's cut, with each
    match's ``mass`` when known; the average is then of the others):
    ``(angles, {class: average}, correlations, strays, rotations)`` (``rotations``: each
    pick's ``M``, NaN where it has none); the average leaves out the picks
    ``gone`` (a mask: a negative prompt's, judged for strays as any). A symmetric class
    without a map has its frame turned so its axes lie where the group has them
    (:func:`~cryosam.method.orient.symmetry_frame` on the average; the class reference
    turned with it)."""
    angles = np.full((len(picks), 3), np.nan)
    turns = np.full((len(picks), 3, 3), np.nan)
    agreement = np.full(len(picks), np.nan)
    stray = np.zeros(len(picks), bool)
    averages = {}
    for rep in reports:
        mine = np.flatnonzero(picks.class_name == rep.name)
        ref = rep.query.reference if rep.query is not None else None
        dv = s.diameters_px[rep.name]
        if rep.name in s.maps:  # the known structure itself: angles in its frame
            ref = class_map_reference(s, rep.name)
            _check_map_symmetry(s, rep.name)
        elif ref is None and rep.name in s.own:
            points, masks = s.prompted(rep.name)
            ref = prompt_reference(s.prepared, dv, s.config, points, masks, False)
        if ref is None or not len(mine):
            continue
        M, mean, corr = _oriented(s, picks.zyx[mine], ref, dv)
        group = s.symmetry.get(rep.name, "C1")
        ops = symmetry_group(group)
        if len(ops) > 1 and rep.name not in s.maps:  # a click's frame: find the axes
            best = _best_average(s, picks.zyx[mine], M, corr, mean.shape[0])
            Q = symmetry_frame(best, group, dv / 2)
            M, mean = M @ Q, rotate_box(mean, Q)
            if rep.query is not None and rep.query.reference is not None:
                rep.query.reference = turned_reference(rep.query.reference, Q, ops)
        M = canonical(M, ops)  # of the equivalent rotations, the one nearest the frame
        angles[mine], turns[mine] = relion_angles(M), M
        mean = symmetrize(mean, ops)
        agreement[mine] = average_correlations(s.prepared, picks.zyx[mine], M, mean, dv / 2)
        if s.config.pick_strays and rep.cut_method != CutRule.USER.value:  # a user's cut stands
            # a particle cut by the volume's border agrees less with any average: not judged
            inside = inside_by(picks.zyx[mine], dv / 2, s.prepared.shape)
            matches = mine[(rows[mine] >= 0) & inside]
            m = mass[matches] if mass is not None else None
            tol = s.config.verify_mass_tolerance
            stray[matches] = strays(picks.score[matches], agreement[matches], m, tol)
        drop = stray[mine] | gone[mine]
        if drop.any() and not drop.all():  # the average of the particles kept
            kept = ~drop
            mean = symmetrize(average(s.prepared, picks.zyx[mine][kept], M[kept], len(mean)), ops)
        averages[rep.name] = mean
    return angles, averages, agreement, stray, turns


def class_shaped_masks(s: Setup, reports, picks: Picks, entries, turns, averages) -> list:
    """Stage 11: each pick's mask, cut back to its class's envelope turned as the pick is
    (:mod:`cryosam.method.envelope`; ``mask_envelope``). A class averaged from fewer than
    :data:`~cryosam.method.envelope.ENVELOPE_MIN_PICKS` picks keeps its masks whole, and a
    mask that ran into its neighbours (``oversize``) is kept only when it is cut back."""
    masks = [None if e.oversize else e.mask for e in entries]
    if not s.config.mask_envelope:
        return masks
    for rep in reports:
        mine = np.flatnonzero(picks.class_name == rep.name)
        sizes = [masks[i].voxels for i in mine if masks[i] is not None and not masks[i].empty]
        if rep.name not in averages or len(mine) < ENVELOPE_MIN_PICKS or not sizes:
            continue
        voxels = s.config.mask_envelope_size * float(np.median(sizes))
        envelope = class_envelope(averages[rep.name], voxels)
        for i in mine:
            if entries[i].mask is not None:
                masks[i] = trim_mask(entries[i].mask, picks.zyx[i], turns[i], envelope)
    return masks


def without(picks: Picks, keep) -> Picks:
    """``picks`` without those not in ``keep`` (a mask), numbered again in order."""
    keep = np.asarray(keep, bool)
    picks = picks.select(keep)
    picks.instance = np.arange(1, int(keep.sum()) + 1)
    return picks


MAP_SYMMETRY_MIN = 0.5
"""A map given with a symmetry must be reproduced at least this well by the group's turns about
its own axes (the 20S proteasome's map of the dev data, its 7-fold axis not along z: 0.32 for
D7 about z, 0.65 once its axes are found; an asymmetric ribosome under C7: 0.24)."""


def _check_map_symmetry(s: Setup, cls: str) -> None:
    """Warn when the class's map is not symmetric about its z axis under its group."""
    group = s.symmetry.get(cls, "C1")
    ops = symmetry_group(group)
    if len(ops) < 2:
        return
    r = symmetry_agreement(s.maps[cls][0], ops)
    if r < MAP_SYMMETRY_MIN:
        s.seg.warnings.append(
            f"--symmetry {group}: the {cls} map is not {group}-symmetric about its z axis (its "
            f"turns reproduce it at r = {r:.2f}); the angles assume the n-fold axis along the "
            "map's z: check the map's frame, or leave --reference out and the axes are found "
            "from the picks"
        )


def _best_average(s: Setup, zyx, M, corr, size: int) -> np.ndarray:
    """The aligned average of the ``orient_average_best`` fraction of the picks that
    correlated best (at least three)."""
    n = max(3, int(np.ceil(s.config.orient_average_best * len(zyx))))
    best = np.argsort(-np.asarray(corr))[:n]
    return average(s.prepared, np.asarray(zyx, np.float64)[best], M[best], size)


def _oriented(s: Setup, zyx, ref, dv: float):
    """The picks' rotations against ``ref``, then ``orient_rounds`` times again against the
    aligned average of the best-correlating of them (:func:`_best_average`; the reference's
    frame): ``(M, average of all, each pick's correlation)``. The best, not all: in a crowded
    cell a third or more of the picks are look-alikes, whose blur flipped true particles in
    the next round (dev2 ribosome, one click: p90 error 82-89° from all, 17-19° from half)."""
    size = 2 * int(np.ceil(s.config.verify_box_factor * dv)) + 1
    M, corr = orient(s.prepared, zyx, ref, dv, s.config)
    for _ in range(s.config.orient_rounds if len(zyx) > 2 else 0):
        best = _best_average(s, zyx, M, corr, size)
        again = average_reference(best, ref, s.prepared, dv, s.config)
        M, corr = orient(s.prepared, zyx, again, dv, s.config)
    return M, average(s.prepared, zyx, M, size), corr


def turned_reference(ref: Reference, Q: np.ndarray, ops) -> Reference:
    """``ref`` sampled at ``Q x`` (its frame turned by ``Q^T``) and symmetrised by ``ops``."""
    turned = replace(ref, template=rotate_box(ref.template, Q), weight=rotate_box(ref.weight, Q))
    return symmetrized_reference(turned, ops)


def symmetrized_reference(ref: Reference, ops) -> Reference:
    """``ref`` with its template and soft mask averaged over the rotations ``ops``."""
    weight = np.clip(symmetrize(ref.weight, ops), 0.0, 1.0)
    return replace(ref, template=symmetrize(ref.template, ops), weight=weight)


REDECIDED = {
    Status.ACCEPTED, Status.BELOW_CUT, Status.SIZE_MISMATCH, Status.OTHER_CLASS, Status.STRAY,
}  # fmt: skip
"""The statuses a new cut decides again (the others came before the cut)."""


def recut(
    volume: np.ndarray,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config,
    table: Candidates,
    reports: list[ClassReport],
    cuts: dict[str, Cut],
    queries: dict[str, ClassQuery] | None = None,
    progress=None,
    voxel_size: float | None = None,
    reference_maps: dict[str, tuple[np.ndarray, float]] | None = None,
    symmetry: dict[str, str] | None = None,
) -> PickOutcome:
    """A finished pick with other cuts: ``table`` (every class's scored candidates, as
    ``candidates.csv`` holds them) is cut again for the classes in ``cuts``, the others keep
    their report's cut; then stages 7-9 run as in :func:`pick_particles`. Nothing before
    the cut is computed again, but the prompts are segmented again (stage 1) and the newly
    accepted candidates segmented. ``queries``: the classes searched with another
    tomogram's query (``cryosam batch``); ``voxel_size``, ``reference_maps`` and ``symmetry``
    as for :func:`pick_particles`."""
    timer = Timer()
    say = progress or (lambda stage: None)
    s = setup(
        volume, prompts, diameters_px, config, queries, timer, voxel_size, say,
        reference_maps, symmetry,
    )  # fmt: skip
    say("prompts segmented")
    table.status = np.array(
        [Status.CANDIDATE if Status(st) in REDECIDED else Status(st) for st in table.status],
        dtype=object,
    )
    for rep in reports:
        if rep.name in cuts:
            rep.cut, rep.cut_method = cuts[rep.name].value, cuts[rep.name].how
        table.cut_at(rep.cut, table.class_name == rep.name)
    return finish(s, reports, table, timer, say)


def prompt_queries(
    volume,
    prompts,
    diameters_px,
    config: Config | None = None,
    cache: FeatureCache | None = None,
    input_sha256: str | None = None,
    voxel_size: float | None = None,
) -> dict[str, ClassQuery]:
    """Each prompted class's query, without searching the tomogram (for ``cryosam batch``:
    queries from prompted tomograms search the others). Features go through ``cache``, so a
    later :func:`pick_particles` on the same tomogram reuses them."""
    s = setup(volume, prompts, diameters_px, config or Config(), voxel_size=voxel_size)
    out = {}
    for cls in s.own:
        points, masks = s.prompted(cls)
        rep = ClassReport(cls, 0, s.diameters_px[cls], len(points))
        feats = class_features(s, cls, cache, input_sha256, rep)
        d = class_diameter(masks, s.diameters_px[cls], s.config.diameter_tolerance)
        out[cls] = own_query(feats, masks, list(points), d, s.inverted, s.encoder_id)
        if s.config.verify:
            out[cls].reference = prompt_reference(
                s.prepared, s.diameters_px[cls], s.config, points, masks
            )
    return out


__all__ = [
    "ClassQuery",
    "ClassReport",
    "CutRule",
    "PickOutcome",
    "pick_particles",
    "prompt_queries",
]
