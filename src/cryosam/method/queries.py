"""A class's query: what its prompted particles look like, in features and in shape.

The feature query is the centre-weighted masked average of the features over the prompted
instance masks (paper sec. 2.2); the shape reference (:mod:`cryosam.method.verify`) travels
with it, so a query made in one tomogram searches others (``cryosam batch``, copick).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from cryosam.errors import CryosamError
from cryosam.method.propagate import InstanceMask
from cryosam.method.verify import Reference
from cryosam.models.features import FeatureVolume


def encoder_identity(encoder) -> str:
    """``NAME@DIGEST``: the encoder's name and a digest of its full signature (model and its
    weights' hash, sizes, channels), the identity a query carries. Two encoders of one name
    (DINOv2 ViT-S and ViT-L, or other weights) make incomparable features."""
    sig = json.dumps(encoder.signature(), sort_keys=True, default=str)
    return f"{encoder.name}@{hashlib.sha256(sig.encode()).hexdigest()[:12]}"


def same_encoder(a: str, b: str) -> bool:
    """Whether two queries' encoder identities name the same encoder; a query written before
    identities carried a digest (name only) is compared by name."""
    if "@" in a and "@" in b:
        return a == b
    return a.split("@")[0] == b.split("@")[0]


@dataclass
class ClassQuery:
    """A class's query, to search other tomograms without prompts of their own.

    ``vector`` is in the feature space of one encoder (``encoder``, its
    :func:`encoder_identity`) at the user's
    diameter; ``ref_voxels`` is the prompted masks' median volume (for the size check)."""

    vector: np.ndarray
    diameter_px: float
    ref_voxels: float
    n_prompts: int
    inverted: bool
    encoder: str = ""
    reference: Reference | None = None

    def to_dict(self) -> dict:
        return {
            "vector": [round(float(v), 6) for v in self.vector],
            "diameter_px": self.diameter_px,
            "ref_voxels": self.ref_voxels,
            "n_prompts": self.n_prompts,
            "inverted": self.inverted,
            "encoder": self.encoder,
            "reference": self.reference.to_dict() if self.reference else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClassQuery:
        ref = d.get("reference")
        return cls(
            np.asarray(d["vector"], dtype=np.float32),
            float(d["diameter_px"]),
            float(d["ref_voxels"]),
            int(d["n_prompts"]),
            bool(d["inverted"]),
            str(d.get("encoder", "")),
            Reference.from_dict(ref) if ref else None,
        )

    @staticmethod
    def pool(queries: list[ClassQuery]) -> ClassQuery:
        """One query from several tomograms' (weighted by their numbers of prompts)."""
        w = np.array([max(q.n_prompts, 1) for q in queries], dtype=np.float64)
        vec = (np.stack([q.vector for q in queries]) * w[:, None]).sum(0) / w.sum()
        encoders = {q.encoder for q in queries}
        if not all(same_encoder(q.encoder, queries[0].encoder) for q in queries):
            raise CryosamError(
                f"queries from different encoders cannot be pooled: {sorted(encoders)}; "
                "prompt every tomogram with the same --encoder and --encoder-model"
            )
        refs = [q.reference for q in queries]
        return ClassQuery(
            vec.astype(np.float32),
            float(np.average([q.diameter_px for q in queries], weights=w)),
            float(np.median([q.ref_voxels for q in queries])),
            int(sum(q.n_prompts for q in queries)),
            bool(np.average([q.inverted for q in queries], weights=w) >= 0.5),
            max(encoders, key=lambda e: "@" in e),
            Reference.pool(refs) if all(refs) else None,
        )


def class_diameter(masks: list[InstanceMask], user_px: float, tolerance: float) -> float:
    """Particle size from prompted masks (largest box extent), kept within ``tolerance``
    (a fraction) of the user's diameter."""
    extents = [max(np.ptp(np.argwhere(m.mask), axis=0)) + 1 for m in masks if not m.empty]
    if not extents:
        return user_px
    est = float(np.median(extents))
    return float(np.clip(est, (1 - tolerance) * user_px, (1 + tolerance) * user_px))


def pooled_features(features: FeatureVolume, masks, points) -> np.ndarray:
    """Mean over prompts of the masked average of the features (a prompt without a mask
    contributes the features at its point)."""
    vecs = []
    for m, p in zip(masks, points):
        if m is not None and not m.empty:
            vecs.append(features.pool(m.mask, m.offset))
        else:
            vecs.append(features.sample([p])[0])
    return np.mean(vecs, axis=0)


def own_query(
    features: FeatureVolume, masks, points, d: float, inverted: bool, encoder: str
) -> ClassQuery:
    """The :class:`ClassQuery` of one class from its prompted masks in this tomogram."""
    ref_voxels = float(np.median([m.voxels for m in masks if not m.empty] or [0]))
    q = pooled_features(features, masks, points).astype(np.float32)
    return ClassQuery(q, d, ref_voxels, len(masks), inverted, encoder)
