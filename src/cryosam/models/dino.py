"""DINOv2 (and DINO) slice encoders through ``transformers``: tri-view feature volumes.

Every view (z, y and x) is cut into slabs one feature cell thick; each slab's mean
image is resized so one 14-pixel patch covers one feature cell, so the patch grid
lands exactly on the feature grid and resolves the particle (about eight cells per
diameter). Patch tokens of the three views are projected to a fixed number of
channels with a seeded random orthogonal projection (cosines are preserved
approximately, memory stays bounded, no second pass), concatenated per cell and
standardised, as the classical bank is. Slices go through the model in batches, in
half precision on a GPU.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from cryosam.io.checksums import sha256_file
from cryosam.models.features import FeatureVolume, feature_stride
from cryosam.models.loading import (
    auto_batch_size,
    gpu_errors,
    half_dtype,
    load_pretrained,
    pick_device,
    require_torch,
)
from cryosam.models.registry import resolve, weight_files
from cryosam.volume.resample import resize_2d

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


class DinoSliceEncoder:
    """Tri-view DINOv2/DINO features for hierarchical matching."""

    name = "dinov2"

    def __init__(
        self,
        model=None,
        device: str = "auto",
        batch_size: int | None = None,
        channels_per_view: int = 64,
        model_object=None,
    ):
        torch, transformers = require_torch()
        self.torch = torch
        self.device = pick_device(device)
        self.dtype = half_dtype(self.device)
        if model_object is None:
            model_object = load_pretrained(transformers.AutoModel, model, "DINO model")
        self.model = model_object.to(self.device, dtype=self.dtype).eval()
        patch = self.model.config.patch_size
        self.patch = int(patch if np.isscalar(patch) else patch[0])
        self.hidden = int(self.model.config.hidden_size)
        # activations of one image: tokens x hidden x layers x a safety factor, 2 bytes each
        per_image = 4096 * self.hidden * self.model.config.num_hidden_layers * 2 * 8
        self.batch_size = batch_size or auto_batch_size(self.device, per_image)
        self.k = min(channels_per_view, self.hidden)
        rng = np.random.default_rng(0)
        q, _ = np.linalg.qr(rng.normal(size=(self.hidden, self.k)))
        self.projection = q.astype(np.float32)
        self.model_id = _model_identity(model)
        # ViT (DINO v1) needs to be told to interpolate its position embeddings; DINOv2 does it
        params = inspect.signature(self.model.forward).parameters
        self.forward_kwargs = (
            {"interpolate_pos_encoding": True} if ("interpolate_pos_encoding" in params) else {}
        )

    def signature(self) -> dict:
        return {
            "name": self.name,
            "model": self.model_id,
            "hidden": self.hidden,
            "patch": self.patch,
            "k": self.k,
        }

    def _embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Patch tokens of same-shaped images ``(h*p, w*p)`` -> ``(N, h, w, k)``."""
        torch = self.torch
        h, w = images[0].shape[0] // self.patch, images[0].shape[1] // self.patch
        x = np.stack([(np.repeat(im[None], 3, 0) - IMAGENET_MEAN) / IMAGENET_STD for im in images])
        t = torch.from_numpy(x.astype(np.float32)).to(self.device, dtype=self.dtype)
        with torch.inference_mode(), gpu_errors("DINO encoder"):
            tokens = self.model(pixel_values=t, **self.forward_kwargs).last_hidden_state
        n_extra = tokens.shape[1] - h * w  # CLS and register tokens come first
        patches = tokens[:, n_extra:, :].float().cpu().numpy()
        return (patches @ self.projection).reshape(len(images), h, w, self.k)

    def encode(self, volume: np.ndarray, diameter_px: float, progress=None) -> FeatureVolume:
        """Tri-view features of a prepared (protein bright) volume."""
        s = feature_stride(diameter_px)
        vol = np.asarray(volume, np.float32)
        grid = tuple(n // s for n in vol.shape)
        vol = vol[: grid[0] * s, : grid[1] * s, : grid[2] * s]
        step = max(1, int(round((vol.size / 4e6) ** (1 / 3))))
        lo, hi = np.percentile(-vol[::step, ::step, ::step], [0.5, 99.5])
        views = []
        for axis in range(3):
            other = [a for a in range(3) if a != axis]
            out = np.zeros((grid[axis], grid[other[0]], grid[other[1]], self.k), np.float32)
            images, where = [], []
            for i in range(grid[axis]):
                slab = np.take(vol, np.arange(i * s, (i + 1) * s), axis=axis).mean(axis=axis)
                img = np.clip((-slab - lo) / max(hi - lo, 1e-6), 0, 1)  # protein dark
                size = (grid[other[0]] * self.patch, grid[other[1]] * self.patch)
                images.append(resize_2d(img, size))
                where.append(i)
                if len(images) == self.batch_size or i == grid[axis] - 1:
                    out[where] = self._embed(images)
                    images, where = [], []
            views.append(np.moveaxis(out, 0, axis))  # back to (z, y, x, k)
            if progress:
                progress(f"{'zyx'[axis]} view encoded")
        feats = np.concatenate(views, axis=-1)
        data = np.empty((feats.shape[-1],) + grid, dtype=np.float16)
        for c in range(feats.shape[-1]):
            ch = feats[..., c]
            sd = float(ch.std())
            data[c] = (ch - float(ch.mean())) / (sd if sd > 0 else 1.0)
        names = [f"{v}_{c}" for v in "zyx" for c in range(self.k)]
        return FeatureVolume(data, s, names, tuple(volume.shape))


_WEIGHT_HASHES: dict[tuple, str] = {}
"""sha256 of weight files already hashed in this process, by (path, size, mtime)."""


def _weights_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _WEIGHT_HASHES:
        _WEIGHT_HASHES[key] = sha256_file(path)
    return _WEIGHT_HASHES[key]


def _model_identity(model) -> str:
    """Name plus the sha256 of each weight file, so other weights (another size of the same
    family, a re-download, a fine-tune saved over the old folder) never meet old features or
    queries: a file's size and time do not tell two checkpoints apart."""
    try:
        where = Path(resolve(model)) if model is not None else None
    except Exception:
        where = None
    if where is None or not where.exists():
        return str(model)
    stamps = [f"{p.name}:{_weights_sha256(p)[:16]}" for p in weight_files(where)]
    return f"{model}|{'|'.join(stamps)}"


def tiny_dinov2_config():
    """A very small random DINOv2 configuration (tests and timing scaffolds)."""
    _, transformers = require_torch()
    return transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
    )
