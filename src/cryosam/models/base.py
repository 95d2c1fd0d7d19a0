"""The promptable-segmenter protocol used by cross-plane self-prompting.

A segmenter sees a prepared volume (protein bright, standardised) and answers
prompts on 2D slices of it. A slice is named by ``(axis, index)``: ``axis`` 0, 1
or 2 is the volume axis held fixed (z, y or x), and in-plane coordinates ``(u, v)``
are the two remaining axes in order (for axis 0: ``(y, x)``). Embeddings are
computed once per slice and reused across prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class SliceResult:
    """Answer of a segmenter on one window of one slice.

    Attributes:
        mask: bool ``(h, w)`` over the requested window.
        logits: float32 ``(h, w)``: > 0 inside; the next slice is prompted with them
            and with their arg-max inside the mask.
        score: predicted quality in [0, 1].
    """

    mask: np.ndarray
    logits: np.ndarray
    score: float


@runtime_checkable
class PromptableSegmenter(Protocol):
    """Embed slices once, then answer many point (and mask) prompts on them."""

    name: str

    def set_volume(self, volume: np.ndarray, diameter_px: float) -> None:
        """Attach the prepared ``(z, y, x)`` volume (protein bright) and the particle size."""

    def begin_instance(self, point_zyx: np.ndarray) -> None:
        """Called before propagating one instance from ``point_zyx``."""

    def segment(
        self,
        axis: int,
        index: int,
        window: tuple[slice, slice],
        points_uv: np.ndarray,
        labels: np.ndarray,
        mask_logits: np.ndarray | None = None,
    ) -> SliceResult:
        """Segment slice ``index`` of ``axis`` inside ``window``.

        Args:
            window: in-plane ``(u, v)`` slices; results cover exactly this window.
            points_uv: ``(N, 2)`` prompt points in window coordinates.
            labels: ``(N,)`` 1 = positive, 0 = negative.
            mask_logits: ``(h, w)`` logits of the previous slice over the same window.
        """
        ...


def take_slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2D slice ``index`` of ``axis`` of a ``(z, y, x)`` volume (a view)."""
    return np.take(volume, index, axis=axis) if axis else volume[index]
