"""Estimates of what a run needs, shown before it starts."""

from __future__ import annotations

import numpy as np

BYTES_PER_VOXEL_RUN = 27
"""Upper end of the measured peak of ``cryosam pick`` (classical backends,
benchmarks/full_size_pick.py): 0.73-0.87 GB for 200 x 400 x 400 voxels (23-27 B/voxel) and 5.0 GB
for 300 x 1000 x 1000 (17 B/voxel): the standardised float32 copy, the segmenter's denoised
float32 copy, filter temporaries, label maps and features."""


def estimate_run_bytes(shape_zyx, input_is_mapped_float32: bool = True) -> int:
    """Rough peak memory of a pick run on a volume of ``shape_zyx`` voxels."""
    n = int(np.prod([int(s) for s in shape_zyx]))
    extra = 0 if input_is_mapped_float32 else 4
    return n * (BYTES_PER_VOXEL_RUN + extra)


def available_bytes() -> int | None:
    """Physical memory of this machine (None when the platform does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(shape_zyx, input_is_mapped_float32: bool = True) -> None:
    """Refuse, before any work, a run that needs more memory than the machine has."""
    from cryosam.errors import CryosamError

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
