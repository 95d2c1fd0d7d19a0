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
    combine: Combine = "union"
    """How the three propagated stacks are merged: 'union' (paper) or majority 'vote'."""
    max_extent_factor: float = 1.5
    """Propagation never goes further than this many diameters from the prompt."""

    # --- Hierarchical Feature Matching (paper sec. 2.3) ---
    tau_sim: float = 0.5
    """Cosine-similarity threshold on standardised features at every pyramid level."""
    pyramid: tuple[int, ...] = (16, 8, 4)
    """Down-sampling ratios, coarse to fine."""
    top_k: int = 512
    """At most this many matches become prompts for segmentation."""
    nms_radius_factor: float = 0.5
    """3D non-maximum suppression radius, in diameters."""

    # --- input handling ---
    invert: Invert = "auto"
    """Contrast: 'yes' when protein is dark (raw tomograms), 'no' when bright, 'auto' detects."""
    seed: int = 0
    """Seed for every random choice, so runs are reproducible."""

    # --- backends ---
    segmenter: str = "classical"
    encoder: str = "classical"
    model: str | None = None
    encoder_model: str | None = None
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
        if self.top_k < 1:
            problems.append(f"top_k must be >= 1, got {self.top_k}")
        if not self.propagation_axes or set(self.propagation_axes) - set("zyx"):
            problems.append(
                f"propagation_axes must be letters from 'zyx', got {self.propagation_axes!r}"
            )
        if self.combine not in ("union", "vote"):
            problems.append(f"combine must be 'union' or 'vote', got {self.combine!r}")
        if self.invert not in ("auto", "yes", "no"):
            problems.append(f"invert must be auto, yes or no, got {self.invert!r}")
        if self.max_extent_factor <= 0 or self.nms_radius_factor <= 0:
            problems.append("max_extent_factor and nms_radius_factor must be positive")
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
