"""Estimates of what a run needs, shown before it starts."""

from __future__ import annotations

import numpy as np

BYTES_PER_VOXEL_RUN = 4 + 4 + 2 + 1 + 8
"""float32 working copy + float32 filtered copy + uint16 instances + uint8 semantic
+ classical features (32 channels, float16, at half resolution per axis = 8 B/voxel)."""


def estimate_run_bytes(shape_zyx, input_is_mapped_float32: bool = True) -> int:
    """Rough peak memory of a pick run on a volume of ``shape_zyx`` voxels."""
    n = int(np.prod([int(s) for s in shape_zyx]))
    extra = 0 if input_is_mapped_float32 else 4
    return n * (BYTES_PER_VOXEL_RUN + extra)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024, as memory is usually quoted)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} TB"
