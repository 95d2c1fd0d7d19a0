"""Estimates of what a run needs, shown before it starts."""

from __future__ import annotations

import os

import numpy as np

from cryosam.errors import CryosamError

BYTES_PER_VOXEL_RUN = 16
"""Upper end of the measured peak of ``cryosam pick`` with the weight-free backends
(benchmarks/full_size_pick.py): 4.2 GB for 300 x 1000 x 1000 voxels (14 B/voxel, of which
4 are the memory-mapped input's pages), after the prepared volume became a lazy view and
denoising moved to z-slabs (it was 17-27 B/voxel with full-resolution copies)."""
FIXED_RUN_BYTES = 600 * 2**20
"""Python, the libraries and small buffers: what a run needs whatever the volume."""


def estimate_run_bytes(shape_zyx, input_is_mapped_float32: bool = True) -> int:
    """Rough peak memory of a pick run on a volume of ``shape_zyx`` voxels."""
    n = int(np.prod([int(s) for s in shape_zyx]))
    extra = 0 if input_is_mapped_float32 else 4
    return FIXED_RUN_BYTES + n * (BYTES_PER_VOXEL_RUN + extra)


def available_bytes() -> int | None:
    """Physical memory of this machine (None when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(shape_zyx, input_is_mapped_float32: bool = True) -> None:
    """Refuse, before any work, a run that needs more memory than the machine has."""
    need = estimate_run_bytes(shape_zyx, input_is_mapped_float32)
    have = available_bytes()
    if have is not None and need > have:
        raise CryosamError(
            f"a run on {' x '.join(map(str, shape_zyx))} voxels needs about {human_bytes(need)} "
            f"but this machine has {human_bytes(have)}; bin or crop the tomogram, or use a "
            "larger machine"
        )


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024, as memory is usually quoted)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} TB"
