"""Rotation sampling shared by shape verification and the template-matching baseline."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def rotation_grid(step_deg: float) -> Rotation:
    """Roughly uniform rotations ~``step_deg`` apart (Fibonacci axes x in-plane angles)."""
    n_dir = max(1, int(round(4 * np.pi / np.deg2rad(step_deg) ** 2)))
    i = np.arange(n_dir) + 0.5
    polar = np.arccos(1 - 2 * i / (2 * n_dir))  # upper hemisphere is enough with full psi
    azim = np.pi * (1 + 5**0.5) * i
    n_psi = max(1, int(round(360.0 / step_deg)))
    psi = np.arange(n_psi) * 2 * np.pi / n_psi
    eul = np.array([(a, p, s) for a, p in zip(azim, polar) for s in psi])
    return Rotation.from_euler("ZYZ", eul)
