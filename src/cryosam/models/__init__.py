"""Backends: promptable 2D segmenters and slice/volume encoders, behind small protocols.

Adding a backend touches one new module and one line of :data:`SEGMENTERS`.
"""

from __future__ import annotations

from cryosam.errors import CryosamError
from cryosam.models.base import PromptableSegmenter, SliceResult

SEGMENTERS = {
    "classical": "cryosam.models.classical:ClassicalSegmenter",
    "sam": "cryosam.models.sam:SamSegmenter",
}


def make_segmenter(name: str, **kwargs) -> PromptableSegmenter:
    """Build the segmenter registered as ``name`` (``classical`` needs no weights)."""
    import importlib

    if name not in SEGMENTERS:
        raise CryosamError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")
    module, _, cls = SEGMENTERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["SEGMENTERS", "PromptableSegmenter", "SliceResult", "make_segmenter"]
