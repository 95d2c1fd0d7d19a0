"""On-disk cache of feature volumes (zarr 3), keyed by input checksum and encoder signature.

A second ``cryosam pick`` on the same tomogram with new prompts loads the features
instead of computing them. The key hashes the input file's sha256, the contrast
decision, the particle size the features were made for and the encoder's
signature (name, parameters, model), so a changed input or backend is never served
stale features. A store is marked complete only after its last byte is written, and it
records its data's shape and checksum: an incomplete or damaged one (an interrupted run,
a deleted chunk file, which zarr reads back as zeros) is rebuilt with a warning. The
cache is optional: when it cannot be written (a full disk, a ``$CRYOSAM_CACHE`` that is
a file) the run goes on without it, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from cryosam.models.features import FeatureVolume
from cryosam.models.registry import cache_dir

FORMAT_VERSION = 2
"""2: stores carry the ``shape`` and ``sha256`` of their data (1 had neither)."""


def features_root() -> Path:
    return cache_dir() / "features"


def cache_key(input_sha256: str, encoder_signature: dict, diameter_px: float, inverted: bool):
    """Hex key of one feature volume."""
    blob = json.dumps(
        {
            "input": input_sha256,
            "encoder": encoder_signature,
            "diameter": round(diameter_px, 1),
            "inverted": bool(inverted),
            "format": FORMAT_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class FeatureCache:
    """Feature volumes on disk under ``root`` (default: the cryosam cache folder)."""

    root: Path | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root) if self.root is not None else features_root()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.zarr"

    def load(self, key: str) -> FeatureVolume | None:
        """The cached volume, or ``None`` when absent, incomplete or damaged."""
        return self._load(key)[0]

    def _load(self, key: str) -> tuple[FeatureVolume | None, str]:
        """``(volume, problem)``: the problem is '' when intact, 'absent' when there is no
        store, else what is wrong with it."""
        path = self.path(key)
        if not path.exists():
            return None, "absent"
        try:
            group = zarr.open_group(str(path), mode="r")
            attrs = dict(group.attrs)
            if not attrs.get("complete"):
                return None, "incomplete (an interrupted write)"
            data = np.asarray(group["data"][:], dtype=np.float16)
        except Exception as exc:  # a damaged store is rebuilt, never trusted
            return None, f"unreadable ({type(exc).__name__})"
        if list(data.shape) != list(attrs.get("shape", [])) or _digest(data) != attrs.get("sha256"):
            return None, "its data does not match its checksum"
        feats = FeatureVolume(
            data, int(attrs["stride"]), list(attrs["names"]), tuple(attrs["input_shape"])
        )
        return feats, ""

    def save(self, key: str, feats: FeatureVolume, info: dict) -> Path:
        """Write a store under a private name and rename it into place when complete.

        Two processes computing the same key (``cryosam batch`` workers, two ``pick`` runs
        on one tomogram) never see each other's half-written store: the rename is atomic,
        and whichever finishes second finds a complete store and discards its own copy.
        A kill mid-write leaves only the private folder, which ``clear`` removes."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".partial", dir=path.parent))
        try:
            group = zarr.open_group(str(tmp), mode="w")
            c = feats.data.shape[0]
            # zarr 3 has create_array; zarr 2 (which copick pins) has create_dataset
            create = getattr(group, "create_array", None) or group.create_dataset
            arr = create("data", shape=feats.data.shape, dtype="float16", chunks=(c, 32, 64, 64))
            arr[:] = feats.data
            group.attrs.update(
                {
                    "shape": list(feats.data.shape),
                    "sha256": _digest(np.asarray(feats.data, dtype=np.float16)),
                    "stride": feats.stride,
                    "names": feats.names,
                    "input_shape": list(feats.input_shape),
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                    **info,
                }
            )
            group.attrs["complete"] = True
            if path.exists() and self.load(key) is None:
                shutil.rmtree(path, ignore_errors=True)  # stale or damaged: replace it
            try:
                os.rename(tmp, path)
            except OSError:  # another process put a complete store there first
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def get_or_compute(
        self, key: str, compute, info: dict, warn=None
    ) -> tuple[FeatureVolume, bool]:
        """``(features, hit)``: load the store, or compute, save and return.

        ``warn`` (a callable taking one message) hears of a damaged store that is rebuilt
        and of a store that could not be written (the features are then used unsaved)."""
        warn = warn or (lambda message: None)
        cached, problem = self._load(key)
        if cached is not None:
            return cached, True
        if problem != "absent":
            warn(f"feature cache {self.path(key)}: {problem}; recomputing it")
        feats = compute()
        try:
            self.save(key, feats, info)
        except OSError as exc:
            warn(
                f"feature cache not written under {self.root} ({exc.strerror or exc}); the "
                "run goes on without it (set CRYOSAM_CACHE to a writable folder, or --no-cache)"
            )
        return feats, False

    def entries(self) -> list[dict]:
        """One row per store: key, size, input, encoder, created, complete (intact: its
        shape and checksum verified) and what is wrong with it otherwise."""
        rows = []
        for path in sorted(self.root.glob("*.zarr")) if self.root.exists() else []:
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            try:
                attrs = dict(zarr.open_group(str(path), mode="r").attrs)
            except Exception:
                attrs = {}
            problem = self._load(path.stem)[1]
            rows.append(
                {
                    "key": path.stem,
                    "size MB": round(size / 2**20, 1),
                    "input sha256": str(attrs.get("input_sha256", "?"))[:12],
                    "encoder": attrs.get("encoder", "?"),
                    "created": attrs.get("created", "?"),
                    "complete": not problem,
                    "problem": problem or "-",
                }
            )
        return rows

    def clear(self) -> int:
        """Remove every store (and folders left by interrupted writes); returns how many."""
        n = 0
        for path in self.root.glob("*.zarr") if self.root.exists() else []:
            shutil.rmtree(path, ignore_errors=True)
            n += 1
        for path in self.root.glob(".*.partial") if self.root.exists() else []:
            shutil.rmtree(path, ignore_errors=True)
        return n


def _digest(data: np.ndarray) -> str:
    """sha256 of a feature volume's float16 bytes (C order)."""
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
