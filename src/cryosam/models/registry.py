"""Known checkpoints by short name, the local cache, and checksum verification.

A short name (``sam-vit-h``, ``dinov2-vit-l14``, ...) maps to a hub id and revision,
the family that loads it, and the expected sha256 of each weight file where it is
pinned. ``cryosam models download`` fetches a checkpoint into the cache folder
(``$CRYOSAM_CACHE``, else ``$XDG_CACHE_HOME/cryosam``, else ``~/.cache/cryosam``) and
records the sha256 of every file in ``cryosam-manifest.json``; every later use checks
the weight files against the pinned hashes, or the manifest, before loading, and a
mismatch is refused. Adding a checkpoint is one entry in :data:`REGISTRY`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryosam.errors import CryosamError, MissingExtraError
from cryosam.io.atomic import write_text_atomic
from cryosam.io.checksums import sha256_file

MANIFEST = "cryosam-manifest.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class ModelSpec:
    """One registered checkpoint."""

    name: str
    family: str  # sam | sam-hq | sam2 | edgetam | dinov2 | dinov3 | dino
    hub_id: str
    revision: str = "main"
    params_m: float = 0.0
    input_size: int = 1024
    sha256: dict[str, str] = field(default_factory=dict)
    """Pinned hashes of weight files; empty: trust the manifest written at download."""
    supported: bool = True
    """Whether a cryosam backend loads this family yet."""


def _spec(name, family, hub, params, size, supported=True) -> ModelSpec:
    return ModelSpec(name, family, hub, params_m=params, input_size=size, supported=supported)


REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        _spec("sam-vit-b", "sam", "facebook/sam-vit-base", 94, 1024),
        _spec("sam-vit-l", "sam", "facebook/sam-vit-large", 312, 1024),
        _spec("sam-vit-h", "sam", "facebook/sam-vit-huge", 641, 1024),
        _spec("sam-hq-vit-b", "sam-hq", "syscv-community/sam-hq-vit-base", 95, 1024),
        _spec("sam-hq-vit-l", "sam-hq", "syscv-community/sam-hq-vit-large", 314, 1024),
        _spec("sam-hq-vit-h", "sam-hq", "syscv-community/sam-hq-vit-huge", 643, 1024),
        _spec("sam2.1-hiera-t", "sam2", "facebook/sam2.1-hiera-tiny", 39, 1024),
        _spec("sam2.1-hiera-s", "sam2", "facebook/sam2.1-hiera-small", 46, 1024),
        _spec("sam2.1-hiera-b+", "sam2", "facebook/sam2.1-hiera-base-plus", 81, 1024),
        _spec("sam2.1-hiera-l", "sam2", "facebook/sam2.1-hiera-large", 224, 1024),
        _spec("edgetam", "edgetam", "yonigozlan/EdgeTAM-hf", 14, 1024, False),
        _spec("dinov2-vit-s14", "dinov2", "facebook/dinov2-small", 22, 518),
        _spec("dinov2-vit-b14", "dinov2", "facebook/dinov2-base", 87, 518),
        _spec("dinov2-vit-l14", "dinov2", "facebook/dinov2-large", 304, 518),
        _spec("dinov2-vit-g14", "dinov2", "facebook/dinov2-giant", 1136, 518),
        _spec("dinov2-vit-s14-reg", "dinov2", "facebook/dinov2-with-registers-small", 22, 518),
        _spec("dinov2-vit-b14-reg", "dinov2", "facebook/dinov2-with-registers-base", 87, 518),
        _spec("dinov2-vit-l14-reg", "dinov2", "facebook/dinov2-with-registers-large", 304, 518),
        _spec("dinov2-vit-g14-reg", "dinov2", "facebook/dinov2-with-registers-giant", 1136, 518),
        _spec("dino-vit-b16", "dino", "facebook/dino-vitb16", 86, 224),
        # DINOv3 (gated on the hub: accept its licence there first); RoPE, any input size
        _spec("dinov3-vits16", "dinov3", "facebook/dinov3-vits16-pretrain-lvd1689m", 22, 512),
        _spec("dinov3-vitb16", "dinov3", "facebook/dinov3-vitb16-pretrain-lvd1689m", 86, 512),
        _spec("dinov3-vitl16", "dinov3", "facebook/dinov3-vitl16-pretrain-lvd1689m", 300, 512),
    ]
}


def cache_dir() -> Path:
    """Where downloaded checkpoints live (``$CRYOSAM_CACHE`` overrides)."""
    if os.environ.get("CRYOSAM_CACHE"):
        return Path(os.environ["CRYOSAM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cryosam"


def model_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise CryosamError(
            f"unknown model {name!r}; 'cryosam models list' shows the known names, or pass a "
            "local folder"
        )
    return REGISTRY[name]


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def write_manifest(folder: Path) -> dict[str, str]:
    """Record the sha256 of every weight file of a checkpoint folder."""
    hashes = {str(p.relative_to(folder)): sha256_file(p) for p in weight_files(folder)}
    write_text_atomic(folder / MANIFEST, json.dumps(hashes, indent=1), overwrite=True)
    return hashes


def verify(name: str) -> list[str]:
    """Problems with a cached checkpoint (empty list: verified)."""
    s, folder = spec(name), model_dir(name)
    if not (folder / "config.json").exists():
        return [f"not downloaded: run 'cryosam models download {name}'"]
    expected = dict(s.sha256)
    if not expected:
        if not (folder / MANIFEST).exists():
            return [f"no {MANIFEST}: download it again with 'cryosam models download {name}'"]
        expected = json.loads((folder / MANIFEST).read_text())
    problems = []
    files = {str(p.relative_to(folder)): p for p in weight_files(folder)}
    if not files:
        problems.append("no weight files")
    for rel, digest in expected.items():
        if rel not in files:
            problems.append(f"{rel} is missing")
        elif sha256_file(files[rel]) != digest:
            problems.append(f"{rel}: sha256 mismatch (corrupt or replaced)")
    return problems


def resolve(name_or_path: str | os.PathLike | None) -> str | None:
    """A ``--model`` value -> what ``from_pretrained`` should load.

    A local folder is used as is; a registry name must be downloaded and verified
    (a mismatch is refused); anything else is passed on as a hub id.
    """
    if name_or_path is None:
        return None
    text = str(name_or_path)
    if Path(text).expanduser().exists():
        return str(Path(text).expanduser())
    if text in REGISTRY:
        problems = verify(text)
        if problems:
            raise CryosamError(
                f"model {text} cannot be used: {'; '.join(problems)} (cache: {model_dir(text)}; "
                f"offline? run 'cryosam models download {text}' on a connected machine and "
                "copy that folder here, or pass a local folder with --model)"
            )
        return str(model_dir(text))
    return text


def download(name: str, progress: bool = True) -> Path:
    """Fetch a registered checkpoint into the cache (resumable) and record its hashes."""
    s = spec(name)
    try:  # the optional 'foundation' extra
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise MissingExtraError("foundation", "downloading models") from exc
    folder = model_dir(name)
    existed = folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(
            s.hub_id,
            revision=s.revision,
            local_dir=folder,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"],
        )
    except Exception as exc:  # the hub client raises many types; the user needs one line
        if not existed and not any(folder.iterdir()):
            folder.rmdir()
        reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else "no network?"
        raise CryosamError(
            f"could not download {name} ({s.hub_id}@{s.revision}): {type(exc).__name__}: "
            f"{reason}. On a connected machine "
            f"run 'cryosam models download {name}' and copy {folder} to the same place here "
            "(or set CRYOSAM_CACHE), or pass the folder with --model"
        ) from exc
    hashes = write_manifest(folder)
    for rel, digest in s.sha256.items():
        if hashes.get(rel) != digest:
            raise CryosamError(f"{name}: {rel} does not match its pinned sha256; not using it")
    return folder
