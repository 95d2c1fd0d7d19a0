"""Preparing a tomogram for the segmenters and encoders: contrast and scale.

Inside cryosam protein is bright and the volume is standardised (mean 0, std 1,
estimated on a subsample), whatever the file's contrast and units. The prepared
volume is a lazy view (:class:`PreparedVolume`): each block is standardised when it is
read, so no full-resolution float32 copy of a large tomogram is ever made by the
weight-free path (``np.asarray`` still gives the whole array to those that need it).
"""

from __future__ import annotations

import numpy as np

from cryosam.errors import CryosamError
from cryosam.volume.contrast import ContrastReading, read_contrast, resolve_invert
from cryosam.volume.spectrum import balance_spectrum, is_lifted, low_excess


def _moments(volume) -> tuple[float, float]:
    """Mean and standard deviation from a regular subsample (~4 M voxels)."""
    size = int(np.prod(volume.shape))
    step = max(1, int(round((size / 4e6) ** (1 / 3))))
    sample = np.asarray(volume[::step, ::step, ::step], dtype=np.float64)
    mean, std = float(sample.mean()), float(sample.std())
    if std == 0 or not np.isfinite(std):
        raise CryosamError("the volume is constant; there is nothing to segment")
    return mean, std


class PreparedVolume:
    """A standardised, protein-bright view of a volume, computed block by block.

    ``view[key]`` returns float32 ``(raw[key] - mean) / std`` (negated when inverted), the
    same numbers :func:`standardise` gives for the whole volume; voxels :meth:`erase` was
    given read as 0 (the mean: gold fiducials, see :mod:`cryosam.volume.fiducials`)."""

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, raw: np.ndarray, invert: bool):
        self.raw = raw
        self.invert = bool(invert)
        self.mean, self.std = _moments(raw)
        self.shape = tuple(int(s) for s in raw.shape)
        self.size = int(np.prod(self.shape))
        self.erased: np.ndarray | None = None
        self.reading: ContrastReading | None = None  # what ``--invert auto`` read
        self.balanced = False  # the low frequencies turned down (see ``prepare_volume``)
        self.low_excess: float | None = None  # what ``low_excess`` read on the input

    def erase(self, zyx: np.ndarray) -> None:
        """From now on the voxels ``zyx`` (``(N, 3)`` indices) read as 0."""
        if not len(zyx):
            return
        if self.erased is None:
            self.erased = np.zeros(self.shape, bool)
        self.erased[tuple(np.asarray(zyx, int).T)] = True

    def __getitem__(self, key) -> np.ndarray:
        block = np.asarray(self.raw[key], dtype=np.float32)
        out = (block - np.float32(self.mean)) / np.float32(self.std)
        out = -out if self.invert else out
        if self.erased is not None:
            erased = self.erased[key]
            if np.ndim(out) == 0:  # one voxel
                return np.float32(0.0) if erased else out
            out[erased] = 0.0
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        full = self[...]
        return full if dtype is None else full.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.shape[0]


def standardise(volume: np.ndarray, invert: bool) -> np.ndarray:
    """float32 copy with mean 0 and std 1 (negated when ``invert``)."""
    return PreparedVolume(np.asarray(volume, dtype=np.float32), invert)[...]


def asked_balance(balance: str) -> str:
    """``balance_spectrum`` where only a user's ``yes`` balances (``segment`` and
    ``--extended``: a membrane or a large particle lives in the low band)."""
    return "yes" if balance == "yes" else "no"


def lifted_warning(view: PreparedVolume) -> str | None:
    """A warning for a tomogram whose low band stands lifted and was not balanced."""
    if view.balanced or not is_lifted(view.low_excess):
        return None
    return (
        f"the tomogram's low frequencies stand {view.low_excess:.1f} decades above its mid "
        "band, as a deconvolution (Warp, IsoNet) leaves them: smaller particles in broad "
        "halos can pass the shape check; --set balance_spectrum=auto turns them down "
        "(README, 'A deconvolved tomogram')"
    )


def prepare_volume(
    volume: np.ndarray,
    invert: str,
    diameter_px: float,
    points_zyx=None,
    skewness: bool = False,
    balance: str = "no",
) -> tuple[PreparedVolume, bool]:
    """Standardised volume with bright protein (a lazy view), and whether it was inverted.

    With ``invert="auto"`` the view's ``reading`` keeps what the contrast test read; with
    ``skewness`` it also holds the volume's skewness, so
    :func:`~cryosam.volume.contrast.contrast_doubt` needs no second reading. With ``balance``
    ``yes``, or ``auto`` where the volume's spectrum
    :func:`~cryosam.volume.spectrum.is_lifted`, the view reads a copy with its low
    frequencies turned down (:func:`~cryosam.volume.spectrum.balance_spectrum`; the
    contrast is read first, on the volume as given) and ``balanced`` is true;
    ``low_excess`` keeps the reading."""
    if invert != "auto":
        dark, reading = resolve_invert(invert, volume), None
    else:
        reading = read_contrast(volume, diameter_px, points_zyx, skewness)
        dark = reading.dark
    excess = low_excess(volume)
    balanced = balance == "yes" or (balance == "auto" and is_lifted(excess))
    view = PreparedVolume(balance_spectrum(volume) if balanced else volume, dark)
    view.reading, view.balanced, view.low_excess = reading, balanced, excess
    return view, view.invert
