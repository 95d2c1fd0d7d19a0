"""The weight-free segmenter: denoising plus seeded, size-bounded region growing.

Works on any laptop with no model. The volume is denoised in 3D (Gaussian, sigma a
fraction of the diameter), lazily in z-slabs kept in a small cache
(:class:`SmoothedVolume`), so memory does not grow with the tomogram. For each
instance a threshold is set halfway
between the particle's interior (upper quartile in a ball around the prompt) and
the local background (median of a shell one to one and a half diameters out). On a
slice, the foreground components near the prompt point, or overlapping the grown
mask of the previous slice, form the particle; a closing and hole filling seal the
lumen of hollow particles, so a prompt inside a barrel segments the barrel. The
logits are the distance to the mask edge inside (negative outside), so the most
confident point is the mask's deepest point.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from cryosam.config import Config
from cryosam.models.base import SliceResult


@lru_cache(maxsize=64)
def _disk(r: float) -> np.ndarray:
    """The structuring disk of radius ``r`` (read-only: one per radius, cached, as every
    slice of a particle asks for the same ones)."""
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    disk = (yy**2 + xx**2) <= r * r + 1e-9
    disk.setflags(write=False)
    return disk


@lru_cache(maxsize=64)
def _seed_disk(radius2: float) -> np.ndarray:
    """The offsets within ``sqrt(radius2)`` of a pixel, as a boolean square (read-only,
    cached; the seed test has no tolerance, unlike :func:`_disk`)."""
    n = int(np.floor(np.sqrt(radius2))) + 1
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    disk = yy**2 + xx**2 <= radius2
    disk.setflags(write=False)
    return disk


def _stamp(out: np.ndarray, disk: np.ndarray, u: int, v: int) -> None:
    """``out |= disk`` centred on pixel ``(u, v)``, clipped to ``out``."""
    n = disk.shape[0] // 2
    a0, b0 = max(u - n, 0), max(v - n, 0)
    a1, b1 = min(u + n + 1, out.shape[0]), min(v + n + 1, out.shape[1])
    out[a0:a1, b0:b1] |= disk[a0 - u + n : a1 - u + n, b0 - v + n : b1 - v + n]


def _crop(mask: np.ndarray, pad: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``mask``'s bounding box with ``pad`` zero pixels around it (a 1 x 1 box at the
    origin when empty), and the box's first pixel in ``mask``."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        rows = cols = np.zeros(1, int)
    u0, u1, v0, v1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    out = np.zeros((u1 - u0 + 2 * pad, v1 - v0 + 2 * pad), bool)
    out[pad:-pad, pad:-pad] = mask[u0:u1, v0:v1]
    return out, (int(u0), int(v0))


def _dilated(mask: np.ndarray, r: float) -> np.ndarray:
    """``binary_dilation(mask, _disk(r))`` worked on the mask's bounding box and a margin."""
    disk = _disk(r)
    n = disk.shape[0] // 2
    crop, (u0, v0) = _crop(mask, n)
    grown = ndimage.binary_dilation(crop, disk)
    out = np.zeros(mask.shape, bool)
    # the crop's first pixel lies n before (u0, v0); clip it to the slice
    a0, b0 = max(u0 - n, 0), max(v0 - n, 0)
    a1, b1 = min(u0 - n + crop.shape[0], mask.shape[0]), min(v0 - n + crop.shape[1], mask.shape[1])
    out[a0:a1, b0:b1] = grown[a0 - u0 + n : a1 - u0 + n, b0 - v0 + n : b1 - v0 + n]
    return out


def _ball_values(vol: np.ndarray, c: np.ndarray, r_in: float, r_out: float) -> np.ndarray:
    n = int(np.ceil(r_out))
    lo = np.maximum(c - n, 0)
    hi = np.minimum(c + n + 1, vol.shape)
    block = vol[tuple(slice(a, b) for a, b in zip(lo, hi))]
    grids = np.ogrid[tuple(slice(a - ci, b - ci) for a, b, ci in zip(lo, hi, c))]
    r = np.sqrt(sum(g.astype(np.float32) ** 2 for g in grids))
    return block[(r >= r_in) & (r <= r_out)]


class SmoothedVolume:
    """A 3D Gaussian-smoothed view of a volume, computed in z-slabs on demand.

    Each slab is filtered with a halo of the kernel's radius, so every value equals that
    of ``ndimage.gaussian_filter`` on the whole volume; the last few slabs are kept
    (least recently used first out), which suits requests that move slowly in z (callers
    visit particles in z order). Memory: ``keep`` slabs of about ``slab_voxels``, at least
    enough to hold ``span`` planes (one particle's neighbourhood)."""

    def __init__(
        self, volume, sigma: float, slab_voxels: float = 16e6, keep: int = 4, span: float = 0.0
    ):
        self.volume, self.sigma = volume, float(sigma)
        self.shape = tuple(int(s) for s in volume.shape)
        self.radius = int(4.0 * self.sigma + 0.5) if self.sigma > 0.3 else 0
        plane = self.shape[1] * self.shape[2]
        self.thick = int(np.clip(slab_voxels // max(plane, 1), 8, max(8, self.shape[0])))
        # enough slabs for one particle's whole neighbourhood (``span`` planes) plus one
        self.keep = max(keep, int(np.ceil(span / self.thick)) + 2)
        self.slabs: dict[int, np.ndarray] = {}
        self._stats: tuple[float, float] | None = None

    def _slab(self, k: int) -> np.ndarray:
        if k in self.slabs:
            self.slabs[k] = self.slabs.pop(k)  # most recently used last
            return self.slabs[k]
        z0, z1 = k * self.thick, min(self.shape[0], (k + 1) * self.thick)
        a, b = max(0, z0 - self.radius), min(self.shape[0], z1 + self.radius)
        block = np.asarray(self.volume[a:b], dtype=np.float32)
        if self.radius:
            block = ndimage.gaussian_filter(block, self.sigma)
        self.slabs[k] = np.ascontiguousarray(block[z0 - a : z1 - a])
        while len(self.slabs) > self.keep:
            self.slabs.pop(next(iter(self.slabs)))
        return self.slabs[k]

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        zk = key[0]
        if isinstance(zk, (int, np.integer)):
            z = int(zk) + (self.shape[0] if zk < 0 else 0)
            return self._slab(z // self.thick)[(z % self.thick,) + key[1:]]
        z0, z1, step = zk.indices(self.shape[0])
        if step != 1:
            raise ValueError("SmoothedVolume supports z-slices with step 1")
        parts = []
        for k in range(z0 // self.thick, (max(z1, z0 + 1) - 1) // self.thick + 1):
            lo, hi = max(z0, k * self.thick), min(z1, (k + 1) * self.thick)
            if hi > lo:
                parts.append(
                    self._slab(k)[(slice(lo - k * self.thick, hi - k * self.thick),) + key[1:]]
                )
        if not parts:  # an empty z range
            return np.zeros((0,) + self._slab(0)[(0,) + key[1:]].shape, np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def stats(self) -> tuple[float, float]:
        """Median and standard deviation, from a central block (for fallbacks)."""
        if self._stats is None:
            c = [s // 2 for s in self.shape]
            box = tuple(slice(max(0, x - 48), x + 48) for x in c)
            block = self[box]
            self._stats = (float(np.median(block)), float(block.std()))
        return self._stats


class ClassicalSegmenter:
    """Seeded, size-bounded region growing on a denoised volume (no weights)."""

    name = "classical"

    def __init__(self, config: Config | None = None):
        self.config = config or Config()
        self.smooth: np.ndarray | None = None
        self.diameter_px = 10.0
        self.level = 0.0
        self.scale = 1.0
        self._source: np.ndarray | None = None
        self._sigma = -1.0

    def signature(self) -> dict:
        c = self.config
        return {"name": self.name, "smoothing_factor": c.smoothing_factor, "level": c.level}

    def set_volume(self, volume: np.ndarray, diameter_px: float) -> None:
        self.diameter_px = float(diameter_px)
        sigma = round(self.config.smoothing_factor * self.diameter_px, 1)
        if self._source is volume and self._sigma == sigma:  # same data, same denoising
            return
        # a particle's requests reach 1.5 diameters either side of its prompt
        self.smooth = SmoothedVolume(volume, sigma, span=3 * self.diameter_px + 3)
        self._source, self._sigma = volume, sigma

    def begin_instance(self, point_zyx: np.ndarray) -> None:
        d = self.diameter_px
        c = np.clip(np.round(point_zyx).astype(int), 0, np.asarray(self.smooth.shape) - 1)
        cfg = self.config
        inner = _ball_values(self.smooth, c, 0.0, max(1.5, cfg.interior_radius_factor * d))
        r_in, r_out = cfg.background_shell
        shell = _ball_values(self.smooth, c, r_in * d, r_out * d)
        interior = float(np.percentile(inner, self.config.interior_percentile))
        background = float(np.median(shell)) if shell.size else self.smooth.stats()[0]
        if interior <= background:  # nothing brighter than its surroundings here
            background = interior - self.smooth.stats()[1]
        self.scale = interior - background
        self.level = background + self.config.level * self.scale

    def segment(self, axis, index, window, points_uv, labels, mask_logits=None) -> SliceResult:
        key = [window[0], window[1]]
        key.insert(axis, index)
        img = self.smooth[tuple(key)]
        d = self.diameter_px
        cfg = self.config
        fg = img > self.level
        pts = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(labels).reshape(-1)
        pos, neg = pts[labels > 0], pts[labels <= 0]
        prev = None if mask_logits is None else mask_logits > 0
        if prev is not None and prev.any():
            grow = max(1.0, cfg.seed_radius_factor * d * 0.5)
            fg &= _dilated(prev, grow)
        comps, n = ndimage.label(fg)
        if n == 0:
            return self._empty(img.shape)
        near = np.zeros(img.shape, dtype=bool)
        seed = _seed_disk(max(1.5, cfg.seed_radius_factor * d) ** 2)
        for u, v in np.round(pos).astype(int):  # pixels within the seed radius of a point
            if 0 <= u < img.shape[0] and 0 <= v < img.shape[1]:
                _stamp(near, seed, u, v)
        if prev is not None:
            near |= prev
        keep = np.zeros(n + 1, bool)  # per component: under a seed (a lookup, no sort)
        keep[comps[near & fg]] = True
        for u, v in np.round(neg).astype(int):
            if 0 <= u < img.shape[0] and 0 <= v < img.shape[1]:
                keep[comps[u, v]] = False
        keep[0] = False
        if not keep.any():
            return self._empty(img.shape)
        mask = keep[comps]
        # close gaps and fill lumens to find the particle's extent, then keep only its
        # foreground: walls of a hollow particle, not its lumen
        # the closing, hole filling and distance transform only touch the mask's bounding
        # box and a margin (the closing's radius and one zero pixel): worked on that crop,
        # with zeros around it, they give what they give on the whole slice, faster
        rc = cfg.closing_factor * d
        pad = int(np.ceil(rc)) + 1 if rc >= 1.0 else 1
        crop, (u0, v0) = _crop(mask, pad)
        region = crop
        if rc >= 1.0:
            region = ndimage.binary_closing(crop, _disk(rc))
        region = ndimage.binary_fill_holes(region)
        u1, v1 = u0 + crop.shape[0] - 2 * pad, v0 + crop.shape[1] - 2 * pad
        inner = (slice(pad, -pad), slice(pad, -pad))
        mask[u0:u1, v0:v1] |= region[inner] & fg[u0:u1, v0:v1]
        contrast = float(img[mask].mean() - self.level) / (self.scale + 1e-12)
        # inside: distance to the edge (the deepest point prompts the next slice); outside
        # the value only has to be negative, so the second distance transform is skipped
        # (on the box and one pixel more inside the slice: the slice's edge is no edge)
        logits = np.full(img.shape, -1.0, np.float32)
        box = (slice(max(u0 - 1, 0), u1 + 1), slice(max(v0 - 1, 0), v1 + 1))
        inside = mask[box]
        logits[box][inside] = ndimage.distance_transform_edt(inside)[inside]
        return SliceResult(mask, logits, float(np.clip(contrast * 2, 0, 1)))

    def refine(self, mask: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Grow a propagated 3D mask by up to ``grow_factor`` diameters into voxels above
        the low ``envelope_level`` (hysteresis), so its edge sits on the molecular
        envelope rather than on the stricter propagation level."""
        steps = int(round(self.config.grow_factor * self.diameter_px))
        if steps < 1 or not mask.any():
            return mask
        box = tuple(slice(o, o + s) for o, s in zip(offset, mask.shape))
        low = self.level - (self.config.level - self.config.envelope_level) * self.scale
        allowed = self.smooth[box] > low
        grown = mask.copy()
        for _ in range(steps):
            grown |= ndimage.binary_dilation(grown) & allowed
        return grown

    @staticmethod
    def _empty(shape) -> SliceResult:
        return SliceResult(np.zeros(shape, bool), np.full(shape, -1.0, np.float32), 0.0)
