"""Loading pretrained models through ``transformers`` with clear errors.

A model is named by a local folder (what ``save_pretrained`` writes) or a hub id.
Offline, or when the weights are not cached, the error says what to fetch and
where to put it; it is never a traceback from the hub client.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryosam.errors import CryosamError, MissingExtraError
from cryosam.models.registry import resolve


def require_torch():
    """Import torch and transformers, or explain the extra to install."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtraError("foundation", "this backend") from exc
    return torch, transformers


def pick_device(device: str = "auto"):
    """'auto' -> cuda, then mps, then cpu; an unavailable explicit choice is an error."""
    torch, _ = require_torch()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CryosamError("--device cuda: no CUDA GPU is visible; use --device cpu")
    if device == "mps" and not (torch.backends.mps.is_available()):
        raise CryosamError("--device mps: Apple GPU not available; use --device cpu")
    if device not in ("cpu", "cuda", "mps"):
        raise CryosamError(f"--device must be auto, cpu, cuda or mps, got {device!r}")
    return torch.device(device)


def half_dtype(device):
    """bfloat16 on CUDA (where supported), float16 on MPS, float32 on CPU."""
    torch, _ = require_torch()
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def load_pretrained(model_cls, name_or_path: str | os.PathLike, what: str):
    """``model_cls.from_pretrained`` on a folder or hub id, with a one-line error."""
    if name_or_path is None:
        raise CryosamError(f"{what} needs --model (a short name, a local folder or a hub id)")
    name_or_path = resolve(name_or_path)
    path = Path(name_or_path)
    local = path.exists()
    if local and not (path / "config.json").exists():
        raise CryosamError(f"{path}: no config.json; give a folder written by save_pretrained")
    from transformers.utils import logging as hf_logging  # the optional 'foundation' extra

    hf_logging.disable_progress_bar()  # cryosam reports its own progress
    try:
        return model_cls.from_pretrained(
            str(path) if local else str(name_or_path),
            local_files_only=local or os.environ.get("HF_HUB_OFFLINE") == "1",
        )
    except OSError as exc:
        raise CryosamError(
            f"cannot load {what} {name_or_path!r}: {str(exc).splitlines()[0]} "
            "(offline? download it on a connected machine and pass its folder with --model)"
        ) from exc
    except (ValueError, KeyError) as exc:
        raise CryosamError(f"{name_or_path}: not a {what} checkpoint ({exc})") from exc


class gpu_errors:
    """Turn a GPU out-of-memory error into a one-line :class:`CryosamError`."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        torch, _ = require_torch()
        oom = getattr(torch, "OutOfMemoryError", None) or getattr(
            torch.cuda, "OutOfMemoryError", RuntimeError
        )
        if isinstance(exc, oom) or "out of memory" in str(exc).lower():
            raise CryosamError(
                f"{self.what}: the GPU ran out of memory; use a smaller model, a smaller "
                "--batch-size, or --device cpu"
            ) from exc
        return False


def auto_batch_size(device, bytes_per_item: float, default: int = 8, cap: int = 64) -> int:
    """Batch size that fits half of the free GPU memory (``default`` on CPU)."""
    torch, _ = require_torch()
    if device.type != "cuda":
        return default
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(cap, 0.5 * free // max(bytes_per_item, 1))))
