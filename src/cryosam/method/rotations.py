"""Rotation sampling shared by shape verification, orientations and the template-matching
baseline."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def rotation_grid(step_deg: float, full: bool = False) -> Rotation:
    """Roughly uniform rotations ~``step_deg`` apart (Fibonacci axes x in-plane angles).

    By default the axes cover the upper hemisphere only, half of all rotations: what shape
    verification samples (its score is what it has been measured with). ``full``: the
    whole sphere of axes, every rotation (for orientations)."""
    n_dir = max(1, int(round(4 * np.pi / np.deg2rad(step_deg) ** 2)))
    n_axes = 2 * n_dir if full else n_dir
    i = np.arange(n_axes) + 0.5
    polar = np.arccos(1 - 2 * i / (2 * n_dir))
    azim = np.pi * (1 + 5**0.5) * i
    n_psi = max(1, int(round(360.0 / step_deg)))
    psi = np.arange(n_psi) * 2 * np.pi / n_psi
    eul = np.array([(a, p, s) for a, p in zip(azim, polar) for s in psi])
    return Rotation.from_euler("ZYZ", eul)


def local_grid(step_deg: float, reach: int = 2) -> np.ndarray:
    """Small rotations around the identity: rotation vectors on a cubic grid ``step_deg``
    apart, ``reach`` steps each way, within the ball of that radius; ``(K, 3, 3)``."""
    k = np.arange(-reach, reach + 1)
    v = np.stack(np.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3).astype(np.float64)
    v = v[np.linalg.norm(v, axis=1) <= reach + 1e-9]
    return Rotation.from_rotvec(np.deg2rad(step_deg) * v).as_matrix()
