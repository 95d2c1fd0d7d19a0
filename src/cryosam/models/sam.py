"""SAM-family promptable segmenter through ``transformers``: SAM (SamModel), SAM-HQ
(SamHQModel), SAM 2.1 (Sam2Model) and EdgeTAM (EdgeTamModel), in image mode.

The class comes from the checkpoint's ``config.json`` ``model_type`` (``sam``, ``sam_hq``,
``sam2``, ``edgetam``), else from a hub id's name. SAM and SAM-HQ resize the longest side
and pad; SAM 2 and EdgeTAM resize the slice to their square input.

Slices are embedded once (LRU cache keyed by axis and index) and answered with
point prompts plus, when propagating, the previous slice's mask as low-res logits.
Intensities map through a percentile window of the whole volume; protein is shown
dark, as in the raw tomogram slices the paper feeds to SAM. Points and logits go
through SAM's resize-and-pad with :mod:`cryosam.models.sam_geometry`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.models.base import SliceResult, take_slice
from cryosam.models.loading import (
    auto_batch_size,
    gpu_errors,
    half_dtype,
    load_pretrained,
    pick_device,
    require_torch,
)
from cryosam.models.registry import resolve
from cryosam.models.sam_geometry import (
    image_to_lowres,
    lowres_to_image,
    points_to_sam,
    points_to_sam2,
    to_sam2_pixels,
    to_sam_pixels,
)
from cryosam.volume.resample import resize_2d

_LOGIT_FLOOR = -20.0


class SamSegmenter:
    """:class:`~cryosam.models.base.PromptableSegmenter` backed by a SAM checkpoint."""

    name = "sam"

    def __init__(
        self,
        config: Config | None = None,
        model: str | None = None,
        device: str = "auto",
        cache_slices: int = 512,
        model_object=None,
    ):
        torch, transformers = require_torch()
        self.config = config or Config()
        self.torch = torch
        self.device = pick_device(device)
        self.dtype = half_dtype(self.device)
        if model_object is None:
            model_object = load_pretrained(_model_class(model), model, "SAM model")
        self.model = model_object.to(self.device, dtype=self.dtype).eval()
        self.square = self.model.config.model_type in SQUARE_FAMILIES
        self.size = _input_size(self.model.config)
        self.cache: OrderedDict = OrderedDict()
        self.cache_slices = cache_slices
        # slices embedded per encoder call: the neighbours that propagation visits next
        # (1 on CPU, where batching gains nothing; from free memory on a GPU, at most 8:
        # on an H200 one ViT-H slice takes 38 ms alone, and 64 at once peaked at 73 GB)
        per_slice = 3 * self.size * self.size * 4 * 64  # input plus activations, generous
        self.batch = (
            1 if self.device.type == "cpu" else auto_batch_size(self.device, per_slice, cap=8)
        )
        self.volume = None
        self.window = (0.0, 1.0)
        self.diameter_px = 10.0
        self.lowres = None

    def signature(self) -> dict:
        return {"name": self.name, "model": str(self.config.model), "size": self.size}

    def set_volume(self, volume: np.ndarray, diameter_px: float) -> None:
        if self.volume is not volume:
            self.cache.clear()
            shown = -np.asarray(volume, np.float32)  # protein dark, as in raw slices
            step = max(1, int(round((shown.size / 4e6) ** (1 / 3))))
            lo, hi = np.percentile(shown[::step, ::step, ::step], [0.5, 99.5])
            self.window = (float(lo), float(hi))
            self.volume = volume
            self._shown = shown
        self.diameter_px = float(diameter_px)

    def begin_instance(self, point_zyx: np.ndarray) -> None:
        return None

    def embedding(self, axis: int, index: int):
        """Image embedding of one slice (cached). A miss embeds a batch of the slices
        around it in one encoder call, since propagation walks to the neighbours next."""
        key = (axis, index)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        n = self._shown.shape[axis]
        if not 0 <= index < n:
            raise IndexError(f"slice {index} outside 0..{n - 1} along axis {axis}")
        half = self.batch // 2
        lo = max(0, min(index - half, n - self.batch))
        todo = [i for i in range(lo, min(n, lo + self.batch)) if (axis, i) not in self.cache]
        to_pixels = to_sam2_pixels if self.square else to_sam_pixels
        pixels = np.stack(
            [to_pixels(take_slice(self._shown, axis, i), self.size, self.window) for i in todo]
        )
        t = self.torch.from_numpy(pixels).to(self.device, dtype=self.dtype)
        with self.torch.inference_mode(), gpu_errors("SAM image encoder"):
            emb = self.model.get_image_embeddings(t)
        for k, i in enumerate(todo):
            self.cache[(axis, i)] = _item(emb, k)
        while len(self.cache) > self.cache_slices:
            self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        return self.cache[key]

    def segment(self, axis, index, window, points_uv, labels, mask_logits=None) -> SliceResult:
        torch = self.torch
        full_shape = take_slice(self._shown, axis, index).shape
        h, w = full_shape
        off = np.array([window[0].start or 0, window[1].start or 0], dtype=np.float64)
        pts = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2) + off
        xy = (points_to_sam2 if self.square else points_to_sam)(pts, h, w, self.size)
        emb = self.embedding(axis, index)
        kwargs = {}
        if isinstance(emb, tuple):  # SAM-HQ also returns the ViT's intermediate embeddings
            emb, intermediate = emb
            kwargs["intermediate_embeddings"] = intermediate
        kwargs |= {
            "image_embeddings": emb,
            "input_points": torch.tensor(xy[None, None], dtype=self.dtype, device=self.device),
            "input_labels": torch.tensor(np.asarray(labels)[None, None], device=self.device),
        }
        lowres_size = self.size // 4
        if mask_logits is not None:
            full = np.full(full_shape, _LOGIT_FLOOR, np.float32)
            full[window] = mask_logits
            if self.square:
                low = resize_2d(full, (lowres_size, lowres_size))
            else:
                low = image_to_lowres(full, h, w, self.size, lowres_size)
            kwargs["input_masks"] = torch.tensor(
                low[None, None], dtype=self.dtype, device=self.device
            )
        with torch.inference_mode(), gpu_errors("SAM mask decoder"):
            out = self.model(**kwargs, multimask_output=mask_logits is None)
        masks = out.pred_masks[0, 0].float().cpu().numpy()  # (n_masks, lowres, lowres)
        ious = out.iou_scores[0, 0].float().cpu().numpy()
        choice = self._choose(masks, ious, h, w)
        if self.square:
            logits = resize_2d(masks[choice], (h, w))[window]
        else:
            logits = lowres_to_image(masks[choice], h, w, self.size)[window]
        return SliceResult(logits > 0, logits, float(np.clip(ious[choice], 0, 1)))

    def _choose(self, masks: np.ndarray, ious: np.ndarray, h: int, w: int) -> int:
        """Best-scored candidate whose area fits the particle size (else the smallest)."""
        if len(masks) == 1:
            return 0
        scale = (h * w) / (masks.shape[-1] ** 2)
        areas = (masks > 0).sum(axis=(1, 2)) * scale
        fits = areas <= np.pi * (0.5 * self.config.max_area_factor * self.diameter_px) ** 2
        if fits.any():
            return int(np.argmax(np.where(fits, ious, -np.inf)))
        return int(np.argmin(areas))


def _item(emb, k: int):
    """The ``k``-th slice of a batched embedding (a tensor, a tuple for SAM-HQ or a list of
    levels for SAM 2), keeping its batch dimension."""
    if isinstance(emb, (list, tuple)):
        return type(emb)(_item(e, k) for e in emb)
    return emb[k : k + 1]


SQUARE_FAMILIES = ("sam2", "edgetam")
"""model_type values whose input is the slice resized to a square (no padding)."""


def _input_size(cfg) -> int:
    """The model's square input size from its config (SAM: vision; SAM 2: prompt encoder)."""
    pcfg = getattr(cfg, "prompt_encoder_config", None)
    if pcfg is not None and getattr(pcfg, "image_size", None):
        return int(pcfg.image_size)
    size = cfg.vision_config.image_size
    return int(size if np.isscalar(size) else size[0])


def _model_class(model):
    """The transformers class of a checkpoint, from its config.json ``model_type`` (else
    from the hub id's name): SamHQModel, Sam2Model, EdgeTamModel or SamModel."""
    _, transformers = require_torch()
    kind = ""
    try:
        where = Path(resolve(model)) if model is not None else None
        if where is not None and (where / "config.json").exists():
            kind = json.loads((where / "config.json").read_text()).get("model_type", "")
    except Exception:
        kind = ""
    name = str(model or "").lower()
    if not kind:
        kind = (
            "sam_hq"
            if "hq" in name
            else "sam2"
            if "sam2" in name
            else "edgetam"
            if "edgetam" in name
            else "sam"
        )
    classes = {"sam_hq": "SamHQModel", "sam2": "Sam2Model", "edgetam": "EdgeTamModel"}
    return getattr(transformers, classes.get(kind, "SamModel"))


def tiny_sam_config(image_size: int = 256):
    """A very small random SAM configuration (for tests and timing scaffolds)."""
    _, transformers = require_torch()
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    vc = SamVisionConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        global_attn_indexes=[1],
        output_channels=32,
        window_size=4,
        mlp_dim=64,
        num_pos_feats=16,
        image_size=image_size,
    )
    pc = SamPromptEncoderConfig(hidden_size=32, image_size=image_size)
    mc = SamMaskDecoderConfig(
        hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
    )
    return transformers.SamConfig(
        vision_config=vc.to_dict(),
        prompt_encoder_config=pc.to_dict(),
        mask_decoder_config=mc.to_dict(),
    )


def tiny_sam2_config(image_size: int = 256):
    """A very small random SAM 2 (Hiera) configuration (for tests and timing scaffolds)."""
    _, transformers = require_torch()
    s = image_size
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": 16,
        "image_size": [s, s],
        "embed_dim_per_stage": [16, 32, 64, 128],
        "blocks_per_stage": [1, 1, 2, 1],
        "num_attention_heads_per_stage": [1, 1, 2, 2],
        "global_attention_blocks": [3],
        "window_size_per_stage": [8, 4, 4, 4],
        "num_attention_heads": 1,
        "window_positional_embedding_background_size": [4, 4],
    }
    vision = {
        "backbone_config": backbone,
        "backbone_channel_list": [128, 64, 32, 16],
        "backbone_feature_sizes": [[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        "fpn_hidden_size": 32,
    }
    return transformers.Sam2Config(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": 32, "image_size": s, "mask_input_channels": 16},
        mask_decoder_config={
            "hidden_size": 32,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
        },
    )


__all__ = ["SamSegmenter", "tiny_sam_config", "tiny_sam2_config", "CryosamError"]
