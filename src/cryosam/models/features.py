"""The feature volume every encoder returns, and the grid it lives on.

Encoders (:mod:`cryosam.models`) embed a prepared tomogram into per-cell feature vectors on a
grid ``stride`` times coarser than the input, with each channel standardised over the
tomogram, so cosine similarities, and ``tau_sim``, mean the same in every tomogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryosam.errors import CryosamError

CELLS_PER_DIAMETER = 8.0
"""The feature grid is binned so one particle diameter spans about this many cells."""


@dataclass
class FeatureVolume:
    """Per-voxel features on a grid ``stride`` times coarser than the input.

    Attributes:
        data: ``(C, z, y, x)`` float16, standardised per channel.
        stride: input voxels per feature cell along each axis.
        names: channel names.
        input_shape: shape of the input volume.
    """

    data: np.ndarray
    stride: int
    names: list[str]
    input_shape: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[1:])  # type: ignore[return-value]

    def to_grid(self, zyx) -> np.ndarray:
        """Input voxel coordinates -> feature grid coordinates (float)."""
        return (np.asarray(zyx, dtype=np.float64) - (self.stride - 1) / 2.0) / self.stride

    def to_input(self, grid_zyx) -> np.ndarray:
        """Feature grid coordinates -> input voxel coordinates."""
        return np.asarray(grid_zyx, dtype=np.float64) * self.stride + (self.stride - 1) / 2.0

    def sample(self, zyx) -> np.ndarray:
        """Features at input positions ``(N, 3)`` (nearest cell) -> ``(N, C)`` float32."""
        g = np.round(self.to_grid(np.asarray(zyx).reshape(-1, 3))).astype(int)
        g = np.clip(g, 0, np.asarray(self.shape) - 1)
        return self.data[:, g[:, 0], g[:, 1], g[:, 2]].T.astype(np.float32)

    def pool(self, mask: np.ndarray, offset, centre_weighted: bool = True) -> np.ndarray:
        """Masked average of the features over an instance mask given in input voxels.

        Args:
            mask: bool mask over a box of the input; ``offset`` is the box corner.
            centre_weighted: weight cells by their depth inside the mask (distance to
                its edge), so the descriptor is dominated by the particle's centre.
        """
        idx = np.argwhere(mask) + np.asarray(offset)
        if len(idx) == 0:
            raise CryosamError("cannot pool features over an empty mask")
        weights = np.ones(len(idx))
        if centre_weighted:
            depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
            weights = depth[mask] ** 2
        cells = np.clip(idx // self.stride, 0, np.asarray(self.shape) - 1)
        flat = np.ravel_multi_index(cells.T, self.shape)
        uniq, inv = np.unique(flat, return_inverse=True)
        w = np.bincount(inv, weights=weights)
        g = np.unravel_index(uniq, self.shape)
        feats = self.data[:, g[0], g[1], g[2]].astype(np.float64)
        return (feats * w).sum(axis=1) / w.sum()


def feature_stride(diameter_px: float) -> int:
    """Binning that makes one diameter about :data:`CELLS_PER_DIAMETER` cells."""
    return max(1, int(round(diameter_px / CELLS_PER_DIAMETER)))
