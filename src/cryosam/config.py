"""The one typed configuration object of the method.

Every tunable of the pipeline lives here with the paper's default, is printed
into each run's ``run.json`` and can be overridden from the command line. No
other module carries magic numbers for the method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from cryosam.errors import CryosamError

Combine = Literal["union", "vote"]
Invert = Literal["auto", "yes", "no"]


@dataclass(frozen=True)
class Config:
    """Parameters of CryoSAM (paper defaults) and of cryosam's own additions.

    Sizes given as ``*_factor`` are multiples of the particle diameter in voxels,
    so the same config works at any voxel size.
    """

    # --- Cross-Plane Self-Prompting (paper sec. 2.1) ---
    tau_iou: float = 0.5
    """Stop propagating when the IoU of two adjacent slice masks drops below this."""
    propagation_axes: str = "zyx"
    """Axes whose orthogonal planes through the prompt are propagated ('z' = reference code)."""
    combine: Combine = "vote"
    """How the propagated stacks are merged: majority 'vote' (default; it scores higher
    in benchmarks/segment_accuracy.py) or 'union' (paper)."""
    max_extent_factor: float = 0.75
    """Propagation never goes further than this many diameters from the prompt."""
    max_area_factor: float = 1.3
    """A slice mask larger than a disk of this many diameters' width ends propagation."""

    # --- weight-free (classical) segmenter ---
    smoothing_factor: float = 0.08
    """3D Gaussian denoising sigma, in diameters."""
    level: float = 0.45
    """Foreground threshold between local background (0) and particle interior (1)."""
    interior_percentile: float = 75.0
    """Percentile of the denoised density near the prompt taken as the particle interior."""
    envelope_level: float = 0.2
    """Lower level (same scale as ``level``) that the finished mask may grow into."""
    grow_factor: float = 0.06
    """How far (diameters) a finished mask may grow into the envelope level."""
    seed_radius_factor: float = 0.17
    """Foreground within this many diameters of a prompt point belongs to the particle."""
    closing_factor: float = 0.12
    """Morphological closing radius (diameters) that seals lumens of hollow particles."""

    # --- Hierarchical Feature Matching (paper sec. 2.3) ---
    tau_sim: float = 0.5
    """Cosine-similarity threshold on standardised features at every pyramid level."""
    pyramid: tuple[int, ...] = (16, 8, 4)
    """Down-sampling ratios, coarse to fine."""
    top_k: int = 512
    """At most this many candidates per class (paper: 512); raised automatically to what the
    tomogram can hold (its volume over a diameter cube, at ``packing``), so a large
    tomogram is not capped at the paper's count."""
    packing: float = 0.5
    """Fraction of the volume that particles of one class could fill, for the top-K bound."""
    nms_radius_factor: float = 0.5
    """3D non-maximum suppression radius, in diameters."""
    query_expansion: int = 2
    """Rounds of query expansion: the query is re-averaged with its best matches (0 = paper)."""
    expansion_size: int = 10
    """How many best matches join the query in each expansion round."""
    size_tolerance: float = 1.6
    """A match whose mask volume differs from the prompted masks' by more than this factor
    (either way) is dropped as 'size_mismatch'."""

    # --- shape verification (cryosam's own; see cryosam.verify) ---
    verify: bool = True
    """Re-centre every candidate and score it by its correlation with the prompted particles
    (best over rotations, under their soft mask); the cut is then made on that score."""
    verify_angle_step: float = 30.0
    """Rotation sampling of the verification, in degrees."""
    verify_bin_px: float = 12.0
    """Boxes are binned so the particle spans about this many voxels."""
    verify_top: int = 20
    """The best candidates aligned and averaged into the reference before the final score."""

    # --- extended structures (membranes, filaments; cryosam's own) ---
    extended_seed_z: float = 3.5
    """A membrane/filament is seeded where its ridge response stands this many background
    standard deviations (robust) above the tomogram's median response."""
    extended_grow_z: float = 1.7
    """Seeds grow through voxels whose response is at least this many standard deviations."""

    # --- input handling ---
    invert: Invert = "auto"
    """Contrast: 'yes' when protein is dark (raw tomograms), 'no' when bright, 'auto' detects."""
    seed: int = 0
    """Seed for every random choice, so runs are reproducible."""

    # --- backends ---
    segmenter: str = "classical"
    encoder: str = "classical"
    model: str | None = None
    """Segmenter checkpoint (folder or hub id) for foundation backends."""
    encoder_model: str | None = None
    """Encoder checkpoint (folder or hub id) for foundation backends."""
    device: str = "auto"
    """auto, cpu, cuda or mps (foundation backends)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.tau_iou <= 1.0:
            problems.append(f"tau_iou must be in (0, 1], got {self.tau_iou}")
        if not -1.0 <= self.tau_sim <= 1.0:
            problems.append(f"tau_sim must be in [-1, 1], got {self.tau_sim}")
        if not self.pyramid or any(r < 1 for r in self.pyramid):
            problems.append(f"pyramid ratios must be positive integers, got {self.pyramid}")
        elif list(self.pyramid) != sorted(self.pyramid, reverse=True):
            problems.append(f"pyramid ratios must go coarse to fine, got {self.pyramid}")
        if self.size_tolerance < 1:
            problems.append("size_tolerance must be >= 1")
        if self.query_expansion < 0 or self.expansion_size < 1:
            problems.append("query_expansion must be >= 0 and expansion_size >= 1")
        if not 0 < self.packing <= 1:
            problems.append(f"packing must be in (0, 1], got {self.packing}")
        if self.top_k < 1:
            problems.append(f"top_k must be >= 1, got {self.top_k}")
        if not 1.0 <= self.verify_angle_step <= 180.0:
            problems.append(f"verify_angle_step must be in [1, 180], got {self.verify_angle_step}")
        if self.verify_bin_px < 4 or self.verify_top < 0:
            problems.append("verify_bin_px must be >= 4 and verify_top >= 0")
        if not self.propagation_axes or set(self.propagation_axes) - set("zyx"):
            problems.append(
                f"propagation_axes must be letters from 'zyx', got {self.propagation_axes!r}"
            )
        if self.combine not in ("union", "vote"):
            problems.append(f"combine must be 'union' or 'vote', got {self.combine!r}")
        if self.invert not in ("auto", "yes", "no"):
            problems.append(f"invert must be auto, yes or no, got {self.invert!r}")
        for name in ("max_extent_factor", "nms_radius_factor", "max_area_factor",
                     "seed_radius_factor"):  # fmt: skip
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.smoothing_factor < 0 or self.closing_factor < 0:
            problems.append("smoothing_factor and closing_factor must be >= 0")
        if not 0.0 < self.level < 1.0 or not 0.0 <= self.envelope_level <= self.level:
            problems.append("need 0 <= envelope_level <= level < 1 and level > 0")
        if self.grow_factor < 0:
            problems.append("grow_factor must be >= 0")
        if not 0 < self.extended_grow_z <= self.extended_seed_z:
            problems.append("need 0 < extended_grow_z <= extended_seed_z")
        if problems:
            raise CryosamError("invalid configuration: " + "; ".join(problems))

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied (and validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CryosamError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every parameter."""
        d = dataclasses.asdict(self)
        d["pyramid"] = list(self.pyramid)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        data = dict(data)
        if "pyramid" in data:
            data["pyramid"] = tuple(int(r) for r in data["pyramid"])
        return cls().replace(**data)

    def with_overrides(self, items: list[str]) -> Config:
        """Apply ``--set name=value`` overrides (values parsed to the parameter's type)."""
        if not items:
            return self
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for item in items:
            name, sep, text = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in fields or name == "extra":
                raise CryosamError(
                    f"--set {item!r}: expected NAME=VALUE with NAME one of the parameters "
                    "listed by 'cryosam params'"
                )
            current = getattr(self, name)
            try:
                if isinstance(current, bool):
                    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value: Any = text.lower() in ("true", "1", "yes")
                elif isinstance(current, int):
                    value = int(text)
                elif isinstance(current, float):
                    value = float(text)
                elif isinstance(current, tuple):
                    value = tuple(int(v) for v in text.split(","))
                else:
                    value = None if text.lower() in ("none", "") else text
            except ValueError:
                raise CryosamError(
                    f"--set {item!r}: {text!r} is not a valid {type(current).__name__}"
                ) from None
            changes[name] = value
        return self.replace(**changes)

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
        for name, default, text in Config.describe():
            if name == "extra":
                continue
            lines.append(f"| `{name}` | `{default}` | {' '.join(text.split())} |")
        return "\n".join(lines) + "\n"

    @staticmethod
    def describe() -> list[tuple[str, str, str]]:
        """(name, default, help) for every parameter, for docs and ``--help``."""
        import ast
        import inspect

        docs: dict[str, str] = {}
        tree = ast.parse(inspect.getsource(Config))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for prev, node in zip(body, body[1:]):
            if (
                isinstance(prev, ast.AnnAssign)
                and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
            ):
                docs[prev.target.id] = str(node.value.value)  # type: ignore[union-attr]
        default = Config()
        return [
            (f.name, repr(getattr(default, f.name)), docs.get(f.name, ""))
            for f in dataclasses.fields(Config)
        ]
