"""Shape verification: candidates re-scored by their correlation with the prompted particles.

Feature similarity (:mod:`cryosam.method.matching`) finds places that look like the prompt, but the
weight-free features are rotation-invariant summaries on a grid a few voxels coarse: a
look-alike of similar size and texture (a ring beside a solid particle, a double ring beside a
barrel) scores as high as a true match, and a candidate's centre is several voxels off. This
stage, cryosam's addition to the CryoSAM method, checks every candidate against the prompted
particles themselves:

1. **Reference.** The first prompted subvolume (centred on its mask), binned so the particle
   spans about ``verify_bin_px`` voxels; a soft mask (the prompted mask, blurred) weights the
   voxels, so the correlation looks at the particle and not at its neighbours. A particle the
   integer bin would leave unbinned at more than :data:`UNBINNED_MAX` voxels across is
   verified on a Fourier-resampled copy of the volume instead (:func:`finer_grid`). Further prompts
   of the class are known positives, not averaged in: aligned to one noisy particle they blur
   it, while the bootstrap below aligns matches to an ever better average.
2. **Score.** The maximum over rotations (``verify_angle_step`` apart) and shifts of
   ``verify_shift`` binned voxels of the weighted Pearson correlation under the rotated soft
   mask, computed for all candidates with matrix products.
3. **Centring.** Each candidate climbs to its best shift, ``verify_climb`` times, from where
   matching put it (the rotation search itself says where the particle's centre is). A climb
   can stop on a local maximum a third of a diameter off (dev1's ribosomes, one click: 13 of
   95 stayed 7-12 voxels off, scored like look-alikes and were cut), so the last round also
   climbs from the centre of the particle-sized blob nearest the start (the peak of the
   Laplacian of Gaussian at the diameter's scale within :data:`BLOB_REACH` diameters,
   :func:`~cryosam.method.centre.blob_centres`) and keeps whichever place correlates better
   (``verify_from_blobs``, off by default: on the real tomogram it cut 465 picks to 36). By
   default only the candidates the cut rejected climb again from their blob centre, after
   the cut, which is not found again (:func:`rescue_from_blobs`,
   ``verify_rescue_from_blobs``).
4. **Refinement.** In each of ``verify_rounds`` the best candidates (10, 20, 40) are aligned
   (their best rotation and shift undone) and averaged into the reference, which scores every
   candidate again: the noise of a single prompt averages out, as in subtomogram averaging,
   and growing the set slowly keeps early look-alikes from dragging the reference to them.
5. **Ranking score.** The correlation plus half the feature similarity, both in units of their
   spread (:func:`combined_score`): shape and size-and-texture vote together; then lowered
   for a candidate whose mass (integrated density over its local background) is off the
   best matches' by more than ``verify_mass_tolerance`` (:func:`mass_adjusted`): Pearson
   correlation cannot tell a ribosome from its large subunit. Where a reference drifted and
   was refined again from the matches as dense as the click, and the best matches' mass
   window does not hold the click's, the window is measured on those dense matches
   (:func:`_holds_click`): a class rare among lighter look-alikes.

Everything reads the volume one box at a time, so memory does not grow with the tomogram.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.stats import median_abs_deviation

from cryosam.config import Config
from cryosam.method.candidates import Status
from cryosam.method.centre import BALL_SIGMA, blob_centres
from cryosam.method.cut import class_mass, confident_cut, mass_window
from cryosam.method.matching import nms
from cryosam.method.rotations import rotation_grid
from cryosam.volume.binning import block_mean, extract_boxes
from cryosam.volume.resample import fourier_resample, resample_map
from cryosam.volume.wedge import PAD, wedge_to_mind

BLOB_REACH = 0.4
"""How far (diameters) a candidate's blob centre may lie from where matching put it."""
MASK_BLUR = 1.0
"""Gaussian blur (binned voxels) of a prompt's mask before it becomes the soft weight."""
MASK_GAIN = 1.5
"""The blurred mask is scaled by this (and clipped to 1), so the particle's interior weighs 1."""
CHUNK = 64
"""Candidates scored per matrix product."""
COARSE_STEP = 1.5
"""Climbing searches rotations this many times coarser than ``verify_angle_step``."""
MASS_BANDS = ((-1.0, 1.0), (1.15, 1.5))
"""A particle's mass: its mean within its radius less its median 1.15-1.5 radii out (radii)."""
DRIFT_MIN = 0.5
"""A reference refined from its matches that keeps less than this fraction of the clicked
particle's contrast (:meth:`ShapeVerifier.box_contrast`) has drifted to what lies between
particles. Over the 30 single clicks of the dev tomograms the kept fraction was 0.33-0.47 on
the three that failed this way (dev3 proteasome click 1, F1 0.043; dev3 ribosome clicks 2
and 3, 0.395 and 0.463) and at least 0.60 on every other (README, Benchmarks). The same
fraction bounds the mass of the refined reference's best matches against the click's
(:func:`_lighter_than_click`): 0.41 and 0.48 on the two dev1-in-clutter ribosome clicks whose
reference drifted to the clutter with its contrast kept (0.68, 0.76; the 40 best by
correlation), at least 0.54 on every click of the dev tomograms whose reference did not drift
(the 40 best above the first cut, as counted now)."""


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
    """Integer bin so the particle spans about ``bin_px`` voxels (at least 1): the nearest."""
    return max(1, int(np.floor(diameter_px / bin_px + 0.5)))


UNBINNED_MAX = 16.0
"""A particle the integer bin would verify unbinned at more voxels across than this is
verified on a finer copy instead (:func:`finer_grid`): unbinned, the crowded dev ribosomes
resampled to 14.3 Å (17.5 voxels) fell from F1 0.615 / 0.628 at 10 Å to 0.335 / 0.393, under
the blob picker, and gave 0.546 / 0.645 from the same data on the 10 Å grid (README,
Benchmarks: "Coarser voxels"); the proteasome at 16 voxels unbinned does as well as anywhere."""


@dataclass
class FinerGrid:
    """The grid verification reads: a Fourier-resampled copy of the volume
    (:func:`finer_grid`), or the volume itself (``factors`` of 1); ``factors`` are its
    voxels per original voxel along each axis."""

    volume: np.ndarray
    factors: np.ndarray
    reference: Reference | None = None
    """The class's reference as verification left it, on this grid."""

    @property
    def scale(self) -> float:
        return float(np.mean(self.factors))

    def fine(self, zyx) -> np.ndarray:
        """Original-grid points on this grid."""
        return np.asarray(zyx, np.float64).reshape(-1, 3) * self.factors

    def native(self, zyx) -> np.ndarray:
        """This grid's points on the original grid."""
        return np.asarray(zyx, np.float64).reshape(-1, 3) / self.factors


def finer_grid(volume, diameter_px: float, bin_px: float) -> FinerGrid | None:
    """``None`` where the integer bin suits the class; else (it would be compared unbinned at
    more than :data:`UNBINNED_MAX` voxels across, a sampling whose boxes hold mostly noise)
    the volume Fourier-resampled so the particle spans ``2 bin_px`` voxels, which the
    verifier then bins by 2, as it bins a particle of that size at any voxel size. The copy
    holds every frequency of the original (README, Benchmarks: "Coarser voxels") and is
    ``(2 bin_px / d)**3`` (2.4-3.4) times the volume's memory. A particle binned by 2 to
    9-9.6 voxels across (18-19 voxels) is left binned: on a finer copy at 13.3 Å the crowded
    dev ribosomes' medians rose (0.568 / 0.588 -> 0.607 / 0.650), but the sparse one's fell
    (0.967 -> 0.950) and dev3's worst click with it (0.392 -> 0.188)."""
    if binning(diameter_px, bin_px) > 1 or diameter_px <= UNBINNED_MAX:
        return None
    f = 2.0 * bin_px / diameter_px
    shape = tuple(max(1, int(round(n * f))) for n in volume.shape)
    factors = np.asarray(shape, np.float64) / np.asarray(volume.shape, np.float64)
    return FinerGrid(fourier_resample(volume, shape), factors)


def rotate_box(box: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``box`` sampled at ``matrix @ (x - c) + c`` (linear interpolation)."""
    c = (np.asarray(box.shape, np.float64) - 1) / 2.0
    return ndimage.affine_transform(box, matrix, offset=c - matrix @ c, order=1)


def fit_box(a: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or zero-pad a 3D box (any shape) to a cube of ``n`` per side."""
    out = np.zeros((n,) * 3, np.float32)
    m = [min(n, s) for s in a.shape]
    src = tuple(slice((s - k) // 2, (s - k) // 2 + k) for s, k in zip(a.shape, m))
    dst = tuple(slice((n - k) // 2, (n - k) // 2 + k) for k in m)
    out[dst] = a[src]
    return out


class ShapeVerifier:
    """Scores places of a (prepared, bright-protein) volume against a :class:`Reference`.

    Args:
        volume: array-like ``(z, y, x)`` supporting slicing (a lazy view is fine).
        diameter_px: particle diameter in voxels.
        config: ``verify_angle_step`` (rotation sampling, degrees), ``verify_bin_px`` (the
            particle spans about this many voxels after binning), ``verify_box_factor``,
            and ``verify_shift`` (binned voxels searched around each candidate).
    """

    def __init__(
        self,
        volume,
        diameter_px: float,
        config: Config | None = None,
        rotations: np.ndarray | None = None,
        shift: int | None = None,
        restrict: bool = True,
    ):
        config = config or Config()
        self.volume = volume
        # the turned references lose what the tilt series could not measure (``restrict``:
        # boxes in the tomogram's frame; the orientation's local search turns the boxes)
        self.wedge = wedge_to_mind(config.missing_wedge, volume) if restrict else None
        self._sampled = None
        self.bin = binning(diameter_px, config.verify_bin_px)
        self.d = diameter_px / self.bin
        self.half = int(np.ceil(config.verify_box_factor * self.d))
        self.n = 2 * self.half + 1
        g = np.indices((self.n,) * 3) - self.half
        # the mask's reach: past the typed radius by ``verify_mask_margin`` diameters
        reach = 0.5 * self.d * (1.0 + config.verify_mask_margin)
        self.sphere = np.sqrt((g**2).sum(0)) <= reach + 0.5
        # ``rotations`` (K, 3, 3) replaces the grid: the orientation search's own sets
        self.matrices = (
            rotation_grid(config.verify_angle_step, config.verify_all_rotations).as_matrix()
            if rotations is None
            else rotations
        )
        # climbing only needs the shift: a coarser rotation set finds it at a third of the cost
        self.coarse = rotation_grid(
            COARSE_STEP * config.verify_angle_step, config.verify_all_rotations
        ).as_matrix()
        self.shift = config.verify_shift if shift is None else shift
        s = 2 * self.shift + 1
        self.offsets = np.stack(np.unravel_index(np.arange(s**3), (s, s, s)), 1)
        self.chunk = CHUNK
        self._prepared: dict = {}
        # flat indices, in an (n + 2 shift)-sided box, of the sphere's voxels at each shift
        m = self.n + 2 * self.shift
        inner = np.ravel_multi_index(tuple(np.nonzero(self.sphere)), (m, m, m))
        self._gather = inner[None, :] + np.ravel_multi_index(self.offsets.T, (m, m, m))[:, None]

    # --- references ---
    def fit(self, ref: Reference) -> Reference:
        """``ref`` resampled to this verifier's box when it was made for another size."""
        if ref.template.shape == (self.n,) * 3 and ref.bin == self.bin:
            return ref
        f = self.n / ref.template.shape[0]
        z = lambda a: fit_box(ndimage.zoom(a, f, order=1), self.n)  # noqa: E731
        return Reference(
            z(ref.template), np.clip(z(ref.weight), 0, 1), self.bin, ref.n_particles, ref.typical
        )

    def reference(self, points, masks=None, average: bool = True) -> Reference:
        """Reference from prompted particles. The first with a usable mask is the template
        (the box around its point; its mask, blurred, is the soft weight; the sphere of the
        diameter without a usable mask); with ``average`` the others are aligned to it (best
        rotation and shift) and averaged in, as particles in different orientations must be."""
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
        if len(rest) and average:
            scores, align = self.score(ref, rest)
            ref = self.refine(ref, rest, scores, align, len(rest))
        return ref

    def _prepare(self, ref: Reference, coarse: bool = False):
        """Rotated, weighted, normalised templates ``(A, W, W sums)`` of the fine (or coarse)
        rotation set, cached for the last reference."""
        key = (id(ref), coarse)
        if key in self._prepared:
            return self._prepared[key]
        sel = self.sphere
        if self.wedge is not None and self._sampled is None:
            self._sampled = self.wedge.sampled(PAD * self.n)
        A, W, T = [], [], []
        for m in self.coarse if coarse else self.matrices:
            inv = m.T  # sample the reference at R^-1 x: the reference rotated by R
            t = rotate_box(ref.template, inv)
            if self.wedge is not None:
                t = self.wedge.restrict(t, self._sampled)
            t = t[sel]
            w = np.clip(rotate_box(ref.weight, inv)[sel], 0.0, 1.0)
            tc = t - (w * t).sum() / max(w.sum(), 1e-6)
            a = w * tc
            A.append(a / np.sqrt(max(float((a * tc).sum()), 1e-12)))
            W.append(w)
            T.append(t)
        W = np.asarray(W, np.float32)
        self._prepared = {k: v for k, v in self._prepared.items() if k[0] == id(ref)}
        A, T = np.asarray(A, np.float32), np.asarray(T, np.float32)
        self._prepared[key] = (A, W, W.sum(1), ref, T)
        return self._prepared[key]

    # --- scoring ---
    def score(self, ref: Reference, zyx, coarse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Correlation of each point with the reference: ``(scores, align)`` where ``align``
        holds each point's best ``(rotation index, shift index)`` (rotations of the coarse
        set with ``coarse``)."""
        zyx = np.asarray(zyx, np.float64).reshape(-1, 3)
        scores = np.full(len(zyx), -1.0)
        align = np.zeros((len(zyx), 2), int)
        size = self.n + 2 * self.shift
        for i0 in range(0, len(zyx), self.chunk):
            P = extract_boxes(self.volume, zyx[i0 : i0 + self.chunk], size, self.bin)
            scores[i0 : i0 + len(P)], align[i0 : i0 + len(P)] = self.score_boxes(ref, P, coarse)
        return scores, align

    def score_boxes(self, ref: Reference, P: np.ndarray, coarse: bool = False, lost=None):
        """Best correlation of each ``(n + 2 shift)``-sided box with the reference (less,
        for each box, its ``lost`` part: :meth:`correlations_without`)."""
        scores = np.full(len(P), -1.0)
        align = np.zeros((len(P), 2), int)
        for i0 in range(0, len(P), self.chunk):
            if lost is None:
                r = self.correlations(ref, P[i0 : i0 + self.chunk], coarse)
            else:
                r = self.correlations_without(
                    ref, P[i0 : i0 + self.chunk], lost[i0 : i0 + self.chunk]
                )
            flat = r.reshape(len(r), -1)
            k = flat.argmax(1)
            scores[i0 : i0 + len(r)] = flat[np.arange(len(r)), k]
            align[i0 : i0 + len(r)] = np.stack(np.unravel_index(k, r.shape[1:]), 1)
        return scores, align

    def correlations(self, ref: Reference, B: np.ndarray, coarse: bool = False) -> np.ndarray:
        """``(len(B), rotations, shifts)``: the weighted Pearson correlation of each
        ``(n + 2 shift)``-sided box with the reference at every rotation and shift."""
        A, W, wsum, _, _ = self._prepare(ref, coarse)
        # (boxes * shifts) x voxels, row-major: ``take`` keeps it contiguous, where fancy
        # indexing gave a strided array whose transpose cost a copy of a third of the
        # verification's time (dev1 proteasome: 17 of 50 s)
        X = np.take(B.reshape(len(B), -1), self._gather, axis=1).reshape(-1, self._gather.shape[1])
        num = X @ A.T
        s1 = X @ W.T
        s2 = (X * X) @ W.T
        var = np.maximum(s2 - s1 * s1 / wsum[None, :], 1e-9)
        r = (num / np.sqrt(var)).reshape(len(B), len(self.offsets), len(A))
        return np.ascontiguousarray(r.transpose(0, 2, 1))

    def correlations_without(self, ref: Reference, B: np.ndarray, lost: np.ndarray):
        """:meth:`correlations` of each box with the reference less that box's own ``lost``
        part (``(len(B), n, n, n)``, in the reference's frame: what the box's tilt series did
        not measure), taken away after the small rotations of this verifier's set turn the
        reference (it is not turned with them: they move it by a few degrees). The weighted
        correlation is linear in the template, so each box's own template costs two more
        products, not a rotation set of its own."""
        _, W, wsum, _, T = self._prepare(ref)
        X = np.take(B.reshape(len(B), -1), self._gather, axis=1)  # boxes x shifts x voxels
        U = np.asarray(lost, np.float32).reshape(len(B), -1)[:, self.sphere.ravel()]
        WT = W * T
        s_wt, s_wt2 = WT.sum(1), (WT * T).sum(1)  # per rotation
        u_wt, u_w, u2_w = U @ WT.T, U @ W.T, (U * U) @ W.T  # per box and rotation
        mean = (s_wt[None, :] - u_w) / wsum[None, :]  # the template's weighted mean
        norm2 = s_wt2[None, :] - 2 * u_wt + u2_w - wsum[None, :] * mean**2
        flat = X.reshape(-1, X.shape[-1])
        s1 = (flat @ W.T).reshape(len(B), -1, len(W))
        s2 = ((flat * flat) @ W.T).reshape(len(B), -1, len(W))
        xt = (flat @ WT.T).reshape(len(B), -1, len(W))
        xu = np.einsum("bsv,bv,kv->bsk", X, U, W, optimize=True)
        num = xt - xu - mean[:, None, :] * s1
        var = np.maximum(s2 - s1 * s1 / wsum[None, None, :], 1e-9)
        r = num / np.sqrt(var) / np.sqrt(np.maximum(norm2, 1e-12))[:, None, :]
        return np.ascontiguousarray(r.transpose(0, 2, 1))

    def climb(self, ref: Reference, zyx, steps: int):
        """Each point moved, ``steps`` times at most, to its best shift of the rotation search
        (a hill climb on the correlation): ``(scores, align, moved zyx)``. A point that
        stayed where it was would stay again: only those that moved are searched again."""
        p = np.asarray(zyx, np.float64).reshape(-1, 3).copy()
        hi = np.asarray(self.volume.shape) - 1
        climbing = np.arange(len(p))
        for _ in range(steps):
            _, align = self.score(ref, p[climbing], coarse=True)
            step = (self.offsets[align[:, 1]] - self.shift) * self.bin
            moved = step.any(axis=1)
            if not moved.any():
                break
            climbing, step = climbing[moved], step[moved]
            p[climbing] = np.clip(p[climbing] + step, 0, hi)
        scores, align = self.score(ref, p)
        return scores, align, p

    def mass(self, zyx) -> np.ndarray:
        """Each point's integrated density: the mean of the (binned, bright-protein) volume
        within the particle's radius less the median of a shell 1.15-1.5 radii out (its
        local background). The correlation is blind to it (Pearson ignores scale): a 50S
        subunit correlates with a 70S ribosome's reference nearly as well as a 70S does,
        with 60 % of its density."""
        return self.band_contrast(zyx, *MASS_BANDS)

    def _bands(self, shape, inner, outer):
        """Masks of the ``inner`` and ``outer`` bands (see :meth:`band_contrast`) in a box
        of ``shape`` around its centre."""
        c = (np.asarray(shape, np.float64) - 1) / 2
        g = np.sqrt(((np.indices(shape) - c[:, None, None, None]) ** 2).sum(0))
        r = 0.5 * self.d
        return tuple((g > lo * r) & (g <= hi * r) for lo, hi in (inner, outer))

    def band_contrast(self, zyx, inner, outer) -> np.ndarray:
        """Each point's mean density in the ``inner`` band less its median in the ``outer``
        one; a band ``(lo, hi)`` holds the voxels more than ``lo`` and at most ``hi``
        particle radii from the point (a negative ``lo`` takes the centre too)."""
        r = 0.5 * self.d
        half = int(np.ceil(outer[1] * r))
        a, b = self._bands((2 * half + 1,) * 3, inner, outer)
        zyx = np.asarray(zyx, np.float64).reshape(-1, 3)
        out = np.zeros(len(zyx))
        for i0 in range(0, len(zyx), self.chunk):
            P = extract_boxes(self.volume, zyx[i0 : i0 + self.chunk], 2 * half + 1, self.bin)
            out[i0 : i0 + len(P)] = P[:, a].mean(1) - np.median(P[:, b], axis=1)
        return out

    def box_contrast(self, box: np.ndarray) -> float:
        """A reference box's mean within the particle's radius less its median 1.15-1.5
        radii out (the bands of :meth:`mass`, on the box itself): a particle's reference is
        denser at its centre than around it; one averaged from the gaps between particles
        is not."""
        inner, shell = self._bands(box.shape, *MASS_BANDS)
        if not shell.any():
            return float("nan")
        return float(box[inner].mean() - np.median(box[shell]))

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
            boxes.append(rotate_box(box[a : a + n, b : b + n, c : c + n], self.matrices[r]))
        total = ref.n_particles + len(boxes)
        template = (ref.template * ref.n_particles + np.sum(boxes, 0)) / total
        return Reference(template.astype(np.float32), ref.weight, ref.bin, total, ref.typical)


def prompt_reference(
    volume, diameter_px: float, config: Config, points, masks, average: bool = True
) -> Reference:
    """A class's reference from its prompts (see :meth:`ShapeVerifier.reference`), each box
    centred on its prompt's mask when that lies within half a diameter of the click (a click
    is often off the particle's centre: a quarter diameter off, the box would stay off)."""
    centres = []
    for p, m in zip(np.asarray(points, np.float64).reshape(-1, 3), masks):
        c = m.centroid() if m is not None and not m.empty else p
        centres.append(c if np.linalg.norm(c - p) < 0.5 * diameter_px else p)
    return ShapeVerifier(volume, diameter_px, config).reference(centres, masks, average)


def map_reference(
    volume, diameter_px: float, config: Config, density: np.ndarray, map_voxel_size: float,
    voxel_size: float,
) -> Reference:  # fmt: skip
    """A class's reference from a known structure (an EMDB map, a previous average): the map
    resampled to the tomogram's voxel size, its box centre on the verifier's, binned as the
    verifier bins; the soft weight is the map's own envelope (the binned map, blurred, above
    a tenth of its maximum), so the correlation looks at the molecule. Density is taken as
    positive (bright) protein, as maps are; the prepared tomogram is bright protein too.
    Angles measured against it are in the map's frame."""
    v = ShapeVerifier(volume, diameter_px, config)
    m = np.asarray(density, np.float32)
    if m.ndim != 3 or min(m.shape) < 2 or not np.isfinite(m).all():
        raise ValueError("a reference map must be a finite 3D volume")
    m = resample_map(m, map_voxel_size, voxel_size)
    template = block_mean(fit_box(m, v.n * v.bin), v.bin)
    template = (template - template.mean()) / max(float(template.std()), 1e-6)
    blurred = ndimage.gaussian_filter(template, MASK_BLUR)
    envelope = ndimage.gaussian_filter(
        (blurred > blurred.min() + 0.1 * (blurred.max() - blurred.min())).astype(np.float32),
        MASK_BLUR,
    )
    weight = np.clip(MASK_GAIN * envelope / max(float(envelope.max()), 1e-6), 0.0, 1.0)
    return Reference(template.astype(np.float32), (weight * v.sphere).astype(np.float32), v.bin)


@dataclass
class Verified:
    """One class's candidates after shape verification.

    ``zyx`` are the centred positions; ``correlation`` the best correlation with the refined
    ``reference`` (over rotations and shifts); ``score`` what the candidates are ranked and
    cut by: the correlation adjusted by the feature similarity (see
    :func:`combined_score`); ``status`` updated (``PROMPT``, ``DUPLICATE``, ``NEGATIVE``);
    ``floor`` the least a match must score (``verify_typical_fraction`` of the reference's
    typical score when the reference came from another tomogram, else 0); ``mass`` each
    candidate's density over its local background (:meth:`ShapeVerifier.mass`) and
    ``mass_ok`` whether it lies within the class's mass window (:func:`of_class_mass`);
    ``contrast_kept`` the refined reference's contrast as a fraction of the one it started
    from (:meth:`ShapeVerifier.box_contrast`; NaN where that was not positive);
    ``dense_only`` whether the reference drifted and was refined again from the dense matches
    alone (``verify_dense_fraction``)."""

    zyx: np.ndarray
    score: np.ndarray
    correlation: np.ndarray
    status: np.ndarray
    reference: Reference
    floor: float
    mass: np.ndarray | None = None
    mass_ok: np.ndarray | None = None
    contrast_kept: float = float("nan")
    dense_only: bool = False


def combined_score(correlation, similarity, free, weight: float) -> np.ndarray:
    """The shape correlation plus ``weight`` times the feature similarity, both in units of
    their spread over the free candidates, expressed on the correlation's scale: shape
    (from the rotation search) and size and texture (the rotation-invariant features) vote
    together, so a ring of the right size or a faint true particle is not decided by one."""
    c = np.asarray(correlation, np.float64)
    if similarity is None or not weight or free.sum() < 2:
        return c
    f = np.asarray(similarity, np.float64)
    spread = float(np.std(c[free])) / max(float(np.std(f[free])), 1e-9)
    return c + weight * (f - float(np.median(f[free]))) * spread


def mass_adjusted(score, mass, free, known, tolerance: float) -> np.ndarray:
    """``score`` lowered where a candidate's mass (:meth:`ShapeVerifier.mass`) is off the
    class's (:func:`class_mass`). Within one spread nothing changes; beyond, the score drops
    by one robust spread of the free scores per spread of mass, so shape still ranks
    particles of the right mass while a 50S subunit or a 26S proteasome (60 % of a 70S
    ribosome's mass) or an 80S (130 %) falls behind. ``tolerance`` 0, fewer than 5 free
    candidates, no known ones or a non-positive class mass: unchanged."""
    score = np.asarray(score, np.float64)
    window = class_mass(mass, known, tolerance)
    if window is None or free.sum() < 5:
        return score
    m_ref, _, spread = window
    excess = np.clip(np.abs(mass - m_ref) / spread - 1.0, 0.0, None)
    s_free = score[free]
    s_spread = float(median_abs_deviation(s_free, scale="normal"))
    return score - max(s_spread, 1e-9) * excess


def of_class_mass(mass, known, tolerance: float) -> np.ndarray | None:
    """Per candidate, whether its mass lies within the class's window
    (:func:`~cryosam.method.cut.mass_window`); ``None`` when the class has no mass window, or
    when the known matches' masses spread more than
    :data:`~cryosam.method.cut.MASS_COUNT_SPREAD` of their median (their mass is then no
    measure)."""
    window = mass_window(mass, known, tolerance)
    if window is None:
        return None
    return np.abs(np.asarray(mass, np.float64) - window[0]) <= window[1]


def _known_matches(
    score, st, n_top: int | None, with_prompts: bool = True, among=None
) -> np.ndarray:
    """Indices of the ``n_top`` (None: all) best free candidates above a first,
    precision-first cut (only those ``among``, a mask, when given), and of the prompts
    (``with_prompts``): where the tomogram holds few true particles, the best 40 would include
    look-alikes (and drag the reference to them)."""
    free = st == Status.CANDIDATE
    if among is not None:
        free &= among
    prompts = np.flatnonzero(st == Status.PROMPT) if with_prompts else np.zeros(0, int)
    if not free.any():
        return prompts
    good = free & (score >= confident_cut(score[free]).value)
    best = np.flatnonzero(good)[np.argsort(-score[good])[:n_top]]
    return np.concatenate([prompts, best])


def verify_candidates(
    volume,
    zyx,
    status,
    diameter_px: float,
    config: Config,
    reference: Reference,
    prompts=(),
    negatives=(),
    similarity=None,
) -> Verified:
    """Shape verification of one class's candidates (see the module docstring).

    Each round climbs every candidate from where matching put it to its best correlation
    with the current reference, merges candidates that land on the same particle, and
    averages the best ``verify_rounds[k]`` (by the combined score, among those above a first
    cut) into the reference; the last reference scores them all.

    Args:
        volume: the prepared volume (bright protein).
        zyx, status: candidates and their :class:`~cryosam.method.candidates.Status` so far.
        reference: the class's reference (from its prompts or another tomogram).
        prompts: the class's prompt centres (a centred candidate on one becomes ``PROMPT``).
        negatives: ``zyx`` of negative prompts: a candidate that correlates better with one
            of them than with the reference becomes ``NEGATIVE``.
        similarity: the candidates' feature similarity (joins the score, see
            :func:`combined_score`).
    """
    v = ShapeVerifier(volume, diameter_px, config)
    fitted = v.fit(reference)
    start_contrast = v.box_contrast(fitted.template)  # the click's, before refinement
    start = np.asarray(zyx, np.float64).reshape(-1, 3)
    status = np.array(status, dtype=object)
    floor = config.verify_typical_fraction * reference.typical
    args = (v, fitted, start, status, prompts, similarity, config, floor, diameter_px)
    ref, corr, zc, st, score = _refined(*args, dense=None)
    kept, dense_only, dense = _kept(v, ref, start_contrast), False, None
    if kept < DRIFT_MIN or _lighter_than_click(v, corr, zc, st, prompts, config):
        # the reference drifted to the gaps between particles (its contrast fell) or to
        # lighter clutter (its best matches are light): refined again from the matches that
        # hold at least a fraction of the prompts' density (dev1 in clutter, click 3: F1
        # 0.07 -> 0.79; clicks 0 and 4, by their matches' mass: 0.570 -> 0.844, 0.118 ->
        # 0.597; drift-free runs are not touched: in a sparse cell the floor moved the cut
        # of one dev1 click from 94 picks to 42)
        dense = _dense_floor(v, prompts, config.verify_dense_fraction)
        if dense is not None:
            ref, corr, zc, st, score = _refined(*args, dense=dense)
            kept, dense_only = _kept(v, ref, start_contrast), True
    free = st == Status.CANDIDATE
    # mass ranks, after the reference is made (the heaviest matches must not choose it),
    # against all confident matches (the best few are the heaviest: too narrow a spread)
    mass = v.mass(zc)
    known = _known_matches(score, st, None)
    tolerance = config.verify_mass_tolerance
    if dense_only and not _holds_click(mass, known, st, _clicked_mass(v, prompts), tolerance):
        # the reference was refined again from the matches as dense as the click, and the
        # confident matches' mass window does not hold the click: the lighter look-alikes
        # that drew the reference away are most of them, so the class's mass is measured
        # on the dense ones (18 ribosomes among 227 proteasomes and TRiC: F1 0.09-0.12 -> 0.95-0.97)
        known = _known_matches(score, st, None, among=mass >= dense)
    score = mass_adjusted(score, mass, free, known, tolerance)
    mass_ok = of_class_mass(mass, known, tolerance)
    if free.any():
        n = config.verify_rounds[-1] if config.verify_rounds else 1
        best = np.sort(corr[free])[::-1][:n]
        # a reference from another tomogram keeps the level its own matches reached
        ref.typical = reference.typical or float(np.median(best))
    if len(negatives):
        top = config.verify_rounds[-1] if config.verify_rounds else 0
        _judge_negatives(v, ref, zc, st, negatives, top, mass, tolerance)
    return Verified(zc, score, corr, st, ref, floor, mass, mass_ok, kept, dense_only)


def _holds_click(mass, known, st, clicked: float | None, tolerance: float) -> bool:
    """Whether the clicked particles' mass lies within the class's mass window
    (:func:`class_mass`) measured on the ``known`` matches. The prompts' mass is their
    median ``mass`` at their verified centres (where the matches' masses are measured), or
    ``clicked`` (:func:`_clicked_mass`, at the click) where no candidate is a prompt. True
    without either or without a window."""
    prompts = st == Status.PROMPT
    if prompts.any():
        clicked = float(np.median(mass[prompts]))
    window = class_mass(mass, known, tolerance)
    if window is None or clicked is None:
        return True
    return abs(clicked - window[0]) <= window[2]


def _kept(v: ShapeVerifier, ref: Reference, start_contrast: float) -> float:
    """``ref``'s contrast as a fraction of ``start_contrast`` (NaN where that is not
    positive): see :attr:`Verified.contrast_kept`."""
    return v.box_contrast(ref.template) / start_contrast if start_contrast > 0 else float("nan")


def _refined(
    v: ShapeVerifier,
    reference,
    start,
    status,
    prompts,
    similarity,
    config,
    floor,
    diameter_px: float,
    dense: float | None,
):
    """The refinement rounds of :func:`verify_candidates` from ``reference`` (fitted to
    ``v``'s box): each climbs every candidate to its best correlation with the current
    reference, merges those that land on one particle, and averages the best
    ``verify_rounds[k]`` into the reference (only matches of mass at least ``dense`` when
    given). Returns ``(reference, correlation, centred zyx, status, combined score)`` of the
    last round."""
    ref = reference
    radius = config.nms_radius_factor * diameter_px
    recognised = None
    for top in (*config.verify_rounds, 0):
        corr, align, zc = v.climb(ref, start, config.verify_climb)
        if not top and config.verify_from_blobs:
            blobs = blob_centres(v.volume, start, diameter_px, BLOB_REACH, BALL_SIGMA, v.bin)
            corr, align, zc = _better(corr, align, zc, *v.climb(ref, blobs, config.verify_climb))
        st = _merge_duplicates(zc, corr, status, prompts, radius)
        if recognised is None and reference.typical:
            # a reference from elsewhere is refined only with the matches it recognises as
            # it came: averaging the best boxes of a tomogram without the particle in makes
            # a reference of noise that those boxes match (pure noise: 0.20 -> 0.54-0.63)
            recognised = corr >= floor
        free = st == Status.CANDIDATE
        score = combined_score(corr, similarity, free, config.verify_similarity_weight)
        if not top or not free.any():
            break
        among = recognised
        if dense is not None:  # only dense places shape the reference, never the gaps
            among = (v.mass(zc) >= dense) & (True if among is None else among)
        best = _known_matches(score, st, top, with_prompts=False, among=among)
        if not len(best):
            break
        base = Reference(ref.template, ref.weight, ref.bin, 1, reference.typical)
        ref = v.refine(base, zc[best], corr[best], align[best], len(best))
    return ref, corr, zc, st, score


def _lighter_than_click(v: ShapeVerifier, corr, zc, st, prompts, config) -> bool:
    """Whether the refined reference's best matches (the ``verify_rounds[-1]`` free ones
    that correlate best with it, among those above a first, precision-first cut of the
    correlations: in a tomogram of few particles the 40 best are mostly not particles) hold
    under :data:`DRIFT_MIN` of the clicked particles' mass (:func:`_clicked_mass`): the
    reference drifted to something lighter than what was clicked. False without prompts, or
    where the prompts are no denser than their surroundings."""
    clicked = _clicked_mass(v, prompts)
    n = config.verify_rounds[-1] if config.verify_rounds else 1
    best = _known_matches(corr, st, n, with_prompts=False)
    if clicked is None or not len(best):
        return False
    return float(np.median(v.mass(zc[best]))) < DRIFT_MIN * clicked


def _clicked_mass(v: ShapeVerifier, prompts) -> float | None:
    """The prompts' median mass (:meth:`ShapeVerifier.mass`); ``None`` without prompts or
    where they hold no more density than their surroundings (a hollow ring, or a click beside
    its particle)."""
    pts = np.asarray(prompts, np.float64).reshape(-1, 3)
    if not len(pts):
        return None
    m = float(np.median(v.mass(pts)))
    return m if m > 0 else None


def _dense_floor(v: ShapeVerifier, prompts, fraction: float) -> float | None:
    """The least mass (:meth:`ShapeVerifier.mass`) a match must have to join the reference:
    ``fraction`` of the prompts' median mass; ``None`` (any match may join) without prompts,
    with ``fraction`` 0, or where the prompts hold no more density than their surroundings
    (no floor can be read from them: :func:`_clicked_mass`)."""
    m = _clicked_mass(v, prompts) if fraction else None
    return fraction * m if m is not None else None


def drift_warning(cls: str, kept: float, dense_only: bool = False) -> str | None:
    """The warning for a class whose reference kept under :data:`DRIFT_MIN` of its clicked
    particle's contrast (``kept``, :attr:`Verified.contrast_kept`), or had drifted and was
    refined again from its dense matches (``dense_only``), else ``None``."""
    if dense_only and not kept < DRIFT_MIN:
        return (
            f"{cls}: refined from its best matches, the reference drifted to lighter things "
            "than the click (the gaps between particles, or clutter) and was refined again "
            "from the matches as dense as the click; check "
            f"gallery.png: a clearer first {cls} click may pick better"
        )
    if not kept < DRIFT_MIN:  # NaN too
        return None
    return (
        f"{cls}: refined from its best matches, the reference kept {kept:.0%} of the clicked "
        "particle's contrast over its surroundings: the picks are probably the gaps between "
        f"particles, not this particle; click a clearer {cls} first (a class's first click "
        "makes its reference; see gallery.png)"
    )


def _better(corr, align, zc, corr2, align2, zc2):
    """Per candidate, the climb that ended at the higher correlation: ``(corr, align, zyx)``."""
    b = corr2 > corr
    keep = lambda x, y: np.where(b.reshape(-1, *[1] * (x.ndim - 1)), y, x)  # noqa: E731
    return keep(corr, corr2), keep(align, align2), keep(zc, zc2)


def _merge_duplicates(zc, corr, status, prompts, radius) -> np.ndarray:
    """Statuses after centring: a candidate on a prompt becomes ``PROMPT``, one that landed
    within ``radius`` of a better one ``DUPLICATE``."""
    st = status.copy()
    if len(prompts) and len(zc):
        near = cKDTree(np.asarray(prompts, np.float64)).query(zc)[0] < radius
        st[near & (st == Status.CANDIDATE)] = Status.PROMPT
    kept = np.zeros(len(zc), bool)
    kept[nms(zc, corr, radius)] = True
    st[~kept & (st == Status.CANDIDATE)] = Status.DUPLICATE
    return st


def _judge_negatives(
    v: ShapeVerifier,
    refined: Reference,
    zc,
    status,
    negatives,
    top: int,
    mass=None,
    tolerance: float = 0.0,
):
    """Candidates that resemble a negative prompt more than the class become ``NEGATIVE``.

    Negatives compete like with like: each negative box is refined, as the class's reference
    was, with the candidates that resemble it more than the class, and the two references are
    compared under the same sphere (a smaller mask or fewer averaged particles must not
    decide). A candidate is claimed only when the negative's correlation exceeds the class's
    by more than one standard error of a correlation over the sphere's voxels
    (1 / sqrt(voxels), 0.02-0.03 at the binned sizes used): a closer call is a tie, and a tie
    stays with the class (dev2, three TRiC negatives: without the margin they took 19
    accepted proteasome matches, 7 of them true, F1 0.406 -> 0.397; with it 0.408). And a
    negative claims only among its own ``top`` best-correlating free candidates (as many as
    the class's last refinement round averages): a candidate unlike the class leans to any
    negative, and three TRiC negatives on dev2 claimed 1526 of 2510 free proteasome matches
    (6 TRiC, 31 proteasomes) and lowered F1 by 0.042; held to their own best they raise it
    by 0.002 there, and over 15 clicks the worst loss halves (-0.021; README, Benchmarks).

    With ``mass`` (per candidate) and ``tolerance``, a negative also claims, and refines its
    box from, only candidates within ``tolerance`` of its own mass
    (:func:`_of_negative_mass`): in a sparse cell the small particles lean to a TRiC
    negative's box (one box's 40 best held 18 proteasomes, 9 rubisco and 8 ribosomes to 3
    TRiC), and it took a light ribosome (dev1, F1 0.984 -> 0.978); with the mass, 0.984,
    and the first click's six runs no longer lose F1 to their negatives."""
    sphere = v.sphere.astype(np.float32)
    margin = 1.0 / np.sqrt(max(float(sphere.sum()), 1.0))
    pos, _ = v.score(Reference(refined.template, sphere, v.bin), zc)
    free = status == Status.CANDIDATE
    for p in negatives:
        alike = _of_negative_mass(v, p, mass, tolerance)
        nref = Reference(v.reference([p]).template, sphere, v.bin)
        neg, align = v.score(nref, zc)
        lean = (status == Status.CANDIDATE) & (neg > pos) & alike
        if top and lean.any():
            nref = v.refine(nref, zc[lean], neg[lean], align[lean], min(top, int(lean.sum())))
            neg, _ = v.score(nref, zc)
        claim = (status == Status.CANDIDATE) & (neg > pos + margin) & alike
        if top and free.sum() > top:
            claim &= neg >= np.sort(neg[free])[-top]
        status[claim] = Status.NEGATIVE


def _of_negative_mass(v: ShapeVerifier, point, mass, tolerance: float):
    """Per candidate (``mass``, :meth:`ShapeVerifier.mass`), whether its mass lies within
    ``tolerance`` of the negative prompt's at ``point`` (the class's own window width, one
    measurement for its centre); all ``True`` without masses, with ``tolerance`` 0 or where
    the negative holds no more density than its surroundings (no mass to compare with:
    :func:`_clicked_mass`)."""
    m_neg = _clicked_mass(v, [point]) if mass is not None and tolerance else None
    if m_neg is None:
        return True
    return np.abs(np.asarray(mass, np.float64) - m_neg) <= tolerance * m_neg


def rescue_from_blobs(
    volume, zyx, correlation, score, below, keep, diameter_px: float, config: Config, ref
):
    """Candidates the cut rejected, climbed again from the centre of the particle-sized blob
    nearest each (:func:`~cryosam.method.centre.blob_centres`, within :data:`BLOB_REACH`)
    with the class's final reference ``ref``: a match left a third of a diameter off its
    particle at a local maximum of the correlation scores like a look-alike (dev1, one
    ribosome click: 13 of 95 ribosomes 7-12 voxels off). ``below`` (mask) are the rejected
    ones tried, ``keep`` the ``zyx`` of the places already kept. Returns ``(zyx, correlation,
    score)`` for all candidates: a tried one moves where its correlation rose, and its score
    rises by as much; one that lands within the NMS radius of a kept place, or of a better
    moved one, stays where it was. The cut is not found again: the scores it was found on
    are those of the climb from where matching put the candidates, so where the blob centre
    changes nothing (a particle already centred, a look-alike at its own centre) nothing
    moves."""
    zyx = np.array(zyx, np.float64).reshape(-1, 3)
    corr, score = np.array(correlation, np.float64), np.array(score, np.float64)
    idx = np.flatnonzero(below)
    if not len(idx):
        return zyx, corr, score
    v = ShapeVerifier(volume, diameter_px, config)
    ref = v.fit(ref)
    blobs = blob_centres(volume, zyx[idx], diameter_px, BLOB_REACH, BALL_SIGMA, v.bin)
    # one already within a binned voxel of its blob centre would climb the same way again
    away = np.linalg.norm(blobs - zyx[idx], axis=1) > v.bin
    idx, blobs = idx[away], blobs[away]
    if not len(idx):
        return zyx, corr, score
    c2, _, z2 = v.climb(ref, blobs, config.verify_climb)
    up = c2 > corr[idx]
    idx, c2, z2 = idx[up], c2[up], z2[up]
    radius = config.nms_radius_factor * diameter_px
    kept = np.asarray(keep, np.float64).reshape(-1, 3)
    if len(kept) and len(idx):
        clear = cKDTree(kept).query(z2)[0] >= radius
        idx, c2, z2 = idx[clear], c2[clear], z2[clear]
    if len(idx):
        order = nms(z2, c2, radius)
        idx, c2, z2 = idx[order], c2[order], z2[order]
    score[idx] += c2 - corr[idx]
    corr[idx], zyx[idx] = c2, z2
    return zyx, corr, score
