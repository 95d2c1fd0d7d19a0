"""Reading tomograms and writing volumes as MRC.

:func:`read_tomogram` returns a float32 ``(z, y, x)`` array (a memory-mapped
view where the file allows it) with the voxel size in Å and the header origin.
:func:`write_volume` writes masks and maps with the smallest correct MRC mode,
the input's voxel size and origin, atomically.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from cryosam import __version__
from cryosam.errors import CryosamError
from cryosam.io.atomic import atomic_path

VOLUME_SUFFIXES = (".mrc", ".rec", ".map", ".st", ".ali", ".mrcs")
"""Extensions of MRC volumes cryosam reads (each optionally ``.gz`` or ``.bz2``)."""
COMPRESSED_SUFFIXES = (".gz", ".bz2")
NAME_SUFFIXES = (*VOLUME_SUFFIXES, ".tomostar")
"""Extensions dropped from a name to match tomograms (Warp names them by ``.tomostar``)."""
UNKNOWN_VOXEL_SIZES = (0.0, 1.0)
"""Header voxel sizes that mean 'not set' (programs write 0 or 1 Å when they do not know)."""
_CHUNK_VOXELS = 1 << 24


@dataclass
class Tomogram:
    """A tomogram as the pipeline sees it.

    Attributes:
        data: float32 array ``(z, y, x)``; may be a read-only memory map.
        voxel_size: isotropic voxel size in Å, or ``None`` when the header does not say.
        origin: header origin in Å, ``(z, y, x)``.
        path: file it came from (``None`` for in-memory volumes).
        mode: MRC mode of the file.
        label: its name when it has no file (a napari layer, a copick run).
    """

    data: np.ndarray
    voxel_size: float | None
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    path: Path | None = None
    mode: int = 2
    file_dtype: str = "float32"
    label: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """The file's name (with extensions), else the label, else ``tomogram``."""
        return self.path.name if self.path is not None else (self.label or "tomogram")

    def require_voxel_size(self) -> float:
        """The voxel size in Å, or an error telling the user to pass ``--voxel-size``."""
        if self.voxel_size is None:
            raise CryosamError(
                f"{self.path or 'volume'}: the header has no voxel size (0 or 1 Å); "
                "pass --voxel-size ANGSTROM"
            )
        return self.voxel_size


def is_tomogram_name(name: str | os.PathLike) -> bool:
    """Whether a file name is an MRC volume cryosam reads (``.mrc``, ``.rec.gz``, ...)."""
    lower = Path(name).name.lower()
    return any(lower.endswith(v + c) for v in VOLUME_SUFFIXES for c in ("", *COMPRESSED_SUFFIXES))


def tomogram_stem(path: str | os.PathLike) -> str:
    """File name without its tomogram and compression extensions (``a.rec.gz`` -> ``a``)."""
    name = Path(path).name
    for _ in range(2):
        lower = name.lower()
        for suffix in COMPRESSED_SUFFIXES + NAME_SUFFIXES:
            if lower.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
    return name


def _open_error(path: Path, exc: Exception) -> CryosamError:
    msg = str(exc).strip().rstrip(".")
    lower = msg.lower()
    if "map id string" in lower or "mode" in lower and "not" in lower:
        hint = "it is not an MRC file (or its header is corrupt); give an MRC/REC tomogram"
    elif any(k in lower for k in ("could only read", "mmap length", "bytes in data")):
        hint = "the file is truncated or its header size does not match the data; re-export it"
    else:
        hint = "check that it is a valid MRC file"
    return CryosamError(f"{path}: cannot read as MRC ({msg}); {hint}")


def read_tomogram(
    path: str | os.PathLike,
    voxel_size: float | None = None,
    check_finite: bool = True,
) -> Tomogram:
    """Read an MRC tomogram (plain, gzip or bzip2) as float32 ``(z, y, x)``.

    Args:
        path: ``.mrc``, ``.rec``, ``.map``, ``.st`` ... optionally ``.gz``/``.bz2``.
        voxel_size: Å per voxel; overrides the header (required when it says 0 or 1 Å
            for the caller's purposes, see :meth:`Tomogram.require_voxel_size`).
        check_finite: scan the data and refuse NaN or infinite values.

    Raises:
        CryosamError: missing, unreadable, not MRC, truncated, complex-valued, not 3D,
            NaN/inf data, or a non-positive ``voxel_size``.
    """
    path = Path(path)
    if voxel_size is not None and not (np.isfinite(voxel_size) and voxel_size > 0):
        raise CryosamError(f"--voxel-size must be a positive number of Å, got {voxel_size}")
    if not path.exists():
        raise CryosamError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise CryosamError(f"{path} is a directory; give a tomogram file (.mrc, .rec, ...)")
    if not os.access(path, os.R_OK):
        raise CryosamError(f"{path}: permission denied; check the file's permissions")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = _open_mrc(path)
    except Exception as exc:  # mrcfile/numpy raise many types on a corrupt header
        raise _open_error(path, exc) from exc
    larger = [str(w.message) for w in caught if "larger than expected" in str(w.message)]
    if larger:
        h = mrc.header
        mrc.close()
        raise CryosamError(
            f"{path}: the header says {int(h.nz)} x {int(h.ny)} x {int(h.nx)} voxels (z, y, x) "
            f"but the file holds {larger[0].split()[3]} bytes more (a wrong nz?); fix the header "
            "(IMOD: alterheader) rather than reading part of the volume"
        )
    try:
        raw = mrc.data
        if raw is None:
            raise CryosamError(f"{path}: the MRC file holds no data")
        mode = int(mrc.header.mode)
        if np.iscomplexobj(raw):
            raise CryosamError(f"{path}: complex-valued MRC (mode {mode}) is not a tomogram")
        if raw.ndim == 2:
            raw = raw[np.newaxis]
        if raw.ndim != 3:
            raise CryosamError(f"{path}: expected a 3D volume, got {raw.ndim} dimensions")
        order = _zyx_order(mrc.header)
        if order != (0, 1, 2):  # columns/rows/sections are not x/y/z (EMDB maps may do this)
            raw = np.ascontiguousarray(raw.transpose(order))
        if min(raw.shape) < 1:
            raise CryosamError(f"{path}: the volume is empty (shape {raw.shape})")
        # --voxel-size overrides the header, an anisotropic one included (the user said so)
        header_vs = None if voxel_size is not None else _header_voxel_size(mrc, path)
        origin = mrc.header.origin
        origin_zyx = (float(origin.z), float(origin.y), float(origin.x))
        file_dtype = str(raw.dtype)
        if raw.dtype == np.float32:
            data = raw
        else:
            data = raw.astype(np.float32)
    finally:
        if not isinstance(mrc, mrcfile.mrcmemmap.MrcMemmap):
            mrc.close()
    if check_finite:
        _check_finite(data, path)
    return Tomogram(
        data=data,
        voxel_size=voxel_size if voxel_size is not None else header_vs,
        origin=origin_zyx,
        path=path,
        mode=mode,
        file_dtype=file_dtype,
    )


def read_header(
    path: str | os.PathLike, voxel_size: float | None = None
) -> tuple[tuple[int, int, int], float | None]:
    """Shape ``(z, y, x)`` and voxel size without reading data: ``voxel_size`` when given
    (the header's is then not checked), else the header's (None when unknown)."""
    shape, vs, _ = header_info(path, voxel_size)
    return shape, vs


def header_info(
    path: str | os.PathLike, voxel_size: float | None = None
) -> tuple[tuple[int, int, int], float | None, int]:
    """:func:`read_header` and the MRC mode, from the 1024-byte header alone (seconds-free
    on a tomogram of any size: the cheap checks come before a scan of the data)."""
    path = Path(path)
    if not path.is_file():
        raise CryosamError(f"{path}: no such file; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, mode="r", header_only=True) as mrc:
                h = mrc.header
                order = _zyx_order(h)
                shape = tuple((int(h.nz), int(h.ny), int(h.nx))[i] for i in order)
                return shape, voxel_size or _header_voxel_size(mrc, path), int(h.mode)
    except CryosamError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from exc


def mrc_mode_dtype(mode: int) -> str:
    """The data type an MRC mode stores ('int8' for mode 0, 'float32' for 2, ...)."""
    try:
        return str(np.dtype(mrcfile.utils.dtype_from_mode(mode)))
    except ValueError:
        return f"unknown (mode {mode})"


def maps_float32(path: str | os.PathLike, mode: int) -> bool:
    """Whether :func:`read_tomogram` memory-maps the file as float32 (an uncompressed MRC of
    mode 2) instead of holding a decoded copy in memory: what a run's memory estimate needs."""
    return mode == 2 and not _compressed(Path(path))


def _compressed(path: Path) -> bool:
    """gzip or bzip2, by the file's magic bytes (not its name)."""
    with open(path, "rb") as fh:
        magic = fh.read(3)
    return magic[:2] == b"\x1f\x8b" or magic == b"BZh"


def _open_mrc(path: Path):
    if _compressed(path):
        return mrcfile.open(path, mode="r")
    return mrcfile.mmap(path, mode="r")


def _zyx_order(header) -> tuple[int, int, int]:
    """Axes of the file's ``(section, row, column)`` array that hold ``(z, y, x)``, from
    ``maps, mapr, mapc`` (1 = x, 2 = y, 3 = z); the identity when they are not a permutation."""
    axes = (int(header.maps), int(header.mapr), int(header.mapc))
    if sorted(axes) != [1, 2, 3]:
        return (0, 1, 2)
    return tuple(axes.index(a) for a in (3, 2, 1))


def _header_voxel_size(mrc, path: Path) -> float | None:
    vs = mrc.voxel_size
    values = [float(vs.x), float(vs.y), float(vs.z)]
    known = [v for v in values if np.isfinite(v) and v not in UNKNOWN_VOXEL_SIZES and v > 0]
    if not known:
        return None
    if max(known) - min(known) > 0.01 * max(known):
        raise CryosamError(
            f"{path}: anisotropic voxel size {values} Å (x, y, z) is not supported; "
            "resample the tomogram or pass --voxel-size to override"
        )
    return known[0]


def _check_finite(data: np.ndarray, path: Path) -> None:
    flat = data.reshape(data.shape[0], -1)
    step = max(1, _CHUNK_VOXELS // max(1, flat.shape[1]))
    for start in range(0, flat.shape[0], step):
        if not np.isfinite(flat[start : start + step]).all():
            raise CryosamError(
                f"{path}: the data contains NaN or infinite values (from slice z={start}); "
                "re-export the tomogram or replace them (e.g. with the mean)"
            )


def volume_stats(data: np.ndarray) -> dict[str, float]:
    """min, max, mean and std of a (possibly memory-mapped) volume, computed in chunks."""
    flat = data.reshape(data.shape[0], -1)
    step = max(1, _CHUNK_VOXELS // max(1, flat.shape[1]))
    lo, hi, total, total2, n = np.inf, -np.inf, 0.0, 0.0, 0
    for start in range(0, flat.shape[0], step):
        block = np.asarray(flat[start : start + step], dtype=np.float64)
        lo = min(lo, float(block.min()))
        hi = max(hi, float(block.max()))
        total += float(block.sum())
        total2 += float((block * block).sum())
        n += block.size
    mean = total / n
    var = max(0.0, total2 / n - mean * mean)
    return {"min": lo, "max": hi, "mean": mean, "std": float(np.sqrt(var))}


def smallest_dtype(data: np.ndarray, kind: str) -> np.dtype:
    """Smallest MRC-representable dtype for a label volume.

    ``kind='class'``: int8 (mode 0) while ids < 128, else uint16 (mode 6).
    ``kind='instance'``: uint16 (mode 6) while ids < 65536, else float32 (mode 2,
    exact for ids below 2**24; MRC has no 32-bit integer mode).
    ``kind='float'``: float32.
    """
    if kind == "float":
        return np.dtype(np.float32)
    hi = int(data.max()) if data.size else 0
    lo = int(data.min()) if data.size else 0
    if lo < 0:
        raise CryosamError("label volumes must not contain negative ids")
    if kind == "class" and hi < 128:
        return np.dtype(np.int8)
    if hi < 65536:
        return np.dtype(np.uint16)
    if hi < 2**24:
        return np.dtype(np.float32)
    raise CryosamError(f"too many labels ({hi}) to store exactly in an MRC file")


def write_volume(
    path: str | os.PathLike,
    data: np.ndarray,
    voxel_size: float | None,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    kind: str = "float",
    overwrite: bool = False,
) -> Path:
    """Write a ``(z, y, x)`` volume as MRC atomically.

    Args:
        kind: 'class' (semantic ids), 'instance' (instance ids) or 'float' (maps);
            decides the MRC mode via :func:`smallest_dtype`.
        voxel_size: Å; ``None`` writes 0 (unknown).
        origin: header origin in Å, ``(z, y, x)``.
    """
    path = Path(path)
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise CryosamError(f"{path}: can only write 3D volumes, got shape {arr.shape}")
    arr = arr.astype(smallest_dtype(arr, kind), copy=False)
    with atomic_path(path, overwrite) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(arr)
        mrc.voxel_size = float(voxel_size) if voxel_size else 0.0
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (
            origin[2],
            origin[1],
            origin[0],
        )
        mrc.update_header_stats()
        # one label without a timestamp, so the same result gives the same bytes
        mrc.header.label[:] = b""
        mrc.header.label[0] = f"cryosam {__version__}".encode()
        mrc.header.nlabl = 1
    return path
