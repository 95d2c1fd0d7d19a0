"""Backends: promptable 2D segmenters and slice/volume encoders, behind small protocols.

Adding a backend touches one new module and one line of :data:`SEGMENTERS`.
"""

from __future__ import annotations

import importlib

from cryosam.errors import CryosamError
from cryosam.models.base import PromptableSegmenter, SliceResult

SEGMENTERS = {
    "classical": "cryosam.models.classical:ClassicalSegmenter",
    "sam": "cryosam.models.sam:SamSegmenter",
}


ENCODERS = {
    "classical": "cryosam.models.classical_encoder:ClassicalEncoder",
    "dinov2": "cryosam.models.dino:DinoSliceEncoder",
}


def _build(registry: dict, kind: str, name: str, **kwargs):
    if name not in registry:
        raise CryosamError(f"unknown {kind} {name!r}; choose one of {', '.join(registry)}")
    module, _, cls = registry[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


def make_encoder(name: str, **kwargs):
    """Build the encoder registered as ``name`` (``classical`` needs no weights)."""
    return _build(ENCODERS, "encoder", name, **kwargs)


def build_segmenter(config) -> PromptableSegmenter:
    """The segmenter a :class:`~cryosam.config.Config` asks for."""
    if config.segmenter == "classical":
        return make_segmenter("classical", config=config)
    return make_segmenter(config.segmenter, config=config, model=config.model, device=config.device)


def build_encoder(config):
    """The encoder a :class:`~cryosam.config.Config` asks for."""
    if config.encoder == "classical":
        return make_encoder("classical")
    return make_encoder(config.encoder, model=config.encoder_model, device=config.device)


def make_segmenter(name: str, **kwargs) -> PromptableSegmenter:
    """Build the segmenter registered as ``name`` (``classical`` needs no weights)."""
    return _build(SEGMENTERS, "segmenter", name, **kwargs)


__all__ = [
    "ENCODERS",
    "SEGMENTERS",
    "PromptableSegmenter",
    "SliceResult",
    "build_encoder",
    "build_segmenter",
    "make_encoder",
    "make_segmenter",
]
