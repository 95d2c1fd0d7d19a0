"""Prompts -> every similar particle: queries, hierarchical matching, cut, masks, picks.

1. The prompts are segmented in 3D (cross-plane self-prompting); each class's
   size comes from its prompted masks (within +-30 % of ``--diameter``).
2. Tomogram features are computed per class size (weight-free bank or DINOv2 tri-view).
3. A class's query is the centre-weighted masked average of the features over its
   prompted masks; negative prompts give negative queries.
4. Hierarchical matching and 3D NMS give at most ``top_k`` candidates per class (more
   when the tomogram could hold more particles than that);
   the query is then averaged with its best matches and matched again (query
   expansion, our addition: one noisy prompt becomes a cleaner query);
   a candidate closer to a negative query than to its class's query is rejected,
   and classes compete for a particle.
5. Shape verification (our addition, :mod:`cryosam.verify`, on by default): every
   candidate is re-centred and scored by its correlation with a reference built from the
   prompted particles (and then from its best matches), over rotations and under the
   prompted masks; candidates that land on the same particle are merged.
6. Each class gets an automatic cut from its own candidates' score distribution (on
   verification scores: the larger of Otsu's threshold and the histogram's valley; without
   verification: Otsu's threshold on -log(1 - similarity)), so no threshold is carried
   between tomograms; every candidate and its score is kept for the user.
7. Only accepted candidates are segmented; the mask centroid is the pick centre. A
   match whose mask volume is off the prompted masks' by more than ``size_tolerance``
   (either way) is dropped as ``size_mismatch`` (the mask confirms it is a whole particle);
   a verified match whose mask is too large (run into its neighbours) keeps its pick
   without the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.filters import threshold_otsu

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.features import FeatureVolume
from cryosam.io.picks import Picks
from cryosam.io.prompts import Prompt, validate_prompts
from cryosam.matching import find_peaks, hierarchical_match, naive_match, similarity
from cryosam.models import build_encoder, build_segmenter
from cryosam.preprocess import prepare_volume
from cryosam.propagate import InstanceMask, propagate_instance
from cryosam.runinfo import Timer
from cryosam.segmentation import SegmentOutcome, label_dtype, segment_prompts
from cryosam.verify import Reference, prompt_reference, shape_cut, verify_candidates

SIZE_TOLERANCE = 0.3
"""A class's size from its prompted masks may differ this much from ``--diameter``."""
ONE_POPULATION = "background 99th percentile (the candidates form one population above it)"
""":func:`automatic_cut`'s method when the candidates are one population above the background."""


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
    comparisons: list[int] = field(default_factory=list)
    feature_cache: str = "off"
    verified: bool = False
    query: ClassQuery | None = field(default=None, repr=False)


@dataclass
class ClassQuery:
    """A class's query, to search other tomograms without prompts of their own.

    ``vector`` is in the feature space of one encoder (see ``encoder``) at the user's
    diameter; ``ref_voxels`` is the prompted masks' median volume (for the size check)."""

    vector: np.ndarray
    diameter_px: float
    ref_voxels: float
    n_prompts: int
    inverted: bool
    encoder: str = ""
    reference: Reference | None = None

    def to_dict(self) -> dict:
        return {"vector": [round(float(v), 6) for v in self.vector],
                "diameter_px": self.diameter_px, "ref_voxels": self.ref_voxels,
                "n_prompts": self.n_prompts, "inverted": self.inverted,
                "encoder": self.encoder,
                "reference": self.reference.to_dict() if self.reference else None}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> ClassQuery:
        ref = d.get("reference")
        return cls(np.asarray(d["vector"], dtype=np.float32), float(d["diameter_px"]),
                   float(d["ref_voxels"]), int(d["n_prompts"]), bool(d["inverted"]),
                   str(d.get("encoder", "")),
                   Reference.from_dict(ref) if ref else None)  # fmt: skip

    @staticmethod
    def pool(queries: list[ClassQuery]) -> ClassQuery:
        """One query from several tomograms' (weighted by their numbers of prompts)."""
        w = np.array([max(q.n_prompts, 1) for q in queries], dtype=np.float64)
        vec = (np.stack([q.vector for q in queries]) * w[:, None]).sum(0) / w.sum()
        encoders = {q.encoder for q in queries}
        if len(encoders) > 1:
            raise CryosamError(f"queries from different encoders cannot be pooled: {encoders}")
        return ClassQuery(
            vec.astype(np.float32),
            float(np.average([q.diameter_px for q in queries], weights=w)),
            float(np.median([q.ref_voxels for q in queries])),
            int(sum(q.n_prompts for q in queries)),
            bool(np.average([q.inverted for q in queries], weights=w) >= 0.5),
            encoders.pop(),
            Reference.pool([q.reference for q in queries])
            if all(q.reference for q in queries)
            else None,
        )


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


def class_diameter(masks: list[InstanceMask], user_px: float) -> float:
    """Particle size from prompted masks (largest box extent), kept within tolerance."""
    extents = [max(np.ptp(np.argwhere(m.mask), axis=0)) + 1 for m in masks if not m.empty]
    if not extents:
        return user_px
    est = float(np.median(extents))
    return float(np.clip(est, (1 - SIZE_TOLERANCE) * user_px, (1 + SIZE_TOLERANCE) * user_px))


def automatic_cut(scores: np.ndarray, floor: float, background: float | None = None):
    """Per-tomogram cut from the candidates' own score distribution, at least ``floor``.

    Similarities of true matches crowd just below 1, so Otsu's threshold is taken on
    ``-log(1 - s)``, which spreads that end; the cut is mapped back to a similarity.
    Otsu splits candidates into two groups even when they are one: in a large tomogram
    rich in the target, nearly every candidate is a true match and Otsu would halve them.
    So when the lower group's median still scores above ``background`` (the 99th
    percentile of the query's similarity to random places of the tomogram, see
    :func:`background_level`), the candidates are one population above the background and
    the cut is ``background`` instead. Returns ``(cut, how)``."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 5 or float(np.ptp(scores)) == 0.0:
        return floor, "tau_sim (too few candidates for a distribution)"
    spread = -np.log(np.clip(1.0 - scores, 1e-6, None))
    cut = 1.0 - float(np.exp(-threshold_otsu(spread)))
    lower = scores[scores < cut]
    if background is not None and len(lower) and float(np.median(lower)) >= background:
        return max(background, floor), ONE_POPULATION
    return max(cut, floor), "otsu on -log(1 - score) of the candidates"


def background_level(feats: FeatureVolume, query: np.ndarray, seed: int = 0,
                     n: int = 20000, q: float = 0.99) -> float:  # fmt: skip
    """The ``q`` quantile of the query's similarity to ``n`` random feature cells."""
    flat = feats.data.reshape(feats.data.shape[0], -1)
    idx = np.random.default_rng(seed).integers(0, flat.shape[1], size=min(n, flat.shape[1]))
    return float(np.quantile(similarity(flat[:, idx], np.asarray(query)[None]), q))


def size_mismatch(mask: InstanceMask, ref: float, centre, d: float, shape, tol: float) -> bool:
    """A match's mask is more than ``tol`` times larger, or smaller, than the prompted masks'
    median volume ``ref``. Particles cut by the volume's border may be smaller."""
    if ref <= 0 or mask.empty:
        return False
    ratio = mask.voxels / ref
    c = np.asarray(centre)
    cut_by_border = bool(np.any(c < 0.5 * d) or np.any(c > np.asarray(shape) - 1 - 0.5 * d))
    return ratio > tol or (ratio < 1 / tol and not cut_by_border)


def compete(rows: list, nms_factor: float) -> list[int]:
    """Classes compete for a particle: accepted candidates best first; one that lies within
    the NMS radius of a kept candidate of another class becomes 'other_class'.
    Rows are ``(zyx, score, class, status, diameter)``; returns the kept row indices."""
    kept: list[int] = []
    for i in sorted(range(len(rows)), key=lambda i: -rows[i][1]):
        z, s_, cls, st, d = rows[i]
        if st != "accepted":
            continue
        for j in kept:
            zj, _, cj, _, dj = rows[j]
            if cj != cls and np.linalg.norm(zj - z) < nms_factor * min(d, dj):
                rows[i] = (z, s_, cls, "other_class", d)
                break
        else:
            kept.append(i)
    return kept


def deduplicate(entries: list, nms_factor: float, n_first: int = 0) -> list:
    """Drop picks whose centre lies within the NMS radius of a better one (any class).

    The first ``n_first`` entries (the prompts) always stay, in order; the others are
    taken best score first."""
    head, rest = entries[:n_first], sorted(entries[n_first:], key=lambda e: -e[1])
    kept = list(head)
    for e in rest:
        if all(np.linalg.norm(e[0] - k[0]) >= nms_factor * min(e[3], k[3]) for k in kept):
            kept.append(e)
    return kept


def effective_top_k(config: Config, shape, d: float) -> int:
    """``top_k``, raised to the number of diameter cubes that fill ``packing`` of the volume."""
    room = float(np.prod([int(s) for s in shape])) / max(d, 1.0) ** 3
    return max(config.top_k, int(config.packing * room))


def match_class(feats: FeatureVolume, query: np.ndarray, d: float, config: Config, shape,
                naive: bool = False):  # fmt: skip
    """Hierarchical matching, NMS and top-K, with ``config.query_expansion`` rounds in which
    the query is averaged with its ``expansion_size`` best matches (prompts count once
    each in the first query). Returns candidates, scores and comparisons per level."""
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
    return zyx, scores, comparisons


def _features(encoder, prepared, d, inverted, cache, input_sha256, rep) -> FeatureVolume:
    """Features of the prepared volume for size ``d``, through the cache when given."""
    if cache is None or input_sha256 is None:
        return encoder.encode(prepared, d)
    from cryosam.feature_cache import cache_key

    key = cache_key(input_sha256, encoder.signature(), d, inverted)
    info = {"input_sha256": input_sha256, "encoder": encoder.name}
    feats, hit = cache.get_or_compute(key, lambda: encoder.encode(prepared, d), info)
    rep.feature_cache = "hit" if hit else "miss"
    return feats


def _query(features: FeatureVolume, masks: list[InstanceMask], points) -> np.ndarray:
    vecs = []
    for m, p in zip(masks, points):
        if m is not None and not m.empty:
            vecs.append(features.pool(m.mask, m.offset))
        else:
            vecs.append(features.sample([p])[0])
    return np.mean(vecs, axis=0)


def _own_query(feats: FeatureVolume, masks, points, d: float, inverted: bool, encoder: str):
    """The :class:`ClassQuery` of one class from its prompted masks in this tomogram."""
    ref_voxels = float(np.median([m.voxels for m in masks if not m.empty] or [0]))
    q = _query(feats, masks, points).astype(np.float32)
    return ClassQuery(q, d, ref_voxels, len(masks), inverted, encoder)


def prompt_queries(
    volume: np.ndarray,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config | None = None,
    cache=None,
    input_sha256: str | None = None,
) -> dict[str, ClassQuery]:
    """Each prompted class's query, without searching the tomogram (for ``cryosam batch``:
    queries from prompted tomograms search the others). Features go through ``cache``, so a
    later :func:`pick_particles` on the same tomogram reuses them."""
    config = config or Config()
    validate_prompts(prompts, volume.shape)
    positives = [p for p in prompts if not p.negative]
    d_min = min(diameters_px[p.class_name] for p in positives)
    prepared, inverted = prepare_volume(
        volume, config.invert, d_min, np.array([p.zyx for p in positives])
    )
    encoder = build_encoder(config)
    seg = segment_prompts(volume, prompts, diameters_px, config, build_segmenter(config),
                          prepared=(prepared, inverted))  # fmt: skip
    out = {}
    for cls in dict.fromkeys(p.class_name for p in positives):
        idx = [i for i, p in enumerate(seg.prompts) if p.class_name == cls]
        masks = [seg.instances[i] for i in idx]
        rep = ClassReport(cls, 0, diameters_px[cls], len(idx))
        feats = _features(encoder, prepared, round(diameters_px[cls], 1), inverted, cache,
                          input_sha256, rep)  # fmt: skip
        d = class_diameter(masks, diameters_px[cls])
        points = [seg.prompts[i].zyx for i in idx]
        out[cls] = _own_query(feats, masks, points, d, inverted, encoder.name)
        if config.verify:
            out[cls].reference = prompt_reference(prepared, diameters_px[cls], config, points,
                                                  masks)  # fmt: skip
    return out


def pick_particles(
    volume: np.ndarray,
    prompts: list[Prompt],
    diameters_px: dict[str, float],
    config: Config | None = None,
    progress=None,
    naive: bool = False,
    cache=None,
    input_sha256: str | None = None,
    queries: dict[str, ClassQuery] | None = None,
) -> PickOutcome:
    """Find every particle like the prompted ones.

    Args:
        volume: tomogram ``(z, y, x)`` as read.
        prompts: positive (and negative) prompts in voxels.
        diameters_px: class -> approximate diameter in voxels.
        progress: ``progress(stage: str)`` between stages.
        naive: match every voxel at full resolution (for comparison only).
        cache: a :class:`~cryosam.feature_cache.FeatureCache`; with ``input_sha256`` the
            features are loaded from it when present and stored when computed.
        queries: class -> :class:`ClassQuery` from other tomograms, used for the classes
            that have no positive prompt here (``cryosam batch``). With queries, the
            prompt list may be empty and the result may hold no picks.
    """
    config = config or Config()
    timer = Timer()
    say = progress or (lambda stage: None)
    positives = [p for p in prompts if not p.negative]
    own = list(dict.fromkeys(p.class_name for p in positives))
    external = {c: q for c, q in (queries or {}).items() if c not in own}
    if prompts or not external:
        validate_prompts(prompts, volume.shape, require_positive=not external)
    classes = own + list(external)
    if not own and config.invert == "auto":  # the prompted tomograms decided the contrast
        votes = [q.inverted for q in external.values()]
        config = config.replace(invert="yes" if sum(votes) * 2 >= len(votes) else "no")
    diameters_px = {**{c: q.diameter_px for c, q in external.items()}, **diameters_px}
    with timer.stage("prepare"):
        d_min = min(diameters_px[c] for c in classes)
        prepared, inverted = prepare_volume(
            volume, config.invert, d_min, np.array([p.zyx for p in positives]) if own else None
        )
    segmenter = build_segmenter(config)
    encoder = build_encoder(config)
    with timer.stage("segment_prompts"):
        if own:
            seg = segment_prompts(volume, prompts, diameters_px, config, segmenter,
                                  prepared=(prepared, inverted))  # fmt: skip
        else:
            seg = SegmentOutcome([], [], np.zeros((1, 1, 1), np.uint8), inverted)
    say("prompts segmented")
    class_ids = {c: i + 1 for i, c in enumerate(classes)}
    reports, cand_rows = [], []
    features_by_size: dict[float, FeatureVolume] = {}
    for cls in classes:
        idx = [i for i, p in enumerate(seg.prompts) if p.class_name == cls]
        masks = [seg.instances[i] for i in idx]
        ext = external.get(cls)
        d = ext.diameter_px if ext else class_diameter(masks, diameters_px[cls])
        rep = ClassReport(cls, class_ids[cls], d, len(idx))
        with timer.stage("features"):
            # sized from the user's --diameter (not the prompted masks) so that a rerun
            # with other prompts finds the same features in the cache
            key = round(diameters_px[cls], 1)
            if key not in features_by_size:
                features_by_size[key] = _features(encoder, prepared, key, inverted, cache,
                                                  input_sha256, rep)  # fmt: skip
            feats = features_by_size[key]
        say(f"features for {cls}")
        with timer.stage("match"):
            rep.query = ext or _own_query(feats, masks, [seg.prompts[i].zyx for i in idx], d,
                                          inverted, encoder.name)  # fmt: skip
            q = rep.query.vector
            if len(q) != feats.data.shape[0]:
                raise CryosamError(
                    f"the {cls} query has {len(q)} features but this encoder makes "
                    f"{feats.data.shape[0]}; prompt with the same --encoder"
                )
            zyx, scores, comparisons = match_class(feats, q, d, config, volume.shape, naive)
            rep.comparisons = comparisons
            nms = config.nms_radius_factor * d
        negs = [p for p in prompts if p.negative and p.class_name in (None, cls)]
        reference = ext.reference if ext else None
        verify = config.verify and len(zyx) and (reference is not None or not ext)
        neg_score = np.full(len(zyx), -np.inf)
        if negs and len(zyx) and not verify:  # verified: negatives are judged by shape
            segmenter.set_volume(prepared, diameters_px[cls])  # same denoising as the prompts
            neg_masks = [
                propagate_instance(segmenter, volume.shape, p.zyx, d, config) for p in negs
            ]
            nq = np.stack([_query(feats, [m], [p.zyx]) for m, p in zip(neg_masks, negs)])
            neg_score = similarity(feats.sample(zyx).T, nq)
        prompted = np.array([seg.prompts[i].zyx for i in idx])
        near_prompt = np.zeros(len(zyx), bool)
        if len(zyx) and len(prompted):
            dist = np.linalg.norm(zyx[:, None] - prompted[None], axis=2)
            near_prompt = dist.min(axis=1) < nms
        status = np.where(neg_score > scores, "negative", "candidate").astype(object)
        status[near_prompt] = "prompt"
        free = status == "candidate"
        rep.background = background_level(feats, rep.query.vector, config.seed)
        rep.cut, rep.cut_method = automatic_cut(scores[free], config.tau_sim, rep.background)
        if verify:
            # in a large tomogram rich in the target nearly every candidate is a true match:
            # the features' background rule tells, and then no distribution is split
            one_population = rep.cut_method == ONE_POPULATION
            with timer.stage("verify"):
                # the user's size (as for the features): masks tend to overshoot it
                dv = diameters_px[cls]
                if reference is None:
                    reference = prompt_reference(prepared, dv, config, prompted, masks)
                zyx, scores, status, reference, floor = verify_candidates(
                    prepared, zyx, status, dv, config, reference, prompted,
                    [p.zyx for p in negs],
                )  # fmt: skip
                rep.query.reference = reference
                rep.verified = True
            free = status == "candidate"
            if one_population:
                rep.cut = floor
                rep.cut_method = ("floor (half the reference's typical score): the candidates "
                                  "form one population above the features' background")  # fmt: skip
            else:
                rep.cut, rep.cut_method = shape_cut(scores[free], floor)
        status[free & (scores >= rep.cut)] = "accepted"
        status[free & (scores < rep.cut)] = "below_cut"
        rep.n_candidates = len(zyx)
        for z, s_, st in zip(zyx, scores, status):
            cand_rows.append((z, float(s_), cls, st, d))
        reports.append(rep)
    say("matched")
    kept = compete(cand_rows, config.nms_radius_factor)
    size = {r.name: r.diameter_px for r in reports}
    entries = [  # (centre, score, class, diameter, mask): prompts first
        (m.centroid(), 1.0, p.class_name, size[p.class_name], m)
        for p, m in zip(seg.prompts, seg.instances)
    ]
    with timer.stage("segment_matches"):
        for rep in reports:
            # in z order: the segmenter denoises lazily in z-slabs and keeps the last few
            mine = sorted((i for i in kept if cand_rows[i][2] == rep.name),
                          key=lambda i: cand_rows[i][0][0])  # fmt: skip
            if mine:
                # the user's size, as for the prompts: the denoised volume is reused
                segmenter.set_volume(prepared, diameters_px[rep.name])
            ref = rep.query.ref_voxels
            for i in mine:
                z, s_, cls, _, d = cand_rows[i]
                m = propagate_instance(segmenter, volume.shape, z, d, config)
                if size_mismatch(m, ref, z, d, volume.shape, config.size_tolerance):
                    if rep.verified and m.voxels > ref:
                        # a verified match whose mask ran into its neighbours: its shape score
                        # vouches for the pick, not for the mask
                        entries.append((z, s_, cls, d, None))
                        continue
                    cand_rows[i] = (z, s_, cls, "size_mismatch", d)
                    continue
                centre = m.centroid() if not m.empty else z
                if np.linalg.norm(centre - z) > 0.5 * d:  # the mask ran off: trust the peak
                    centre, m = z, None
                entries.append((centre, s_, cls, d, m))
    say("matches segmented")
    entries = deduplicate(entries, config.nms_radius_factor, n_first=len(seg.prompts))
    instances = np.zeros(volume.shape, dtype=label_dtype(len(entries) + 1))
    semantic = np.zeros(volume.shape, dtype=np.uint8)
    for k, (_, _, cls, _, m) in enumerate(entries, start=1):
        if m is not None and not m.empty:
            m.paste(instances, k)
            view = semantic[m.box()]
            view[instances[m.box()] == k] = class_ids[cls]
    pick_rows = [(c, s_, cls, k) for k, (c, s_, cls, _, _) in enumerate(entries, start=1)]
    for rep in reports:
        rep.n_accepted = sum(1 for r in pick_rows if r[2] == rep.name)
    if not pick_rows and own:
        raise CryosamError("nothing was picked; check the prompts, --diameter and --invert")
    picks = Picks(
        np.array([r[0] for r in pick_rows]) if pick_rows else np.zeros((0, 3)),
        score=[r[1] for r in pick_rows],
        class_name=[r[2] for r in pick_rows],
        instance=[r[3] for r in pick_rows],
    )
    cands = Picks(
        np.array([r[0] for r in cand_rows]) if cand_rows else np.zeros((0, 3)),
        score=[r[1] for r in cand_rows],
        class_name=[r[2] for r in cand_rows],
        instance=np.zeros(len(cand_rows), int),
    )
    status = np.array([r[3] for r in cand_rows], dtype=object)
    timings = {**timer.seconds, "total": timer.total()}
    return PickOutcome(picks, cands, status, semantic, instances, class_ids, reports, seg,
                       inverted, timings, {r.name: r.query for r in reports})  # fmt: skip
