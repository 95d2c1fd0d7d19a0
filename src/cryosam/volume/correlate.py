"""Locally normalised cross-correlation under a mask, by FFT: the one implementation that
shape verification (boxes around candidates) and the template-matching baseline (a whole
tomogram) share."""

from __future__ import annotations

import numpy as np
from scipy import fft

FLOOR = 1e-9
"""Least masked variance sum a correlation is divided by (flat regions score 0, not inf)."""


class MaskedCorrelation:
    """Pearson correlation, at every offset, of templates under one ``mask`` with ``data``.

    The correlation is circular over ``shape`` (per axis): offset ``k`` puts the template's
    first corner at ``k``; with ``centred`` the maps are indexed by the template's centre
    instead (``shape`` must then be at least data + template - 1, a linear correlation with
    zero outside the data). ``crop`` selects the part of each map to keep.

    Args:
        data: ``(..., z, y, x)`` float32: one volume or a batch of boxes.
        mask: ``(n, n, n)`` weights in [0, 1].
        shape: FFT size per spatial axis.
    """

    def __init__(self, data: np.ndarray, mask: np.ndarray, shape, crop=..., centred=False):
        self.shape = tuple(int(s) for s in shape)
        self.axes = tuple(range(data.ndim - 3, data.ndim))
        self.crop = crop
        self.shift = tuple(s // 2 for s in mask.shape) if centred else None
        self.fp = fft.rfftn(data, self.shape, axes=self.axes, workers=-1)
        fp2 = fft.rfftn(data * data, self.shape, axes=self.axes, workers=-1)
        fm = np.conj(fft.rfftn(mask, self.shape))
        s1 = self._map(self.fp * fm)
        s2 = self._map(fp2 * fm)
        self.norm = np.sqrt(np.maximum(s2 - s1 * s1 / mask.sum(), FLOOR))

    def _map(self, product: np.ndarray) -> np.ndarray:
        full = fft.irfftn(product, self.shape, axes=self.axes, workers=-1)
        if self.shift is not None:
            full = np.roll(full, self.shift, axis=self.axes)
        return full[self.crop]

    def __call__(self, template: np.ndarray) -> np.ndarray:
        """The correlation map of ``template`` (zero mean and unit norm under the mask, zero
        outside it)."""
        ft = np.conj(fft.rfftn(template, self.shape))
        return self._map(self.fp * ft) / self.norm


def normalise_template(template: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero mean and unit norm under a binary ``mask``, zero outside (float32)."""
    sel = mask > 0
    t = np.where(sel, template - template[sel].mean(), 0.0).astype(np.float32)
    t /= max(float(np.linalg.norm(t)), 1e-12)
    return t
