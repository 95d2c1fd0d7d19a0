"""The weight-free feature bank behind the encoder interface."""

from __future__ import annotations

import numpy as np

from cryosam.features import FeatureVolume, classical_features


class ClassicalEncoder:
    """Rotation-invariant multi-scale features sized from the diameter (no weights)."""

    name = "classical"

    def __init__(self, **_):
        pass

    def signature(self) -> dict:
        return {"name": self.name, "version": 1}

    def encode(self, volume: np.ndarray, diameter_px: float, progress=None) -> FeatureVolume:
        return classical_features(volume, diameter_px, progress)
