import numpy as np
import pytest

from cryosam.config import Config
from cryosam.eval.metrics import dice_iou
from cryosam.method.propagate import propagate_instance
from cryosam.models import make_segmenter
from cryosam.simulate.species import template
from cryosam.volume.prepare import prepare_volume
from tests.conftest import small_sim


@pytest.fixture(scope="module")
def sim():
    return small_sim(
        (64, 128, 128), {"ribosome": 0.04, "proteasome": 0.01, "ball": 0.01}, seed=9, vesicles=1
    )


def dice_of(sim, cls, config, n=6):
    d = template(cls, 10.0).diameter_angst / 10.0
    vol, inverted = prepare_volume(sim.tomogram, "auto", d)
    assert inverted  # simulated tomograms have dark protein
    seg = make_segmenter("classical", config=config)
    seg.set_volume(vol, d)
    out = []
    rows = [o for o in sim.particles if o["class"] == cls][:n]
    for o in rows:
        m = propagate_instance(seg, vol.shape, (o["z"], o["y"], o["x"]), d, config)
        full = np.zeros(vol.shape, bool)
        full[m.box()] = m.mask
        out.append(dice_iou(full, sim.scene.instances == o["instance"])[0])
    return float(np.median(out))


def test_classical_segments_ribosomes_and_balls(sim):
    assert dice_of(sim, "ribosome", Config()) > 0.7
    assert dice_of(sim, "ball", Config()) > 0.6


def test_prompt_inside_a_barrel_segments_the_barrel_not_its_lumen(sim):
    d = template("proteasome", 10.0).diameter_angst / 10.0
    vol, _ = prepare_volume(sim.tomogram, "yes", d)
    seg = make_segmenter("classical")
    seg.set_volume(vol, d)
    o = next(o for o in sim.particles if o["class"] == "proteasome")
    assert sim.scene.instances[int(o["z"]), int(o["y"]), int(o["x"])] == 0  # lumen
    m = propagate_instance(seg, vol.shape, (o["z"], o["y"], o["x"]), d)
    full = np.zeros(vol.shape, bool)
    full[m.box()] = m.mask
    truth = sim.scene.instances == o["instance"]
    assert (full & truth).sum() > 0.4 * truth.sum()


def test_union_contains_vote_and_axes_are_respected(sim):
    d = template("ribosome", 10.0).diameter_angst / 10.0
    vol, _ = prepare_volume(sim.tomogram, "yes", d)
    o = next(o for o in sim.particles if o["class"] == "ribosome")
    p = (o["z"], o["y"], o["x"])
    masks = {}
    for comb, axes in [("union", "zyx"), ("vote", "zyx"), ("union", "z")]:
        cfg = Config(combine=comb, propagation_axes=axes)
        seg = make_segmenter("classical", config=cfg)
        seg.set_volume(vol, d)
        masks[comb, axes] = propagate_instance(seg, vol.shape, p, d, cfg)
    assert set(masks["union", "z"].slices) == {"z"}
    assert set(masks["union", "zyx"].slices) == {"z", "y", "x"}
    u, v = masks["union", "zyx"].mask, masks["vote", "zyx"].mask
    assert v.sum() > 0 and not (v & ~u).any()  # the vote lies inside the union
    assert not (masks["union", "z"].mask & ~u).any()  # one axis's stack is part of the union
    assert u.sum() > masks["union", "z"].mask.sum()  # the other axes add to it
    m = masks["union", "zyx"]
    full = np.zeros(vol.shape, bool)
    full[m.box()] = m.mask
    truth = sim.scene.instances == o["instance"]
    assert (full & truth).sum() > 0.5 * truth.sum() and (full & truth).sum() > 0.5 * full.sum()


def test_bound_stops_a_prompt_on_a_membrane_from_flooding(sim):
    ves = next(o for o in sim.scene.objects if o["class"] == "membrane")
    mem = np.argwhere(sim.scene.instances == ves["instance"])
    p = mem[len(mem) // 2]
    d = 20.0
    vol, _ = prepare_volume(sim.tomogram, "yes", d)
    seg = make_segmenter("classical")
    seg.set_volume(vol, d)
    m = propagate_instance(seg, vol.shape, p, d)
    extent = np.ptp(np.argwhere(m.mask), axis=0) if m.voxels else np.zeros(3)
    assert extent.max() <= 2 * Config().max_extent_factor * d + 1


def test_empty_where_there_is_nothing():
    vol = np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32)
    seg = make_segmenter("classical")
    seg.set_volume(vol, 10.0)
    m = propagate_instance(seg, vol.shape, (16, 16, 16), 10.0)
    assert m.voxels < 0.5 * np.pi / 6 * 10**3 * 8  # no flood of the volume


class NothingSegmenter:
    """A segmenter that finds nothing anywhere (to test the empty-mask contract)."""

    name = "nothing"

    def set_volume(self, volume, diameter_px):
        self.shape = volume.shape

    def begin_instance(self, point_zyx):
        pass

    def segment(self, axis, index, window, points_uv, labels, mask_logits=None):
        from cryosam.models.base import SliceResult

        h = window[0].stop - window[0].start
        w = window[1].stop - window[1].start
        return SliceResult(np.zeros((h, w), bool), np.full((h, w), -1.0, np.float32), 0.0)


def test_a_class_with_no_mask_at_all_is_an_error(sim):
    from cryosam.errors import CryosamError
    from cryosam.io.prompts import Prompt
    from cryosam.method.instances import segment_prompts

    prompts = [Prompt((30.0, 60.0, 60.0), "ribosome")]
    with pytest.raises(CryosamError, match="no prompt of class ribosome"):
        segment_prompts(sim.tomogram, prompts, {"ribosome": 29.0}, segmenter=NothingSegmenter())


def test_lazy_views_equal_whole_volume_filters():
    """The prepared view, the slab-wise denoising and the slab-wise binning give the same
    numbers as standardising, filtering and binning the whole volume at once."""
    from scipy import ndimage

    from cryosam.models.classical import SmoothedVolume
    from cryosam.volume.binning import bin_volume
    from cryosam.volume.prepare import PreparedVolume, standardise

    rng = np.random.default_rng(4)
    raw = rng.normal(3.0, 2.0, size=(45, 23, 31)).astype(np.float32)
    prepared = PreparedVolume(raw, invert=True)
    full = standardise(raw, True)
    np.testing.assert_array_equal(np.asarray(prepared), full)
    np.testing.assert_array_equal(prepared[5:9, 2, :], full[5:9, 2, :])
    smooth = SmoothedVolume(prepared, 1.7, slab_voxels=8 * 23 * 31, keep=2)
    assert smooth.thick == 8
    ref = ndimage.gaussian_filter(full, 1.7)
    for key in [(slice(0, 45),), (slice(6, 30), slice(3, 9), 4), (17,), (slice(40, 45), 0)]:
        np.testing.assert_allclose(smooth[key], ref[key], rtol=0, atol=1e-6)
    assert len(smooth.slabs) <= 2
    np.testing.assert_allclose(
        bin_volume(prepared, 3, slab_voxels=2 * 3 * 21 * 30), bin_volume(full, 3), rtol=0, atol=1e-6
    )


def test_smoothed_slabs_cover_a_particle_neighbourhood():
    from cryosam.models.classical import SmoothedVolume

    vol = np.zeros((200, 20, 20), np.float32)
    s = SmoothedVolume(vol, 2.0, slab_voxels=8 * 400, keep=2, span=90)
    assert s.thick == 8 and s.keep >= 90 / 8 + 1
    s[10:100]
    first = {k: id(v) for k, v in s.slabs.items()}
    s[12:98]  # the same neighbourhood again: nothing recomputed, nothing evicted
    assert len(first) == 12 and {k: id(v) for k, v in s.slabs.items()} == first


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slice_morphology_on_the_mask_crop_equals_the_whole_slice(seed):
    """The classical segmenter dilates, closes, fills and measures depth on the mask's
    bounding box plus a margin: on masks that touch the slice's edges too, each gives what
    scipy gives on the whole slice."""
    from scipy import ndimage

    from cryosam.models.classical import _crop, _dilated, _disk, _seed_disk, _stamp

    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((40, 33)) > 0.55)
    mask[:, :3] |= rng.random((40, 3)) > 0.5  # touches the edge
    for r in (1.0, 2.5, 4.0):
        assert np.array_equal(_dilated(mask, r), ndimage.binary_dilation(mask, _disk(r)))
    crop, (u0, v0) = _crop(mask, 5)
    rows, cols = np.nonzero(mask)
    assert (u0, v0) == (rows.min(), cols.min()) and crop.sum() == mask.sum()
    assert not crop[:5].any() and not crop[:, -5:].any()
    near = np.zeros(mask.shape, bool)
    for u, v in [(0, 0), (20, 16), (39, 32), (38, 1)]:
        _stamp(near, _seed_disk(12.25), u, v)
    uu, vv = np.ogrid[:40, :33]
    want = np.zeros(mask.shape, bool)
    for u, v in [(0, 0), (20, 16), (39, 32), (38, 1)]:
        want |= (uu - u) ** 2 + (vv - v) ** 2 <= 12.25
    assert np.array_equal(near, want)


def test_segmenter_slice_equals_the_whole_slice_computation():
    """A slice segmented on crops (see above) equals the plain whole-slice computation:
    components near the seeds, closed, filled, kept on the foreground; depth inside."""
    from scipy import ndimage

    from cryosam.models.classical import ClassicalSegmenter, _disk

    rng = np.random.default_rng(4)
    vol = ndimage.gaussian_filter(rng.normal(size=(30, 48, 48)), 1.5).astype(np.float32)
    seg = ClassicalSegmenter(Config())
    seg.set_volume(vol, 12.0)
    seg.begin_instance(np.array([15.0, 24.0, 24.0]))
    window = (slice(4, 44), slice(2, 46))
    for u, v in [(20, 22), (1, 1), (38, 40)]:
        got = seg.segment(0, 15, window, [(u, v)], [1])
        img = seg.smooth[(15, *window)]
        fg = img > seg.level
        comps, _ = ndimage.label(fg)
        uu, vv = np.ogrid[: img.shape[0], : img.shape[1]]
        near = (uu - u) ** 2 + (vv - v) ** 2 <= max(1.5, seg.config.seed_radius_factor * 12) ** 2
        keep = np.unique(comps[near & fg])
        keep = keep[keep > 0]
        if not len(keep):
            assert not got.mask.any()
            continue
        mask = np.isin(comps, keep)
        rc = seg.config.closing_factor * 12
        pad = int(np.ceil(rc)) + 1
        region = ndimage.binary_closing(np.pad(mask, pad), _disk(rc))[pad:-pad, pad:-pad]
        want = ndimage.binary_fill_holes(region) & fg | mask
        depth = np.where(want, ndimage.distance_transform_edt(want), -1.0).astype(np.float32)
        assert np.array_equal(got.mask, want) and np.array_equal(got.logits, depth)
