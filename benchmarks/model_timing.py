"""Seconds per slice of full-size foundation models (random weights: timing only).

    python benchmarks/model_timing.py --models sam-vit-b,dinov2-vit-l14   # this CPU
    python benchmarks/model_timing.py --models sam-vit-b,sam-vit-h --device cuda
    python benchmarks/model_timing.py --models all --device cuda --repeats 10 --skip-load

Reports model build time, seconds per slice embedding (batch 1, after one warm-up),
seconds per mask-decoder call, and peak process memory (RSS).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryosam.eval.tables import format_table  # noqa: E402

SAM_SIZES = {
    "sam-vit-b": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        global_attn_indexes=[2, 5, 8, 11],
    ),
    "sam-vit-l": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        global_attn_indexes=[5, 11, 17, 23],
    ),
    "sam-vit-h": dict(
        hidden_size=1280,
        num_hidden_layers=32,
        num_attention_heads=16,
        global_attn_indexes=[7, 15, 23, 31],
    ),
}


def _hiera(embed, heads, blocks, global_blocks, windows=(8, 4, 14, 7), bkg=(7, 7)):
    dims = [embed * 2**i for i in range(4)]
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": embed,
        "num_attention_heads": heads,
        "embed_dim_per_stage": dims,
        "num_attention_heads_per_stage": [heads * 2**i for i in range(4)],
        "blocks_per_stage": list(blocks),
        "global_attention_blocks": list(global_blocks),
        "window_size_per_stage": list(windows),
        "window_positional_embedding_background_size": list(bkg),
    }
    return {"backbone_config": backbone, "backbone_channel_list": dims[::-1]}


SAM2_SIZES = {  # the released SAM 2.1 Hiera configurations
    "sam2.1-hiera-t": _hiera(96, 1, (1, 2, 7, 2), (5, 7, 9)),
    "sam2.1-hiera-s": _hiera(96, 1, (1, 2, 11, 2), (7, 10, 13)),
    "sam2.1-hiera-b+": _hiera(112, 2, (2, 3, 16, 3), (12, 16, 20), bkg=(14, 14)),
    "sam2.1-hiera-l": _hiera(144, 2, (2, 6, 36, 4), (23, 33, 43), windows=(8, 4, 16, 8)),
}

DINO_SIZES = {
    "dinov2-vit-s14": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "dinov2-vit-b14": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "dinov2-vit-l14": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
    "dinov2-vit-g14": dict(
        hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, use_swiglu_ffn=True
    ),
}


def load_time(model, cls) -> float:
    """Seconds to load the model back from a saved folder (what a cached checkpoint costs)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        t0 = time.perf_counter()
        cls.from_pretrained(tmp)
        return time.perf_counter() - t0


DINO3_SIZES = {
    "dinov3-vits16": dict(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536
    ),
    "dinov3-vitb16": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    "dinov3-vitl16": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
}


def gpu_peak(dev) -> dict:
    """Peak GPU memory since the last call (empty on CPU)."""
    import torch

    if dev.type != "cuda":
        return {}
    peak = torch.cuda.max_memory_allocated(dev) / 2**20
    torch.cuda.reset_peak_memory_stats(dev)
    return {"peak GPU MB": peak}


def time_dino(name: str, device: str, repeats: int, size: int = 518, skip_load=False) -> dict:
    import torch
    from transformers import Dinov2Config, Dinov2Model, DINOv3ViTConfig, DINOv3ViTModel

    from cryosam.models.loading import half_dtype

    if name in DINO3_SIZES:
        size = 512
        cls = DINOv3ViTModel
        cfg = DINOv3ViTConfig(**DINO3_SIZES[name], patch_size=16, num_register_tokens=4)
    else:
        cls = Dinov2Model
        cfg = Dinov2Config(**DINO_SIZES[name], patch_size=14, image_size=518)
    model = cls(cfg).eval()
    load = float("nan") if skip_load else load_time(model, cls)
    dev = torch.device(device)
    dtype = half_dtype(dev)
    model = model.to(dev, dtype=dtype)
    x = torch.randn(1, 3, size, size, device=dev, dtype=dtype)
    with torch.inference_mode():
        model(pixel_values=x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(pixel_values=x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        per_slice = (time.perf_counter() - t0) / repeats
    return {
        "model": name,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "params (M)": sum(p.numel() for p in model.parameters()) / 1e6,
        "load s": load,
        "s / slice": per_slice,
        "slice": f"{size}^2",
        "peak RSS MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **gpu_peak(dev),
    }


def time_sam(name: str, device: str, repeats: int, skip_load=False) -> dict:
    import torch
    from transformers import Sam2Config, Sam2Model, SamConfig, SamModel
    from transformers.models.sam.configuration_sam import SamVisionConfig

    from cryosam.models.loading import half_dtype

    t0 = time.perf_counter()
    if name in SAM2_SIZES:
        cls, cfg = Sam2Model, Sam2Config(vision_config=SAM2_SIZES[name])
    else:
        cls, cfg = SamModel, SamConfig(vision_config=SamVisionConfig(**SAM_SIZES[name]).to_dict())
    dev = torch.device(device)
    dtype = half_dtype(dev)
    model = cls(cfg).eval()
    build = time.perf_counter() - t0
    load = float("nan") if skip_load else load_time(model, cls)
    model = model.to(dev, dtype=dtype)
    x = torch.randn(1, 3, 1024, 1024, device=dev, dtype=dtype)
    with torch.inference_mode():
        emb = model.get_image_embeddings(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            emb = model.get_image_embeddings(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        per_slice = (time.perf_counter() - t0) / repeats
        pts = torch.tensor([[[[512.0, 512.0]]]], device=dev, dtype=dtype)
        lab = torch.ones(1, 1, 1, dtype=torch.long, device=dev)
        model(image_embeddings=emb, input_points=pts, input_labels=lab)
        t0 = time.perf_counter()
        for _ in range(10):
            model(image_embeddings=emb, input_points=pts, input_labels=lab, multimask_output=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        per_call = (time.perf_counter() - t0) / 10
    return {
        "model": name,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "params (M)": sum(p.numel() for p in model.parameters()) / 1e6,
        "build s": build,
        "load s": load,
        "s / slice": per_slice,
        "slice": "1024^2",
        "s / decoder call": per_call,
        "peak RSS MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **gpu_peak(dev),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="sam-vit-b")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-load", action="store_true", help="do not time loading back")
    args = ap.parse_args(argv)
    rows = []
    names = args.models.split(",")
    if names == ["all"]:
        names = [*SAM_SIZES, *SAM2_SIZES, *DINO_SIZES, *DINO3_SIZES]
    for name in names:
        if name in SAM_SIZES or name in SAM2_SIZES:
            rows.append(time_sam(name, args.device, args.repeats, args.skip_load))
        elif name in DINO_SIZES or name in DINO3_SIZES:
            rows.append(time_dino(name, args.device, args.repeats, skip_load=args.skip_load))
        else:
            known = ", ".join([*SAM_SIZES, *SAM2_SIZES, *DINO_SIZES, *DINO3_SIZES])
            raise SystemExit(f"unknown model {name}; known: {known}")
        print(format_table(rows[-1:], list(rows[-1])), flush=True)
    print_rows(rows)
    return 0


def print_rows(rows: list[dict]) -> None:
    """All rows as one table (the union of their columns)."""
    print()
    print(format_table(rows, list(dict.fromkeys(k for r in rows for k in r))))


if __name__ == "__main__":
    sys.exit(main())
