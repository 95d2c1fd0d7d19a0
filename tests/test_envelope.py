"""Masks trimmed to the class's aligned envelope (method.envelope)."""

import numpy as np
from scipy.spatial.transform import Rotation

from cryosam.method.envelope import class_envelope, trim_mask
from cryosam.method.propagate import InstanceMask


def _ellipsoid(n: int, axes_zyx, centre=None) -> np.ndarray:
    c = np.full(3, (n - 1) / 2.0) if centre is None else np.asarray(centre, float)
    g = np.indices((n,) * 3).astype(float)
    return sum(((g[i] - c[i]) / axes_zyx[i]) ** 2 for i in range(3)) <= 1.0


def test_class_envelope_is_the_dense_connected_part_of_the_requested_size():
    n = 31
    body = _ellipsoid(n, (11, 5, 5))  # long along z
    stray = _ellipsoid(n, (2.5, 2.5, 2.5), centre=(15, 15, 26))  # apart, just as dense
    rng = np.random.default_rng(0)
    average = 1.0 * (body | stray) + 0.1 * rng.normal(size=body.shape)
    env = class_envelope(average, body.sum())
    assert env[15, 15, 15]
    assert not env[15, 15, 26]  # the disconnected blob is not the particle
    assert 0.8 * body.sum() < env.sum() <= body.sum()
    zs, ys, xs = np.nonzero(env)
    assert np.ptp(zs) > 1.8 * np.ptp(xs)  # the shape of the average, not a ball


def test_trim_cuts_a_leak_and_follows_the_pick_rotation():
    n, size = 31, 72
    # the class: long along its z, with a knob at its +z end (so a turn and its inverse differ)
    envelope = _ellipsoid(n, (12, 5, 5)) | _ellipsoid(n, (3.5, 3.5, 3.5), centre=(28, 15, 15))
    # the pick: the class turned so that its z lies along the volume's x
    M = Rotation.from_rotvec([0, np.pi / 2, 0]).as_matrix()  # (z, y, x) vectors: z -> -x
    assert np.allclose(M @ [1, 0, 0], [0, 0, -1])
    centre = np.array([36.0, 36.0, 36.0])
    knob = _ellipsoid(size, (3, 3, 3), centre=centre + [0, 0, -13])  # the +z end, turned
    body = _ellipsoid(size, (5, 5, 11), centre=centre) | knob
    leak = np.zeros_like(body)
    leak[34:39, 34:39, 36:60] = True  # runs along x, far past the particle
    leak[34:39, 36:66, 34:39] = True  # and along y into a neighbour
    lo = np.array([20, 22, 18])  # the mask's box in the volume
    mask = InstanceMask((body | leak)[20:50, 22:70, 18:64], lo, centre)
    g = np.indices(body.shape) - centre[:, None, None, None]
    past = (g[0] / 5.5) ** 2 + (g[1] / 5.5) ** 2 + (g[2] / 12.5) ** 2 > 1
    past &= ~knob  # beyond the particle's body and knob

    kept = np.zeros_like(body)
    trimmed = trim_mask(mask, centre, M, envelope)
    trimmed.paste(kept, True)
    assert np.array_equal(trimmed.offset, lo) and trimmed.voxels < mask.voxels
    assert kept[body].mean() > 0.95 and kept[knob].mean() > 0.9  # the particle stays
    assert leak[past].sum() > 300 and not kept[leak & past].any()  # its leaks are gone
    assert trim_mask(mask, centre, np.full((3, 3), np.nan), envelope) is mask  # no rotation

    # trimmed as if unturned, most of the particle goes; turned the other way, its knob
    for wrong in (np.eye(3), M.T):
        again = np.zeros_like(body)
        trim_mask(mask, centre, wrong, envelope).paste(again, True)
        assert again[body].mean() < 0.7 or again[knob].mean() < 0.5
