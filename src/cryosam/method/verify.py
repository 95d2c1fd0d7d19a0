"""Shape verification: candidates re-scored by their correlation with the prompted particles.

Feature similarity (:mod:`cryosam.method.matching`) finds places that look like the prompt, but the
weight-free features are rotation-invariant summaries on a grid a few voxels coarse: a
look-alike of similar size and texture (a double ring beside a barrel) scores as high as a
true match, and a candidate's centre is ~d/3 off. This stage, cryosam's addition to the
CryoSAM method, checks every candidate against the prompted particles themselves:

1. **Reference.** The prompted subvolumes, binned so the particle spans about
   ``bin_px`` voxels, averaged; a soft mask (the prompted masks, blurred) weights the
   voxels, so the correlation looks at the particle and not at its neighbours.
2. **Centring.** Each candidate moves to the best place, within 0.3 diameters, of its
   locally normalised correlation with the reference's rotational average (rotation-free:
   one small FFT per candidate).
3. **Score.** The maximum over rotations (``angle_step`` apart) and one-voxel shifts of the
   weighted Pearson correlation under the rotated soft mask, computed for all candidates
   with matrix products.
4. **Refinement.** The ``n_top`` best candidates are aligned (their best rotation and shift
   undone), averaged into the reference, and every candidate is scored again, so the noise
   of a single prompt averages out (as in subtomogram averaging).

Everything reads the volume one box at a time, so memory does not grow with the tomogram.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage
from scipy.spatial import cKDTree

from cryosam.config import Config
from cryosam.method.candidates import Status
from cryosam.method.cut import shape_cut
from cryosam.method.matching import nms
from cryosam.method.rotations import rotation_grid
from cryosam.volume.binning import block_mean, extract_boxes
from cryosam.volume.correlate import MaskedCorrelation, normalise_template

MASK_BLUR = 1.0
"""Gaussian blur (binned voxels) of a prompt's mask before it becomes the soft weight."""
MASK_GAIN = 1.5
"""The blurred mask is scaled by this (and clipped to 1), so the particle's interior weighs 1."""
CHUNK = 64
"""Candidates scored per matrix product."""


@dataclass
class Reference:
    """A class's reference for shape verification, at binned resolution.

    ``template`` and ``weight`` are ``(n, n, n)`` boxes of the volume binned by ``bin``;
    ``weight`` is the soft particle mask in [0, 1]; ``n_particles`` how many particles
    were averaged into it; ``typical`` the median score of its best matches where it was
    made (0 before any matching): elsewhere a match must reach ``verify_typical_fraction`` of
    it."""

    template: np.ndarray
    weight: np.ndarray
    bin: int
    n_particles: int = 1
    typical: float = 0.0

    def to_dict(self) -> dict:
        """JSON-able: the boxes as base64 float16 (for run.json and batch workers)."""
        return {
            "shape": list(self.template.shape),
            "bin": self.bin,
            "n_particles": self.n_particles,
            "typical": round(self.typical, 4),
            "template_f16": _encode(self.template),
            "weight_f16": _encode(self.weight),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Reference:
        shape = tuple(int(s) for s in d["shape"])
        return cls(
            _decode(d["template_f16"], shape),
            _decode(d["weight_f16"], shape),
            int(d["bin"]),
            int(d.get("n_particles", 1)),
            float(d.get("typical", 0.0)),
        )

    @staticmethod
    def pool(refs: list[Reference]) -> Reference | None:
        """One reference from several tomograms' (weighted by particles averaged);
        ``None`` when they do not share a box (other sizes or binning)."""
        refs = [r for r in refs if r is not None]
        if not refs or len({(r.template.shape, r.bin) for r in refs}) > 1:
            return None
        w = np.array([r.n_particles for r in refs], np.float64)
        avg = lambda xs: (np.stack(xs) * w[:, None, None, None]).sum(0) / w.sum()  # noqa: E731
        return Reference(
            avg([r.template for r in refs]).astype(np.float32),
            avg([r.weight for r in refs]).astype(np.float32),
            refs[0].bin,
            int(w.sum()),
            float(min(r.typical for r in refs)),
        )


def _encode(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f2").tobytes()).decode("ascii")


def _decode(text: str, shape) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(text), dtype="<f2")
    if a.size != int(np.prod(shape)):
        raise ValueError(f"reference of {a.size} values does not fill {tuple(shape)}")
    return a.reshape(shape).astype(np.float32)


def binning(diameter_px: float, bin_px: float) -> int:
    """Integer bin so the particle spans about ``bin_px`` voxels (at least 1)."""
    return max(1, int(np.floor(diameter_px / bin_px)))


def _rotate(box: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``box`` sampled at ``matrix @ (x - c) + c`` (linear interpolation)."""
    c = (np.asarray(box.shape, np.float64) - 1) / 2.0
    return ndimage.affine_transform(box, matrix, offset=c - matrix @ c, order=1)


def _fit_box(a: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or zero-pad a cube to ``n`` per side."""
    out = np.zeros((n,) * 3, np.float32)
    m = min(n, a.shape[0])
    lo_a, lo_o = (a.shape[0] - m) // 2, (n - m) // 2
    out[lo_o : lo_o + m, lo_o : lo_o + m, lo_o : lo_o + m] = a[
        lo_a : lo_a + m, lo_a : lo_a + m, lo_a : lo_a + m
    ]
    return out


def radial_average(box: np.ndarray) -> np.ndarray:
    """The box's rotational average about its centre."""
    c = (np.asarray(box.shape) - 1) / 2.0
    r = np.sqrt(sum((g - ci) ** 2 for g, ci in zip(np.indices(box.shape), c)))
    ri = np.round(r).astype(int).ravel()
    prof = np.bincount(ri, box.ravel()) / np.maximum(np.bincount(ri), 1)
    return prof[ri].reshape(box.shape).astype(np.float32)


class ShapeVerifier:
    """Scores places of a (prepared, bright-protein) volume against a :class:`Reference`.

    Args:
        volume: array-like ``(z, y, x)`` supporting slicing (a lazy view is fine).
        diameter_px: particle diameter in voxels.
        config: ``verify_angle_step`` (rotation sampling, degrees), ``verify_bin_px`` (the
            particle spans about this many voxels after binning), ``verify_box_factor``,
            ``verify_centring_radius`` and ``verify_shift`` (binned voxels searched around
            each centred candidate).
    """

    def __init__(self, volume, diameter_px: float, config: Config | None = None):
        config = config or Config()
        self.volume = volume
        self.bin = binning(diameter_px, config.verify_bin_px)
        self.d = diameter_px / self.bin
        self.half = int(np.ceil(config.verify_box_factor * self.d))
        self.n = 2 * self.half + 1
        g = np.indices((self.n,) * 3) - self.half
        self.sphere = np.sqrt((g**2).sum(0)) <= 0.5 * self.d + 0.5
        self.rotations = rotation_grid(config.verify_angle_step)
        self.matrices = self.rotations.as_matrix()
        self.shift = config.verify_shift
        s = 2 * self.shift + 1
        self.offsets = np.stack(np.unravel_index(np.arange(s**3), (s, s, s)), 1)
        self.centring_radius = config.verify_centring_radius
        self.chunk = CHUNK
        self._ref_id = None

    # --- references ---
    def fit(self, ref: Reference) -> Reference:
        """``ref`` resampled to this verifier's box when it was made for another size."""
        if ref.template.shape == (self.n,) * 3 and ref.bin == self.bin:
            return ref
        f = self.n / ref.template.shape[0]
        z = lambda a: _fit_box(ndimage.zoom(a, f, order=1), self.n)  # noqa: E731
        return Reference(
            z(ref.template), np.clip(z(ref.weight), 0, 1), self.bin, ref.n_particles, ref.typical
        )

    def reference(self, points, masks=None) -> Reference:
        """Reference from prompted particles. The first with a usable mask is the template
        (the box around its point; its mask, blurred, is the soft weight; the sphere of the
        diameter without a usable mask); the others are aligned to it (best rotation and
        shift) and averaged in, as particles in different orientations must be."""
        centres = np.asarray(points, np.float64).reshape(-1, 3)
        masks = list(masks) if masks is not None else [None] * len(centres)
        usable = [m is not None and not m.empty for m in masks]
        first = int(np.argmax(usable)) if any(usable) else 0
        template = extract_boxes(self.volume, centres[first : first + 1], self.n, self.bin)[0]
        m = masks[first]
        if usable[first]:
            box = np.zeros((self.n * self.bin,) * 3, np.float32)
            lo = np.round(centres[first]).astype(int) - (self.n * self.bin) // 2
            z = np.argwhere(m.mask) + np.asarray(m.offset) - lo
            inside = np.all((z >= 0) & (z < box.shape[0]), axis=1)
            box[tuple(z[inside].T)] = 1.0
            w = ndimage.gaussian_filter(block_mean(box, self.bin), MASK_BLUR)
            w = np.clip(MASK_GAIN * w / max(float(w.max()), 1e-6), 0.0, 1.0) * self.sphere
        else:
            w = self.sphere
        ref = Reference(template.astype(np.float32), w.astype(np.float32), self.bin, 1)
        rest = np.delete(centres, first, axis=0)
        if len(rest):
            scores, align = self.score(ref, rest)
            ref = self.refine(ref, rest, scores, align, len(rest))
        return ref

    def _prepare(self, ref: Reference) -> None:
        """Rotated, weighted, normalised templates (cached for the last reference)."""
        if self._ref_id is ref:
            return
        sel = self.sphere
        A, W = [], []
        for m in self.matrices:
            inv = m.T  # sample the reference at R^-1 x: the reference rotated by R
            t = _rotate(ref.template, inv)[sel]
            w = np.clip(_rotate(ref.weight, inv)[sel], 0.0, 1.0)
            tc = t - (w * t).sum() / max(w.sum(), 1e-6)
            a = w * tc
            A.append(a / np.sqrt(max(float((a * tc).sum()), 1e-12)))
            W.append(w)
        self.A = np.asarray(A, np.float32)
        self.W = np.asarray(W, np.float32)
        self.wsum = self.W.sum(1)
        self._ref_id = ref

    # --- centring ---
    def centre(self, ref: Reference, zyx) -> np.ndarray:
        """Each point moved to its best correlation with the reference's rotational
        average within ``verify_centring_radius`` diameters."""
        zyx = np.asarray(zyx, np.float64).reshape(-1, 3)
        out = zyx.copy()
        size = self.n + 2 * self._radius()
        for i0 in range(0, len(zyx), self.chunk):
            P = extract_boxes(self.volume, zyx[i0 : i0 + self.chunk], size, self.bin)
            out[i0 : i0 + len(P)] += self._centring_offsets(ref, P) * self.bin
        return np.clip(out, 0, np.asarray(self.volume.shape) - 1)

    def _radius(self) -> int:
        return max(1, int(np.ceil(self.centring_radius * self.d)))

    def _centring_offsets(self, ref: Reference, P: np.ndarray) -> np.ndarray:
        """Best offsets (binned voxels) of ``(n + 2R)``-sided boxes, see :meth:`centre`."""
        R = self._radius()
        rad = radial_average(ref.template)
        t = normalise_template(rad, self.sphere)
        w = 2 * R + 1
        g = np.indices((w,) * 3) - R
        outside = (g**2).sum(0) > R * R
        L = fft.next_fast_len(P.shape[1], real=True)
        crop = (slice(None),) + (slice(0, w),) * 3  # circular correlation, valid part
        ncc = MaskedCorrelation(P, self.sphere.astype(np.float32), (L,) * 3, crop)(t)
        ncc[:, outside] = -np.inf
        k = ncc.reshape(len(P), -1).argmax(1)
        return np.stack(np.unravel_index(k, (w,) * 3), 1) - R

    # --- scoring ---
    def score(self, ref: Reference, zyx) -> tuple[np.ndarray, np.ndarray]:
        """Correlation of each point with the reference: ``(scores, align)`` where ``align``
        holds each point's best ``(rotation index, shift index)``."""
        zyx = np.asarray(zyx, np.float64).reshape(-1, 3)
        scores = np.full(len(zyx), -1.0)
        align = np.zeros((len(zyx), 2), int)
        size = self.n + 2 * self.shift
        for i0 in range(0, len(zyx), self.chunk):
            P = extract_boxes(self.volume, zyx[i0 : i0 + self.chunk], size, self.bin)
            scores[i0 : i0 + len(P)], align[i0 : i0 + len(P)] = self._score_boxes(ref, P)
        return scores, align

    def _score_boxes(self, ref: Reference, P: np.ndarray):
        """Best correlation of each ``(n + 2 shift)``-sided box with the reference."""
        self._prepare(ref)
        n, sel = self.n, self.sphere
        scores = np.full(len(P), -1.0)
        align = np.zeros((len(P), 2), int)
        grid = (len(self.A), len(self.offsets))
        for i0 in range(0, len(P), self.chunk):
            B = P[i0 : i0 + self.chunk]
            V = np.stack(
                [B[:, a : a + n, b : b + n, c : c + n][:, sel] for a, b, c in self.offsets], axis=1
            )
            flat = V.reshape(-1, V.shape[-1]).T  # voxels x (boxes * shifts)
            num = self.A @ flat
            s1 = self.W @ flat
            s2 = self.W @ (flat * flat)
            var = np.maximum(s2 - s1 * s1 / self.wsum[:, None], 1e-9)
            r = (num / np.sqrt(var)).reshape(grid[0], len(B), grid[1])
            r = r.transpose(1, 0, 2).reshape(len(B), -1)
            k = r.argmax(1)
            scores[i0 : i0 + len(B)] = r[np.arange(len(B)), k]
            align[i0 : i0 + len(B)] = np.stack(np.unravel_index(k, grid), 1)
        return scores, align

    def refine(self, ref: Reference, zyx, scores, align, n_top: int) -> Reference:
        """``ref`` averaged with the ``n_top`` best points, each aligned to it."""
        order = np.argsort(-np.asarray(scores))[:n_top]
        if not len(order):
            return ref
        n, s = self.n, self.shift
        P = extract_boxes(self.volume, np.asarray(zyx)[order], n + 2 * s, self.bin)
        boxes = []
        for box, (r, k) in zip(P, np.asarray(align)[order]):
            a, b, c = self.offsets[k]
            boxes.append(_rotate(box[a : a + n, b : b + n, c : c + n], self.matrices[r]))
        total = ref.n_particles + len(boxes)
        template = (ref.template * ref.n_particles + np.sum(boxes, 0)) / total
        return Reference(template.astype(np.float32), ref.weight, ref.bin, total, ref.typical)


def prompt_reference(volume, diameter_px: float, config: Config, points, masks) -> Reference:
    """A class's reference from its prompts (see :meth:`ShapeVerifier.reference`)."""
    return ShapeVerifier(volume, diameter_px, config).reference(points, masks)


@dataclass
class Verified:
    """One class's candidates after shape verification.

    ``zyx`` are the centred positions, ``score`` the correlation with the refined
    ``reference``, ``status`` updated (``PROMPT``, ``DUPLICATE``, ``NEGATIVE``); ``floor``
    is the least a match must score (``verify_typical_fraction`` of the reference's typical
    score: a tomogram searched with another one's reference must reach that fraction of
    what the prompted tomogram's matches did)."""

    zyx: np.ndarray
    score: np.ndarray
    status: np.ndarray
    reference: Reference
    floor: float


def verify_candidates(
    volume,
    zyx,
    status,
    diameter_px: float,
    config: Config,
    reference: Reference,
    prompts=(),
    negatives=(),
) -> Verified:
    """Shape verification of one class's candidates (see the module docstring).

    Args:
        volume: the prepared volume (bright protein).
        zyx, status: candidates and their :class:`~cryosam.method.candidates.Status` so far.
        reference: the class's reference (from its prompts or another tomogram).
        prompts: the class's prompt centres (a centred candidate on one becomes ``PROMPT``).
        negatives: ``zyx`` of negative prompts: a candidate that correlates better with one
            of them than with the reference becomes ``NEGATIVE``.
    """
    v = ShapeVerifier(volume, diameter_px, config)
    reference = v.fit(reference)
    zc = v.centre(reference, zyx)
    s0, a0 = v.score(reference, zc)
    status = np.array(status, dtype=object)
    radius = config.nms_radius_factor * diameter_px
    if len(prompts) and len(zc):
        near = cKDTree(np.asarray(prompts, np.float64)).query(zc)[0] < radius
        status[near & (status == Status.CANDIDATE)] = Status.PROMPT
    kept = np.zeros(len(zc), bool)
    kept[nms(zc, s0, radius, len(zc))] = True
    status[~kept & (status == Status.CANDIDATE)] = Status.DUPLICATE
    refined, scores, floor = _refine(v, reference, zc, s0, a0, status == Status.CANDIDATE, config)
    if len(negatives):
        _judge_negatives(v, refined, zc, status, negatives, config.verify_top)
    return Verified(zc, scores, status, refined, floor)


def _refine(v: ShapeVerifier, reference: Reference, zc, s0, a0, free, config: Config):
    """The reference averaged with the matches above a first cut (at most ``verify_top``), and
    every candidate scored again: ``(refined, scores, floor)``."""
    fraction = config.verify_typical_fraction
    floor = fraction * reference.typical
    if not config.verify_top or not free.any():
        return reference, s0, floor
    # only matches above the first cut join the reference: in a tomogram with few true
    # particles, the best 20 would include look-alikes and drag the reference to them
    good = free & (s0 >= shape_cut(s0[free], floor).value)
    n_top = min(config.verify_top, int(good.sum()))
    if not n_top:
        return reference, s0, floor
    refined = v.refine(reference, zc[good], s0[good], a0[good], n_top)
    scores, _ = v.score(refined, zc)
    best = np.argsort(-np.where(good, scores, -np.inf))[:n_top]
    # a reference from another tomogram keeps the level its own matches reached
    refined.typical = reference.typical or float(np.median(scores[best]))
    return refined, scores, fraction * refined.typical


def _judge_negatives(v: ShapeVerifier, refined: Reference, zc, status, negatives, top: int):
    """Candidates that resemble a negative prompt more than the class become ``NEGATIVE``.

    Negatives compete like with like: each negative box is refined, as the class's reference
    was, with the candidates that resemble it more than the class, and the two references are
    compared under the same sphere (a smaller mask or fewer averaged particles must not
    decide)."""
    sphere = v.sphere.astype(np.float32)
    pos, _ = v.score(Reference(refined.template, sphere, v.bin), zc)
    for p in negatives:
        nref = Reference(v.reference([p]).template, sphere, v.bin)
        neg, align = v.score(nref, zc)
        lean = (status == Status.CANDIDATE) & (neg > pos)
        if top and lean.any():
            nref = v.refine(nref, zc[lean], neg[lean], align[lean], min(top, int(lean.sum())))
            neg, _ = v.score(nref, zc)
        status[(status == Status.CANDIDATE) & (neg > pos)] = Status.NEGATIVE
