"""The one typed configuration object of the method.

Every tunable of the pipeline lives here with its default (the paper's where the paper
has one) and its help text, is printed into each run's ``run.json`` and can be changed
from the command line (``--set NAME=VALUE``; the CLI takes its option defaults from here).
The weight-free feature bank's own scales are part of that encoder's definition and of
its cache signature, so they live with it (:mod:`cryosam.models.classical_encoder`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from cryosam.errors import CryosamError

Combine = Literal["union", "vote"]
Invert = Literal["auto", "yes", "no"]


def _wedge_ok(text: str) -> bool:
    """Whether ``missing_wedge`` reads as narrow, auto, off or ``AXIS:DEGREES``."""
    if text in ("narrow", "auto", "off"):
        return True
    axis, _, angle = str(text).partition(":")
    try:
        return axis in ("y", "x") and 0.0 < float(angle) < 90.0
    except ValueError:
        return False


def _p(default: Any, help: str) -> Any:
    """A parameter: its default and the help text shown by ``cryosam params``."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Config:
    """Parameters of CryoSAM (paper defaults) and of cryosam's own additions.

    Sizes given as ``*_factor`` are multiples of the particle diameter in voxels,
    so the same config works at any voxel size.
    """

    # --- Cross-Plane Self-Prompting (paper sec. 2.1) ---
    tau_iou: float = _p(
        0.5, "Stop propagating when the IoU of two adjacent slice masks drops below this."
    )
    propagation_axes: str = _p(
        "zyx",
        "Axes whose orthogonal planes through the prompt are propagated ('z' = reference code).",
    )
    combine: Combine = _p(
        "vote",
        "How the propagated stacks are merged: majority 'vote' (default; it scores higher in "
        "benchmarks/segment_accuracy.py) or 'union' (paper).",
    )
    max_extent_factor: float = _p(
        0.75, "Propagation never goes further than this many diameters from the prompt."
    )
    max_area_factor: float = _p(
        1.3, "A slice mask larger than a disk of this many diameters' width ends propagation."
    )

    # --- weight-free (classical) segmenter ---
    smoothing_factor: float = _p(0.08, "3D Gaussian denoising sigma, in diameters.")
    level: float = _p(
        0.45, "Foreground threshold between local background (0) and particle interior (1)."
    )
    interior_percentile: float = _p(
        75.0, "Percentile of the denoised density near the prompt taken as the particle interior."
    )
    interior_radius_factor: float = _p(
        0.25, "The particle interior is sampled within this many diameters of the prompt."
    )
    background_shell: tuple[float, ...] = _p(
        (1.0, 1.5), "The local background is the median of this shell (inner, outer diameters)."
    )
    envelope_level: float = _p(
        0.2, "Lower level (same scale as ``level``) that the finished mask may grow into."
    )
    grow_factor: float = _p(
        0.06, "How far (diameters) a finished mask may grow into the envelope level."
    )
    seed_radius_factor: float = _p(
        0.17, "Foreground within this many diameters of a prompt point belongs to the particle."
    )
    closing_factor: float = _p(
        0.12, "Morphological closing radius (diameters) that seals lumens of hollow particles."
    )

    # --- Hierarchical Feature Matching (paper sec. 2.3) ---
    tau_sim: float = _p(
        0.5, "Cosine-similarity threshold on standardised features at every pyramid level."
    )
    pyramid: tuple[int, ...] = _p((16, 8, 4), "Down-sampling ratios, coarse to fine.")
    top_k: int = _p(
        512,
        "Candidates kept per class (paper: 512); raised automatically to what the tomogram "
        "can hold (its volume over a diameter cube, at ``packing``), so a large tomogram is "
        "not capped at the paper's count.",
    )
    packing: float = _p(
        0.5, "Fraction of the volume that particles of one class could fill, for the top-K bound."
    )
    nms_radius_factor: float = _p(0.5, "3D non-maximum suppression radius, in diameters.")
    prompt_snap: float = _p(
        0.35,
        "A click on a particle's flank or beside it (its particle-sized blob response under "
        "half the strongest within this many diameters) moves to that strongest blob's centre "
        "before anything is made from it; a click near the centre stays (0: clicks never move).",
    )
    map_seeds: int = _p(
        3,
        "A class given a --reference map and no click is prompted with this many of its best "
        "matches to the map.",
    )
    query_expansion: int = _p(
        2, "Rounds of query expansion: the query is re-averaged with its best matches (0 = paper)."
    )
    expansion_size: int = _p(10, "How many best matches join the query in each expansion round.")
    diameter_tolerance: float = _p(
        0.3,
        "A class's size measured on its prompted masks is kept within this fraction of --diameter.",
    )
    size_tolerance: float = _p(
        1.6,
        "A match whose mask volume differs from the prompted masks' by more than this factor "
        "(either way) is dropped as 'size_mismatch'.",
    )
    background_quantile: float = _p(
        0.99,
        "The features' background level: this quantile of the query's similarity to random "
        "places of the tomogram.",
    )
    background_samples: int = _p(20000, "Random places sampled for the background level.")

    # --- shape verification (cryosam's own; see cryosam.method.verify) ---
    verify: bool = _p(
        True,
        "Re-centre every candidate and score it by its correlation with the prompted particles "
        "(best over rotations, under their soft mask); the cut is then made on that score.",
    )
    verify_angle_step: float = _p(30.0, "Rotation sampling of the verification, in degrees.")
    verify_refine_angles: bool = _p(
        True,
        "The cut decides how many candidates are kept, their refined correlation (every "
        "rotation, refined locally, as the picks' orientations are) which: the best twice as "
        "many as kept are re-ranked by it.",
    )
    verify_all_rotations: bool = _p(
        False,
        "Search every rotation in verification (else the rotations whose axis lies in the "
        "upper hemisphere: half the cost).",
    )
    verify_bin_px: float = _p(
        12.0,
        "Boxes are binned so the particle spans about this many voxels (an integer bin; a "
        "particle it would leave unbinned at over 16 voxels is verified on a copy "
        "Fourier-resampled to twice this across, binned by 2).",
    )
    verify_rounds: tuple[int, ...] = _p(
        (10, 20, 40),
        "Rounds of reference refinement: in each, this many best candidates (by the combined "
        "score) are aligned and averaged into the reference, which then scores all again.",
    )
    verify_dense_fraction: float = _p(
        0.5,
        "A reference that drifted in refinement (kept under half its clicked particle's "
        "contrast, or its best matches hold under half the click's mass: refined from the "
        "gaps between particles or from lighter clutter, as a faint or cluttered click's "
        "is) is refined again from the matches whose mass (density over the local "
        "background) is at least this fraction of the prompts' (0 = never).",
    )
    verify_climb: int = _p(
        3,
        "Each round moves every candidate up to this many times to its best shift of the "
        "rotation search (a hill climb from where matching put it).",
    )
    verify_from_blobs: bool = _p(
        False,
        "The last round also climbs each candidate from the centre of the particle-sized "
        "blob nearest it (within 0.4 diameters) and keeps the better-correlating place: a "
        "match left a third of a diameter off its particle scores as a look-alike. Off by "
        "default: it lifts the simulated dev tomograms but cut the real tomogram's picks "
        "from 465 to 36.",
    )
    verify_rescue_from_blobs: bool = _p(
        True,
        "After the cut, each rejected candidate climbs again from the centre of the "
        "particle-sized blob nearest it (within 0.4 diameters); where its correlation rises "
        "its score rises by as much, and it is kept if that reaches the cut (which is not "
        "found again): a particle the climb left a third of a diameter off scores like a "
        "look-alike.",
    )
    verify_similarity_weight: float = _p(
        0.5,
        "Weight of the feature similarity beside the shape correlation in the score that "
        "ranks and cuts the candidates (both in units of their spread; 0: shape alone).",
    )
    verify_mass_tolerance: float = _p(
        0.3,
        "A candidate whose mass (density over its local background) differs from the best "
        "matches' by more than this fraction (or their spread, if wider) is ranked lower, "
        "in proportion; a negative prompt claims only candidates within this fraction of its "
        "own mass (0: off).",
    )
    pick_strays: bool = _p(
        True,
        "Drop the accepted matches that form a separate low mode of score and agreement with "
        "their class's average, or lie far below the matches' median (modified z-score under "
        "-3.5): a few look-alikes at the end of a sparse cell's cut; their status becomes "
        "stray. Where none stands apart nothing is dropped; a cut the user set (cryosam "
        "recut --min-score) is kept as it is.",
    )
    verify_box_factor: float = _p(0.6, "Half the verification box, in diameters.")
    verify_mask_margin: float = _p(
        0.0,
        "The verification mask (the prompted mask, blurred) reaches this fraction of the "
        "diameter past the typed radius (0: cut at the typed --diameter). 0.1 mends a diameter "
        "typed 10 % small in a crowded cell but costs small scenes their orientations and "
        "look-alike tests, so it is not the default (README, 'A mask past the typed radius').",
    )
    verify_shift: int = _p(
        1, "Binned voxels searched around each centred candidate when it is scored."
    )
    orient_angle_step: float = _p(
        30.0,
        "Each pick's orientation: every rotation this many degrees apart is tried against its "
        "class's reference, then refined locally to 1/24 of it.",
    )
    orient_rounds: int = _p(
        1,
        "After the first orientation, the picks are oriented again this many times against "
        "their own aligned average (in the same frame), as subtomogram averaging iterates.",
    )
    orient_average_best: float = _p(
        0.5,
        "The average a further orientation round aligns to is made of this fraction of the "
        "picks, those that correlated best with the last reference (a crowded cell's "
        "look-alikes among the picks blur it).",
    )
    verify_typical_fraction: float = _p(
        0.5, "A match must score at least this fraction of its reference's typical score."
    )
    mask_envelope: bool = _p(
        True,
        "Each pick's mask keeps only the voxels inside its class's shape: the envelope of the "
        "picks' aligned average, turned to the pick's orientation and placed at its centre "
        "(a propagated mask that ran into a neighbour or took in background is cut back; "
        "classes of fewer than 5 picks are left whole). Off: a verified pick whose mask "
        "ran far past its class's size has no mask.",
    )
    mask_envelope_size: float = _p(
        1.2,
        "The envelope holds this many times the median volume of the class's propagated "
        "masks (the average's densest voxels).",
    )
    reject_membranes: bool = _p(
        True,
        "Candidates whose centre lies on a membrane (within 6 nm of a sheet found as "
        "--extended finds them) are rejected as on_membrane, unless the class's own prompts "
        "lie on one.",
    )
    reject_fiducials: bool = _p(
        True,
        "Candidates within 20 nm of a gold fiducial (voxels denser than 5 times the densest "
        "protein) are rejected as near_fiducial, unless the class's own prompts lie there.",
    )

    # --- extended structures (membranes, filaments; cryosam's own) ---
    extended_seed_z: float = _p(
        3.5,
        "A membrane/filament is seeded where its ridge response stands this many background "
        "standard deviations (robust) above the tomogram's median response.",
    )
    extended_grow_z: float = _p(
        1.7, "Seeds grow through voxels whose response is at least this many standard deviations."
    )
    extended_scales_angst: tuple[float, ...] = _p(
        (30.0, 40.0, 60.0),
        "Candidate Gaussian scales (Å) when no thickness is given (membranes are 40-60 Å "
        "thick, actin ~70 Å; noise favours the larger scales).",
    )
    extended_scale_tolerance: float = _p(
        0.75,
        "The finest scale whose response at the prompts is at least this fraction of the best "
        "scale's is used.",
    )

    # --- input handling ---
    invert: Invert = _p(
        "auto",
        "Contrast: 'yes' when protein is dark (raw tomograms), 'no' when bright, 'auto' detects.",
    )
    balance_spectrum: Invert = _p(
        "no",
        "Turn down the low frequencies of a tomogram whose low band (13-40 voxels) stands over "
        "a factor of 10 in power above its mid band (4-8 voxels), as a deconvolution (Warp, "
        "IsoNet) leaves it, to that factor: particles in broad dark halos look alike to the "
        "shape check. 'auto' decides from the tomogram's spectrum in pick, batch and copick "
        "(raw reconstructions are left as they are; segment and --extended read every volume "
        "as given), 'yes' always, 'no' (default) never: a pick warns when the spectrum is "
        "lifted (README, 'A deconvolved tomogram').",
    )
    missing_wedge: str = _p(
        "narrow",
        "Mind the tilt series' missing wedge in shape verification: each turned reference "
        "loses what the tomogram could not measure. 'narrow' (default) reads the tilt axis and "
        "the largest tilt from the tomogram's spectrum and minds them when the tilts reach "
        "under +-55° (a lamella's +-45-50°: it lifts a ribosome's picks there), not at +-60°, "
        "where it costs a little; 'auto' minds what it reads at any range, 'y:45' / 'x:50' "
        "gives them, 'off' never minds it (README, 'A narrower tilt range').",
    )
    seed: int = _p(0, "Seed for every random choice, so runs are reproducible.")

    # --- backends ---
    segmenter: str = _p("classical", "2D promptable segmenter: classical (no weights) or sam.")
    encoder: str = _p("classical", "Feature encoder: classical (no weights) or dinov2.")
    model: str | None = _p(None, "Segmenter checkpoint (folder or hub id) for foundation backends.")
    encoder_model: str | None = _p(
        None, "Encoder checkpoint (folder or hub id) for foundation backends."
    )
    device: str = _p("auto", "auto, cpu, cuda or mps (foundation backends).")

    def __post_init__(self) -> None:
        problems = [
            f"{f.name} must be a finite number"
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))
        ]
        problems += self._range_problems()
        if problems:
            raise CryosamError("invalid configuration: " + "; ".join(problems))

    def _range_problems(self) -> list[str]:
        rules = self._checks() + self._segmenter_checks()
        return [message for ok, message in rules if not ok]

    def _checks(self) -> list[tuple[bool, str]]:
        """(holds, what to say when it does not) for the matching and verification rules."""
        pyramid_ok = bool(self.pyramid) and all(r >= 1 for r in self.pyramid)
        return [
            (0.0 < self.tau_iou <= 1.0, f"tau_iou must be in (0, 1], got {self.tau_iou}"),
            (-1.0 <= self.tau_sim <= 1.0, f"tau_sim must be in [-1, 1], got {self.tau_sim}"),
            (
                pyramid_ok and list(self.pyramid) == sorted(self.pyramid, reverse=True),
                f"pyramid ratios must be positive integers, coarse to fine, got {self.pyramid}",
            ),
            (self.size_tolerance >= 1, "size_tolerance must be >= 1"),
            (0 <= self.diameter_tolerance < 1, "diameter_tolerance must be in [0, 1)"),
            (
                self.query_expansion >= 0 and self.expansion_size >= 1,
                "query_expansion must be >= 0 and expansion_size >= 1",
            ),
            (0 < self.packing <= 1, f"packing must be in (0, 1], got {self.packing}"),
            (self.top_k >= 1, f"top_k must be >= 1, got {self.top_k}"),
            (self.map_seeds >= 1, f"map_seeds must be >= 1, got {self.map_seeds}"),
            (self.orient_rounds >= 0, f"orient_rounds must be >= 0, got {self.orient_rounds}"),
            (
                self.mask_envelope_size > 0,
                f"mask_envelope_size must be positive, got {self.mask_envelope_size}",
            ),
            (
                0 < self.orient_average_best <= 1,
                f"orient_average_best must be in (0, 1], got {self.orient_average_best}",
            ),
            (
                0 <= self.prompt_snap <= 0.5,
                f"prompt_snap must be in [0, 0.5], got {self.prompt_snap}",
            ),
            (
                0 < self.background_quantile < 1 and self.background_samples >= 100,
                "background_quantile must be in (0, 1) and background_samples >= 100",
            ),
            (
                1.0 <= self.verify_angle_step <= 180.0 and 2.0 <= self.orient_angle_step <= 90.0,
                f"verify_angle_step must be in [1, 180] and orient_angle_step in [2, 90], got "
                f"{self.verify_angle_step} and {self.orient_angle_step}",
            ),
            (
                self.verify_bin_px >= 4
                and self.verify_climb >= 0
                and all(n >= 1 for n in self.verify_rounds)
                and self.verify_similarity_weight >= 0
                and self.verify_mass_tolerance >= 0
                and 0 <= self.verify_dense_fraction <= 1,
                "verify_bin_px must be >= 4, verify_climb >= 0, verify_rounds >= 1 each, "
                "verify_similarity_weight >= 0, verify_mass_tolerance >= 0 and "
                "verify_dense_fraction in [0, 1]",
            ),
            (
                self.verify_box_factor >= 0.5
                and 0 <= self.verify_mask_margin <= 2 * self.verify_box_factor - 1
                and self.verify_shift >= 0
                and 0 <= self.verify_typical_fraction <= 1,
                "need verify_box_factor >= 0.5, verify_mask_margin in [0, 2 verify_box_factor - "
                "1] (the mask within the box), verify_shift >= 0 and verify_typical_fraction "
                "in [0, 1]",
            ),
        ]

    def _segmenter_checks(self) -> list[tuple[bool, str]]:
        """The rules on the segmenter's, the extended structures' and the input parameters."""
        factors = (
            self.max_extent_factor,
            self.nms_radius_factor,
            self.max_area_factor,
            self.seed_radius_factor,
            self.interior_radius_factor,
        )
        inner, *outer = self.background_shell or (0,)
        return [
            (
                bool(self.propagation_axes) and not set(self.propagation_axes) - set("zyx"),
                f"propagation_axes must be letters from 'zyx', got {self.propagation_axes!r}",
            ),
            (
                self.combine in ("union", "vote"),
                f"combine must be 'union' or 'vote', got {self.combine!r}",
            ),
            (
                self.invert in ("auto", "yes", "no"),
                f"invert must be auto, yes or no, got {self.invert!r}",
            ),
            (
                self.balance_spectrum in ("auto", "yes", "no"),
                f"balance_spectrum must be auto, yes or no, got {self.balance_spectrum!r}",
            ),
            (
                _wedge_ok(self.missing_wedge),
                "missing_wedge must be narrow, auto, off or AXIS:DEGREES (axis y or x, "
                f"0 < degrees < 90, e.g. y:60), got {self.missing_wedge!r}",
            ),
            (min(factors) > 0, "the *_factor sizes must be positive"),
            (
                self.smoothing_factor >= 0 and self.closing_factor >= 0,
                "smoothing_factor and closing_factor must be >= 0",
            ),
            (
                0.0 < self.level < 1.0 and 0.0 <= self.envelope_level <= self.level,
                "need 0 <= envelope_level <= level < 1 and level > 0",
            ),
            (
                len(outer) == 1 and 0 <= inner < outer[0],
                "background_shell must be two diameters, inner < outer",
            ),
            (self.grow_factor >= 0, "grow_factor must be >= 0"),
            (
                0 < self.extended_grow_z <= self.extended_seed_z,
                "need 0 < extended_grow_z <= extended_seed_z",
            ),
            (
                bool(self.extended_scales_angst)
                and min(self.extended_scales_angst) > 0
                and 0 < self.extended_scale_tolerance <= 1,
                "extended_scales_angst must be positive and extended_scale_tolerance in (0, 1]",
            ),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
        ]

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied (and validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CryosamError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every parameter."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        default = cls()
        data = {
            k: tuple(v) if isinstance(getattr(default, k, None), tuple) else v
            for k, v in data.items()
        }
        return default.replace(**data)

    def with_overrides(self, items: list[str]) -> Config:
        """Apply ``--set name=value`` overrides (values parsed to the parameter's type)."""
        names = {f.name for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for item in items or []:
            name, sep, text = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise CryosamError(
                    f"--set {item!r}: expected NAME=VALUE with NAME one of the parameters "
                    "listed by 'cryosam params'"
                )
            changes[name] = _parse_value(item, text, getattr(self, name))
        return self.replace(**changes) if changes else self

    @staticmethod
    def help(name: str) -> str:
        """The help text of parameter ``name``."""
        return next(f.metadata["help"] for f in dataclasses.fields(Config) if f.name == name)

    @staticmethod
    def describe() -> list[tuple[str, str, str]]:
        """(name, default, help) for every parameter, for docs and ``--help``."""
        default = Config()
        return [
            (f.name, repr(getattr(default, f.name)), f.metadata.get("help", ""))
            for f in dataclasses.fields(Config)
        ]

    @staticmethod
    def reference_markdown() -> str:
        """The parameter reference (docs/parameters.md and ``cryosam params``)."""
        lines = [
            "# Parameters",
            "",
            "Every tunable of the method, with its default. Override any of them on "
            "`cryosam segment`, `pick` or `batch` with `--set NAME=VALUE` (repeatable); "
            "each run records the values it used in `run.json`. Generated from "
            "`cryosam.config.Config` by `cryosam params`.",
            "",
            "| name | default | meaning |",
            "|---|---|---|",
        ]
        lines += [f"| `{n}` | `{default}` | {text} |" for n, default, text in Config.describe()]
        return "\n".join(lines) + "\n"


def _parse_value(item: str, text: str, current: Any) -> Any:
    """``--set`` text parsed to the type of the parameter's current value."""
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, tuple):
            kind = type(current[0]) if current else float
            return tuple(kind(v) for v in text.split(","))
        return None if text.lower() in ("none", "") else text
    except ValueError:
        raise CryosamError(
            f"--set {item!r}: {text!r} is not a valid {type(current).__name__}"
        ) from None
