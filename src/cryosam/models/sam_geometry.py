"""SAM's resize-and-pad (and SAM 2's plain square resize), both ways, for points and masks.

SAM resizes an ``(H, W)`` image so its longest side is ``size`` (1024 for the
released models): ``new = int(old * size / max(H, W) + 0.5)``, then pads bottom
and right to ``size x size``. Its low-resolution mask logits cover the padded
square at ``size / 4``. Non-square slices are where the reference code slips;
these functions are the only place that mapping lives, and the tests check it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cryosam.volume.resample import resize_2d


def resized_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """Shape of the resized image before padding."""
    scale = size / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def points_to_sam(points_uv: np.ndarray, h: int, w: int, size: int) -> np.ndarray:
    """``(N, 2)`` row/column pixel coordinates -> SAM's ``(x, y)`` in the resized image.

    Pixel centres map onto pixel centres (the half-pixel convention the resampling
    uses): ``x' = (x + 0.5) * new / old - 0.5``. SAM's own ``coords * new / old``
    is off by half an upscaled pixel, 5 pixels of 1024 for a 91-pixel slice.
    """
    nh, nw = resized_shape(h, w, size)
    pts = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2)
    return np.stack([(pts[:, 1] + 0.5) * nw / w - 0.5, (pts[:, 0] + 0.5) * nh / h - 0.5], axis=1)


def lowres_to_image(lowres: np.ndarray, h: int, w: int, size: int) -> np.ndarray:
    """SAM low-res logits ``(size/4, size/4)`` -> logits over the original ``(h, w)`` image."""
    nh, nw = resized_shape(h, w, size)
    full = resize_2d(np.asarray(lowres, np.float32), (size, size))
    return resize_2d(full[:nh, :nw], (h, w))


def image_to_lowres(logits: np.ndarray, h: int, w: int, size: int, lowres: int) -> np.ndarray:
    """Logits over ``(h, w)`` -> SAM's low-res mask input over the padded square."""
    nh, nw = resized_shape(h, w, size)
    resized = resize_2d(np.asarray(logits, np.float32), (nh, nw))
    padded = np.full((size, size), float(np.min(logits)) if logits.size else -20.0, np.float32)
    padded[:nh, :nw] = resized
    return resize_2d(padded, (lowres, lowres))


def to_sam_pixels(image: np.ndarray, size: int, window: tuple[float, float]) -> np.ndarray:
    """Single-channel slice -> SAM's normalised ``(3, size, size)`` input (float32).

    Intensities are mapped linearly from ``window = (lo, hi)`` to [0, 1] (clipped),
    replicated to three channels, normalised with ImageNet mean/std as SAM's
    processor does, resized (longest side ``size``) and zero-padded.
    """
    h, w = image.shape
    lo, hi = window
    x = np.clip((np.asarray(image, np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
    nh, nw = resized_shape(h, w, size)
    x = resize_2d(ndimage.gaussian_filter(x, max(0.0, 0.5 * (max(h, w) / size - 1))), (nh, nw))
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    out = np.zeros((3, size, size), np.float32)
    out[:, :nh, :nw] = (x[None] - mean) / std
    return out


# --- SAM 2 / EdgeTAM: the slice is resized to a size x size square, no padding ---------


def points_to_sam2(points_uv: np.ndarray, h: int, w: int, size: int) -> np.ndarray:
    """``(N, 2)`` row/column pixels -> SAM 2's ``(x, y)`` on its ``size`` square (pixel
    centres onto pixel centres, as :func:`points_to_sam`)."""
    pts = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2)
    return np.stack(
        [(pts[:, 1] + 0.5) * size / w - 0.5, (pts[:, 0] + 0.5) * size / h - 0.5], axis=1
    )


def to_sam2_pixels(image: np.ndarray, size: int, window: tuple[float, float]) -> np.ndarray:
    """Single-channel slice -> SAM 2's ``(3, size, size)`` input: window to [0, 1], three
    channels, ImageNet mean/std, resized to the square (anti-aliased when shrinking)."""
    h, w = image.shape
    lo, hi = window
    x = np.clip((np.asarray(image, np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
    x = resize_2d(ndimage.gaussian_filter(x, max(0.0, 0.5 * (max(h, w) / size - 1))), (size, size))
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    return ((x[None] - mean) / std).astype(np.float32)
