"""Shape verification: centring, rotation-searched correlation, reference refinement, cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import cryosam.method.cut as cut_module
from cryosam.config import Config
from cryosam.method.candidates import Status
from cryosam.method.cut import (
    MAJORITY_KNEE_SEPARATION,
    CutRule,
    confident_cut,
    separation,
    shape_cut,
)
from cryosam.method.verify import (
    Reference,
    ShapeVerifier,
    binning,
    combined_score,
    mass_adjusted,
    of_class_mass,
    rescue_from_blobs,
    rotate_box,
    verify_candidates,
)
from cryosam.simulate.species import rotate_template, template
from cryosam.volume.binning import extract_boxes

VOXEL = 10.0


def scene(names, seed=0, noise=0.6, spacing=30):
    """Copies of species on a grid, each randomly rotated, in Gaussian noise.
    Returns the volume and each copy's (centre, name)."""
    rng = np.random.default_rng(seed)
    k = int(np.ceil(len(names) ** (1 / 3)))
    side = spacing * (k + 1)
    vol = np.zeros((side, side, side), np.float32)
    placed = []
    for i, name in enumerate(names):
        c = (np.array(np.unravel_index(i, (k, k, k))) + 1) * spacing
        dens, _ = rotate_template(template(name, VOXEL), Rotation.random(random_state=rng))
        h = np.array(dens.shape) // 2
        vol[tuple(slice(a - b, a - b + s) for a, b, s in zip(c, h, dens.shape))] += dens
        placed.append((c.astype(float), name))
    vol += rng.normal(0, noise, vol.shape).astype(np.float32)
    return vol, placed


def diameter(name):
    return template(name, VOXEL).diameter_angst / VOXEL


FINE = Config(verify_bin_px=20.0)
"""The barrel and its double-ring look-alike (20 voxels across) differ in details of 2-3
voxels that binning by 2 (the default at 20 voxels) erases: these tests verify at full
sampling."""


def test_binning_makes_the_particle_span_the_nearest_to_the_target():
    """The particle spans about ``verify_bin_px`` voxels after binning: the nearest integer
    bin (a 239 Å ribosome at 10 Å, 23.9 voxels, is binned 2 like a 250 Å one: left at full
    sampling it spanned 24 voxels, and the crowded dev2 pick fell from F1 0.62 to 0.11)."""
    assert binning(23.9, 12.0) == binning(25.0, 12.0) == 2
    assert binning(17.0, 12.0) == 1 and binning(19.0, 12.0) == 2
    assert binning(31.0, 12.0) == 3 and binning(3.0, 12.0) == 1


def test_reference_round_trip_and_pool():
    rng = np.random.default_rng(1)
    a = Reference(
        rng.normal(size=(9, 9, 9)).astype(np.float32),
        rng.uniform(size=(9, 9, 9)).astype(np.float32),
        2,
        3,
    )
    b = Reference.from_dict(a.to_dict())
    assert b.bin == 2 and b.n_particles == 3
    assert np.allclose(a.template, b.template, atol=2e-3)
    pooled = Reference.pool([a, Reference(np.zeros_like(a.template), a.weight, 2, 1)])
    assert np.allclose(pooled.template, a.template * 3 / 4, atol=1e-5)
    other = Reference(np.zeros((7, 7, 7), np.float32), np.ones((7, 7, 7), np.float32), 2)
    assert Reference.pool([a, other]) is None


def test_extract_boxes_centres_and_pads():
    vol = np.arange(20**3, dtype=np.float32).reshape(20, 20, 20)
    box = extract_boxes(vol, [(10, 10, 10)], 5, 1)[0]
    assert box[2, 2, 2] == vol[10, 10, 10]
    edge = extract_boxes(vol, [(0, 0, 0)], 5, 1)[0]
    assert edge[0, 0, 0] == 0 and edge[2, 2, 2] == vol[0, 0, 0]
    binned = extract_boxes(vol, [(10, 10, 10)], 3, 2)
    assert binned.shape == (1, 3, 3, 3)


def test_climbing_moves_offset_candidates_onto_particles():
    vol, placed = scene(["proteasome"] * 8, seed=2)
    d = diameter("proteasome")
    v = ShapeVerifier(vol, d)
    ref = v.reference([placed[0][0]])
    rng = np.random.default_rng(3)
    truth = np.array([c for c, _ in placed])
    off = rng.uniform(-1, 1, truth.shape)
    off *= (0.25 * d) / np.linalg.norm(off, axis=1, keepdims=True)
    before_scores, _ = v.score(ref, truth + off)
    scores, _, climbed = v.climb(ref, truth + off, 3)
    before = np.linalg.norm(off, axis=1).mean()
    after = np.linalg.norm(climbed - truth, axis=1).mean()
    assert after < 0.5 * before
    assert (scores >= before_scores - 1e-6).all() and scores.mean() > before_scores.mean()


def test_rotation_search_separates_the_barrel_from_its_look_alike():
    names = ["proteasome"] * 8 + ["double_ring"] * 8 + ["ball"] * 4
    vol, placed = scene(names, seed=4, noise=0.5)
    v = ShapeVerifier(vol, diameter("proteasome"), FINE)
    ref = v.reference([placed[0][0]])
    pts = np.array([c for c, _ in placed])
    scores, align = v.score(ref, pts)
    true = np.array([n == "proteasome" for _, n in placed])
    assert scores[true][1:].min() > scores[~true].max()
    assert align.shape == (len(pts), 2)


def ribosomes(n, seed, noise):
    """``n`` ribosomes in noise: the volume, a verifier for them, their centres, diameter."""
    vol, placed = scene(["ribosome"] * n, seed=seed, noise=noise, spacing=36)
    d = diameter("ribosome")
    return vol, ShapeVerifier(vol, d), np.array([c for c, _ in placed]), d


def test_refinement_makes_the_reference_cleaner():
    _, v, pts, d = ribosomes(27, seed=5, noise=1.5)
    ref = v.reference(pts[:1])
    scores, align = v.score(ref, pts)
    refined = v.refine(ref, pts[1:], scores[1:], align[1:], 20)
    assert refined.n_particles == 21
    # a noise-free ribosome: the refined reference correlates better with it
    dens = template("ribosome", VOXEL).density
    clean = np.zeros((3 * dens.shape[0],) * 3, np.float32)
    c = np.array(clean.shape) // 2
    h = np.array(dens.shape) // 2
    clean[tuple(slice(a - b, a - b + s) for a, b, s in zip(c, h, dens.shape))] = dens
    judge = ShapeVerifier(clean, d)

    def corr(r):
        return float(judge.score(Reference(r.template, ref.weight, r.bin), [c])[0][0])

    assert corr(refined) > corr(ref) + 0.1


def test_several_prompts_are_aligned_before_averaging():
    vol, v, pts, _ = ribosomes(8, seed=10, noise=1.0)
    aligned = v.reference(pts[:6])
    assert aligned.n_particles == 6
    unaligned = Reference(extract_boxes(vol, pts[:6], v.n, v.bin).mean(0), aligned.weight, v.bin)
    # judged on the particles that were not prompted
    good, _ = v.score(aligned, pts[6:])
    blurred, _ = v.score(unaligned, pts[6:])
    assert good.mean() > blurred.mean() + 0.05


def test_shape_cut_finds_the_matches_mode_or_the_knee():
    rng = np.random.default_rng(6)
    bulk = rng.normal(0.25, 0.05, 400)
    high = rng.normal(0.55, 0.05, 30)
    cut = shape_cut(np.concatenate([bulk, high]))  # a population of its own: the valley
    assert cut.rule is CutRule.SHAPE_VALLEY
    assert (high >= cut.value).mean() > 0.95 and (bulk >= cut.value).mean() < 0.01
    # matches as a long tail of the bulk: the knee of the ranked scores
    tail = np.concatenate([bulk, rng.uniform(0.35, 0.6, 60)])
    cut = shape_cut(tail)
    assert cut.rule is CutRule.SHAPE_KNEE and 0.3 < cut.value < 0.45
    # a plateau of matches that drops into the rest: the end of the plateau
    plateau = np.r_[rng.uniform(0.68, 0.82, 9), rng.uniform(0.0, 0.46, 13)]
    cut = shape_cut(plateau)
    assert (plateau >= cut.value).sum() == 9
    # a dozen candidates, half of them matches, the rest spread down to an outlier: the gap
    # between the two groups (the upper half's knee would fall among the matches)
    for seed in range(5):
        r = np.random.default_rng(seed)
        few = np.r_[r.uniform(0.65, 0.9, 6), r.uniform(0.2, 0.42, 5), -0.01]
        cut = shape_cut(few)
        assert (few >= cut.value).sum() == 6, (seed, cut)
        assert confident_cut(few).value >= cut.value  # the reference's matches: surest first
    # one population (a uniform spread): no knee, everything above the floor stays
    flat = shape_cut(np.linspace(0.3, 0.6, 300), floor=0.1)
    assert flat.rule is CutRule.SHAPE_NO_KNEE and flat.value <= 0.3
    assert shape_cut([0.5, 0.6], floor=0.1).value == 0.1  # too few for a distribution


def test_when_matches_are_most_candidates_the_cut_is_the_gap_below_them():
    # a cell packed with the target: 240 matches (a few poorly aligned, lower) over 180
    # candidates of junk spread below; the upper half is all matches, and its knee falls
    # among them (it kept 17-34 of the 240)
    for seed in range(5):
        r = np.random.default_rng(seed)
        matches = np.r_[r.normal(0.5, 0.07, 220), r.uniform(0.1, 0.35, 20)]
        junk = r.uniform(-0.5, 0.2, 180)
        cut = shape_cut(np.r_[matches, junk], strays_follow=True)
        assert cut.rule is CutRule.SHAPE_MAJORITY, (seed, cut)
        assert (matches >= cut.value).sum() >= 215 and (junk >= cut.value).sum() <= 2
    # the matches a minority above the same junk: their knee stands
    r = np.random.default_rng(0)
    few = np.r_[r.normal(0.5, 0.07, 60), r.uniform(-0.5, 0.2, 400), r.uniform(0.2, 0.35, 40)]
    assert shape_cut(few).rule is not CutRule.SHAPE_MAJORITY


def test_a_knee_that_stands_clear_is_not_lowered_to_a_valley_below_it(monkeypatch):
    # the scores at the cut of one pick (a sparse proteasome at half the dose, our simulator's
    # scene of the real maps, truth kept as ``match``): 74 proteasomes, and below them
    # ribosomes and TRiC rings above the background, with a valley between those two groups
    z = np.load(Path(__file__).parent / "data" / "half_dose_cut_scores.npz")
    x, match = z["scores"], z["match"]
    cut = shape_cut(x, float(z["floor"]), strays_follow=True)
    kept = x >= cut.value
    assert cut.rule is CutRule.SHAPE_KNEE and separation(x, cut.value) >= MAJORITY_KNEE_SEPARATION
    assert kept.sum() < 90 and (kept & match).sum() >= 60
    # without the limit the valley below took the cut among the look-alikes
    monkeypatch.setattr(cut_module, "MAJORITY_KNEE_SEPARATION", np.inf)
    low = shape_cut(x, float(z["floor"]), strays_follow=True)
    assert low.rule is CutRule.SHAPE_MAJORITY and (x >= low.value).sum() > 3 * kept.sum()


def test_with_strays_to_follow_the_cut_takes_the_knee_below_a_valley():
    # a small mode of matches with a tail into many look-alikes: the valley lies in the tail
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.gamma(2, 0.06, 1200), rng.normal(0.5, 0.06, 140)])
    alone = shape_cut(x)
    followed = shape_cut(x, strays_follow=True)
    assert alone.rule is CutRule.SHAPE_VALLEY and followed.rule is CutRule.SHAPE_KNEE
    assert followed.value < alone.value
    # without a valley (one long tail) the cut is the same either way
    tail = rng.gamma(2, 0.06, 1200)
    assert shape_cut(tail, strays_follow=True) == shape_cut(tail)


def test_combined_score_lets_the_features_vote():
    corr = np.array([0.30, 0.30, 0.20, 0.25])
    sim = np.array([0.99, 0.90, 0.95, 0.95])
    free = np.ones(4, bool)
    both = combined_score(corr, sim, free, 0.5)
    assert both[0] > both[1]  # same shape score, better features
    assert np.allclose(combined_score(corr, sim, free, 0.0), corr)
    assert np.allclose(combined_score(corr, None, free, 0.5), corr)


def test_mass_ranks_a_lighter_particle_of_the_same_shape_lower():
    """Pearson correlation is blind to scale: copies at 55 % density (a subunit, a lighter
    complex) are told apart by their mass alone, and within the tolerance nothing moves."""
    vol, placed = scene(["ribosome"] * 16, seed=3, noise=0.0)
    pts = np.array([c for c, _ in placed])
    light = np.arange(16) % 2 == 1
    d = diameter("ribosome")
    half = 15  # the grid spacing is 30: each copy owns the cube around it
    for c in pts[light].astype(int):
        vol[tuple(slice(a - half, a + half) for a in c)] *= 0.55
    vol += np.random.default_rng(3).normal(0, 0.3, vol.shape).astype(np.float32)
    v = ShapeVerifier(vol, d)
    mass = v.mass(pts)
    assert mass[~light].min() > 1.3 * mass[light].max()
    # shape scores that cannot tell them apart: each light copy scores as its heavy twin
    flat = np.repeat(np.linspace(0.3, 0.6, 8), 2) + 0.01 * ~light
    free = np.ones(16, bool)
    adjusted = mass_adjusted(flat, mass, free, [14, 15, 12], 0.25)  # known: 2 heavy, 1 light
    spread = 1.4826 * np.median(np.abs(flat - np.median(flat)))
    assert np.all(adjusted[~light] - adjusted[light] > 0.3 * spread)
    assert np.allclose(adjusted[~light], flat[~light])  # the class's mass: unchanged
    assert np.allclose(mass_adjusted(flat, mass, free, [14, 15, 12], 0.0), flat)
    # the class's mass window holds the heavy copies and none of the light ones
    ok = of_class_mass(mass, [14, 15, 12], 0.25)
    assert ok[~light].all() and not ok[light].any()
    assert of_class_mass(mass, [], 0.25) is None and of_class_mass(mass, [14], 0.0) is None
    # known matches whose masses spread as widely as their median (a ring near its
    # background's mass) count nothing
    wide = np.array([0.02, 0.0, 0.05, 0.01, 0.04, 0.03])
    assert of_class_mass(wide, np.arange(6), 0.25) is None
    assert of_class_mass(wide + 0.3, np.arange(6), 0.25).all()


def test_the_mask_margin_sees_the_edge_of_a_particle_larger_than_the_typed_diameter():
    """A user types 16 voxels for a particle 18 across, beside a particle 15 across: cut at
    the typed radius, the mask holds the inside of either and no edge, so they correlate
    alike; ``verify_mask_margin`` (10 % past it) sees where each ends."""
    vol = np.zeros((40, 40, 40 * 8), np.float32)
    r = np.sqrt(((np.indices((40, 40, 40)) - 20.0) ** 2).sum(0))
    pts = []
    for i in range(8):
        vol[:, :, 40 * i : 40 * (i + 1)] = r <= (9 if i % 2 == 0 else 7.5)
        pts.append((20, 20, 40 * i + 20))
    vol += np.random.default_rng(0).normal(0, 0.3, vol.shape).astype(np.float32)
    pts = np.array(pts, float)
    gaps = {}
    for margin in (0.0, 0.1):
        v = ShapeVerifier(vol, 16.0, Config(verify_mask_margin=margin))
        corr, _ = v.score(v.reference(pts[:1]), pts[1:])
        same, smaller = corr[1::2], corr[::2]
        gaps[margin] = same.min() - smaller.max()
    assert gaps[0.0] < 0.02  # at the typed radius: no edge, the two alike
    assert gaps[0.1] > 0.05  # past it: the same size correlates better than the smaller


def test_band_contrast_sees_a_halo_that_the_mass_does_not():
    """Two equal balls, one ringed by a thin halo just outside its radius: the rim band
    (1-1.25 radii) tells them apart, the mass (ball less the 1.15-1.5 shell) barely."""
    vol = np.zeros((40, 40, 80), np.float32)
    g = np.indices(vol.shape).astype(np.float64)
    centres = np.array([[20.0, 20.0, 20.0], [20.0, 20.0, 60.0]])
    dist = [np.sqrt(((g - c[:, None, None, None]) ** 2).sum(0)) for c in centres]
    for r in dist:
        vol[r <= 8] = 1.0
    vol[(dist[1] > 8) & (dist[1] <= 9.5)] = 0.5  # the halo
    vol += np.random.default_rng(0).normal(0, 0.1, vol.shape).astype(np.float32)
    v = ShapeVerifier(vol, 16.0)  # binning 1 at this size
    rim = v.band_contrast(centres, (1.0, 1.25), (1.5, 1.9))
    assert rim[1] > rim[0] + 0.3
    # the mass's bands: the whole ball, centre included, less the 1.15-1.5 radii shell
    mass = v.mass(centres)
    direct = [vol[r <= 8].mean() - np.median(vol[(r > 9.2) & (r <= 12)]) for r in dist]
    assert np.allclose(mass, direct, atol=1e-5)
    assert abs(mass[1] - mass[0]) < 0.1


def test_verify_candidates_merges_duplicates_and_honours_negatives():
    names = ["proteasome"] * 4 + ["double_ring"] * 4
    vol, placed = scene(names, seed=7, noise=0.4)
    d = diameter("proteasome")
    pts = np.array([c for c, _ in placed])
    cands = np.concatenate([pts, pts[:4] + 2.0])  # every barrel twice
    status = np.array([Status.CANDIDATE] * len(cands), dtype=object)
    v = ShapeVerifier(vol, d)
    ref = v.reference(pts[:1])
    config = Config(verify_rounds=(2,))
    v = verify_candidates(vol, cands, status, d, config, ref)
    assert (v.status == Status.DUPLICATE).sum() >= 3
    assert v.floor == 0.0 and v.reference.typical > 0  # a reference made here sets no floor
    assert v.reference.n_particles == 3  # the prompt and the best two
    elsewhere = Reference(ref.template, ref.weight, ref.bin, 5, typical=0.6)
    v2 = verify_candidates(vol, cands, status, d, config, elsewhere)
    assert v2.floor == pytest.approx(config.verify_typical_fraction * 0.6)
    neg = [pts[4]]  # a double ring marked as unwanted: it claims as many as the last round
    config = Config(verify_rounds=(2, 4))  # averages (4), all four rings here
    st2 = verify_candidates(vol, cands, status, d, config, ref, negatives=neg).status
    assert all(st2[4:8] == Status.NEGATIVE)
    assert not any(st2[[0, 1, 2, 3]] == Status.NEGATIVE)


@pytest.mark.parametrize("verify", [True, False])
def test_config_switch(verify):
    assert Config().with_overrides([f"verify={str(verify).lower()}"]).verify is verify


def test_verification_beats_feature_scores_beside_the_look_alike():
    """The barrel among as many double rings: picks with shape verification are better
    than with the paper's feature scores alone."""
    from cryosam.eval.metrics import score_picks
    from cryosam.io.prompts import Prompt
    from cryosam.method.pick import pick_particles
    from tests.conftest import small_sim

    sim = small_sim((64, 128, 128), {"proteasome": 0.03, "double_ring": 0.03}, snr=0.5, seed=4)
    barrels = sim.centres("proteasome")
    p = barrels[np.argmin(np.linalg.norm(barrels - np.array([32, 64, 64]), axis=1))]
    prompts, size = [Prompt(tuple(p), "proteasome")], {"proteasome": 20.0}
    on = pick_particles(sim.tomogram, prompts, size, FINE)
    off = pick_particles(sim.tomogram, prompts, size, FINE.replace(verify=False))
    f_on = score_picks(on.picks.zyx, barrels, 9.0).f1
    f_off = score_picks(off.picks.zyx, barrels, 9.0).f1
    assert f_on > f_off + 0.1, (f_on, f_off)
    # ranking and cut judged apart (with verify_from_blobs the knee of 58 candidates' upper
    # half keeps 17 of the 24 barrels here: F1 0.94 -> 0.80, the ranking still better)
    ranked = on.candidates.score, off.candidates.score
    best_on, best_off = (
        score_picks(c.zyx, barrels, 9.0, r).best_f1
        for c, r in zip((on.candidates, off.candidates), ranked)
    )
    assert best_on > best_off + 0.15, (best_on, best_off)
    assert on.queries["proteasome"].reference.n_particles > 1  # refined with its matches


def test_a_fine_map_is_low_passed_before_it_is_decimated():
    """``resample_map``: a 2 Å map (a smooth molecule under a 2-voxel checkerboard, on a
    background of 5) at 10 Å keeps the molecule and drops the checkerboard and the
    background; sampling every fifth voxel without the low-pass keeps the checkerboard."""
    from scipy import ndimage

    from cryosam.volume.resample import resample_map

    g = np.indices((80, 80, 80)) - 39.5
    blob = np.exp(-(g**2).sum(0) / (2 * 12.0**2))
    checker = np.where(np.indices((80, 80, 80)).sum(0) % 2 == 0, 1.0, -1.0)
    m = resample_map(5.0 + blob + checker, 2.0, 10.0)
    assert m.shape == (16, 16, 16)
    truth = ndimage.zoom(blob, 0.2, order=1, mode="nearest")
    assert abs(float(np.median(m[[0, -1]]))) < 0.05  # background gone
    assert np.corrcoef(m.ravel(), truth.ravel())[0, 1] > 0.95
    naive = ndimage.zoom(5.0 + blob + checker, 0.2, order=1, mode="nearest")
    assert np.corrcoef(naive.ravel(), truth.ravel())[0, 1] < 0.8  # what it replaced


def test_a_fourier_resampled_volume_lies_where_the_original_did():
    """``fourier_resample``: a smooth blob put on a finer grid (in slabs) has the values the
    blob has at the mapped places (sample ``j`` of ``m`` at ``j n / m`` of the original), and
    the way back gives the original; linear zoom, which aligns the ends, would not."""
    from scipy import ndimage

    from cryosam.volume.resample import fourier_resample

    n, shape = (20, 24, 30), (27, 33, 41)
    centre = np.array([9.3, 11.2, 14.7])

    def blob(points):  # a Gaussian of sigma 3 at ``centre``, at (3, ...) coordinates
        return np.exp(-((points - centre.reshape(3, 1, 1, 1)) ** 2).sum(0) / 18.0)

    v = blob(np.indices(n).astype(float))
    fine = fourier_resample(v, shape, slab_voxels=500)
    scale = (np.asarray(n, float) / np.asarray(shape, float)).reshape(3, 1, 1, 1)
    truth = blob(np.indices(shape) * scale)
    assert fine.dtype == np.float32 and fine.shape == shape
    assert np.abs(fine - truth).max() < 0.01
    assert np.abs(fourier_resample(fine, n) - v).max() < 1e-3
    zoomed = ndimage.zoom(v, np.asarray(shape) / np.asarray(n), order=1)
    assert np.abs(zoomed - truth).max() > 0.05  # what it is not


def test_the_last_round_also_climbs_from_the_nearest_blob_centre():
    # matches left a third of a diameter off with no climb (verify_climb 0): only the start
    # from the blob centre can bring them onto their particles
    vol, placed = scene(["proteasome"] * 8, seed=4, noise=0.4)
    d = diameter("proteasome")
    truth = np.array([c for c, _ in placed])
    off = np.random.default_rng(5).uniform(-1, 1, truth.shape)
    off *= (0.3 * d) / np.linalg.norm(off, axis=1, keepdims=True)
    status = np.array([Status.CANDIDATE] * len(truth), dtype=object)
    ref = ShapeVerifier(vol, d).reference(truth[:1])
    runs = {}
    for on in (False, True):
        config = Config(verify_rounds=(2,), verify_climb=0, verify_from_blobs=on)
        runs[on] = verify_candidates(vol, truth + off, status, d, config, ref)
    np.testing.assert_array_equal(runs[False].zyx, truth + off)
    moved = np.linalg.norm(runs[True].zyx - truth, axis=1)
    assert np.median(moved) < 0.1 * d
    assert runs[True].correlation.mean() > runs[False].correlation.mean() + 0.05


def test_rejected_matches_climb_again_from_their_blob_centre_unless_on_a_kept_place():
    # rejected matches a third of a diameter off (no climb: only the blob start can move
    # them); one lands where a match was kept and stays, those not tried stay
    vol, placed = scene(["proteasome"] * 8, seed=4, noise=0.4)
    d = diameter("proteasome")
    truth = np.array([c for c, _ in placed])
    off = np.random.default_rng(5).uniform(-1, 1, truth.shape)
    start = truth + off * (0.3 * d) / np.linalg.norm(off, axis=1, keepdims=True)
    config = Config(verify_climb=0)
    v = ShapeVerifier(vol, d, config)
    ref = v.reference(truth[:1])
    corr = v.climb(ref, start, 0)[0]
    score = corr + 1.0  # the score moves with the correlation, whatever its offset
    below = np.arange(8) < 6
    zyx, c2, s2 = rescue_from_blobs(vol, start, corr, score, below, truth[:1], d, config, ref)
    tried = np.arange(1, 6)
    assert np.linalg.norm(zyx[tried] - truth[tried], axis=1).max() < 0.1 * d
    assert np.all(c2[tried] > corr[tried] + 0.05)
    np.testing.assert_allclose(s2 - c2, score - corr)
    for i in (0, 6, 7):
        np.testing.assert_array_equal(zyx[i], start[i])
        assert c2[i] == corr[i] and s2[i] == score[i]


def test_a_negative_claims_only_clear_wins_over_the_class():
    """A candidate goes to a negative prompt only when the negative's correlation beats the
    class's by more than a correlation's standard error over the sphere (1 / sqrt(voxels)):
    a closer call is a tie and stays with the class."""
    from types import SimpleNamespace

    from cryosam.method.verify import _judge_negatives

    sphere = np.ones((10, 10, 10), bool)  # 1000 voxels: the margin is 1 / sqrt(1000)
    se = 1 / np.sqrt(sphere.sum())
    pos = np.full(6, 0.40)
    neg = pos + se * np.array([-1.0, 0.0, 0.5, 0.9, 1.5, 3.0])
    box = np.zeros(sphere.shape, np.float32)

    def score(ref, zc):  # the class's reference has the class's template (1), the negative's 0
        return (pos if ref.template.flat[0] == 1 else neg), np.zeros((len(zc), 2), int)

    v = SimpleNamespace(
        sphere=sphere, bin=1, score=score, reference=lambda pts: Reference(box, box, 1)
    )
    status = np.array([Status.CANDIDATE] * 5 + [Status.PROMPT], dtype=object)
    _judge_negatives(v, Reference(box + 1, box, 1), np.zeros((6, 3)), status, [(0, 0, 0)], 0)
    assert list(status == Status.NEGATIVE) == [False, False, False, False, True, False]


def test_a_negative_claims_only_among_its_own_best_matches():
    """Candidates unlike the class lean to any negative; a negative claims only those among
    its ``top`` best-correlating free candidates (here 3 of 8 that all beat the class by a
    clear margin), so it cannot act as a generic "not the class" filter."""
    from types import SimpleNamespace

    from cryosam.method.verify import _judge_negatives

    sphere = np.ones((10, 10, 10), bool)
    pos = np.full(9, 0.20)
    neg = np.array([0.30, 0.50, 0.35, 0.45, 0.31, 0.40, 0.32, 0.33, 0.90])
    box = np.zeros(sphere.shape, np.float32)

    def score(ref, zc):
        return (pos if ref.template.flat[0] == 1 else neg), np.zeros((len(zc), 2), int)

    v = SimpleNamespace(
        sphere=sphere,
        bin=1,
        score=score,
        reference=lambda pts: Reference(box, box, 1),
        refine=lambda ref, *args: ref,
    )
    status = np.array([Status.CANDIDATE] * 8 + [Status.PROMPT], dtype=object)
    _judge_negatives(v, Reference(box + 1, box, 1), np.zeros((9, 3)), status, [(0, 0, 0)], 3)
    assert list(np.flatnonzero(status == Status.NEGATIVE)) == [1, 3, 5]
    status = np.array([Status.CANDIDATE] * 8 + [Status.PROMPT], dtype=object)
    _judge_negatives(v, Reference(box + 1, box, 1), np.zeros((9, 3)), status, [(0, 0, 0)], 0)
    assert (status == Status.NEGATIVE).sum() == 8  # no rounds: no count to hold it to


def test_a_negative_claims_only_what_has_its_mass():
    """A negative claims (and refines its box from) only candidates whose mass lies within
    the class's tolerance of the negative's own: a lighter or heavier candidate that leans to
    its box is some other particle (a light ribosome beside TRiC negatives), and stays with
    the class."""
    from types import SimpleNamespace

    from cryosam.method.verify import _judge_negatives

    sphere = np.ones((10, 10, 10), bool)
    pos = np.full(6, 0.20)
    neg = np.full(6, 0.50)  # every candidate a clear win for the negative
    mass = np.array([1.0, 1.25, 0.5, 2.0, 0.8, 1.0])
    box = np.zeros(sphere.shape, np.float32)
    joined = []

    def score(ref, zc):
        return (pos if ref.template.flat[0] == 1 else neg), np.zeros((len(zc), 2), int)

    def refine(ref, zc, *args):
        joined.append(len(zc))
        return ref

    v = SimpleNamespace(
        sphere=sphere,
        bin=1,
        score=score,
        reference=lambda pts: Reference(box, box, 1),
        refine=refine,
        mass=lambda pts: np.ones(len(pts)),  # the negative's own mass
    )

    def judged(*mass_args):
        status = np.array([Status.CANDIDATE] * 5 + [Status.PROMPT], dtype=object)
        zc = np.zeros((6, 3))
        _judge_negatives(v, Reference(box + 1, box, 1), zc, status, [(0, 0, 0)], 5, *mass_args)
        return list(np.flatnonzero(status == Status.NEGATIVE))

    assert judged(mass, 0.3) == [0, 1, 4]
    assert joined == [3]  # the box averaged those three only
    assert judged(mass, 0.0) == [0, 1, 2, 3, 4]  # tolerance 0: mass is not asked
    assert judged() == [0, 1, 2, 3, 4]


def test_a_class_too_fine_for_its_bin_is_verified_on_a_finer_copy(monkeypatch):
    """A particle that the integer bin would leave unbinned at more than 16 voxels across is
    verified on a Fourier-resampled copy on which it spans ``2 verify_bin_px`` voxels (binned
    by 2 there), and re-ranked by the orientation search there; its picks come back on the
    original grid, on the particles. One that bins, or is small, is verified on the volume
    itself."""
    from scipy.spatial import cKDTree

    import cryosam.method.pick as pick_module
    from cryosam.io.prompts import Prompt
    from cryosam.method.pick import pick_particles
    from cryosam.method.verify import UNBINNED_MAX, finer_grid
    from tests.conftest import small_sim

    box = np.zeros((30, 40, 50), np.float32)
    grid = finer_grid(box, 17.5, 12.0)
    assert grid.volume.shape == (41, 55, 69)  # each side times 24 / 17.5, rounded
    assert np.allclose(grid.native(grid.fine([[3.0, 4.0, 5.0]])), [[3.0, 4.0, 5.0]])
    assert finer_grid(box, 25.0, 12.0) is None  # binned by 2, 12.5 across
    assert finer_grid(box, 18.8, 12.0) is None  # binned by 2, 9.4 across
    assert finer_grid(box, UNBINNED_MAX, 12.0) is None
    assert finer_grid(box, 8.0, 12.0) is None  # small and unbinned: nothing to gain
    assert finer_grid(box, 17.5, 8.7) is None  # told to bin by 2
    sim = small_sim((48, 64, 64), {"proteasome": 0.02}, snr=1.0, seed=2)
    truth = sim.centres("proteasome")
    seen = []
    real = pick_module.verify_candidates

    def spy(volume, zyx, status, d, *args, **kwargs):
        seen.append((volume.shape, d))
        return real(volume, zyx, status, d, *args, **kwargs)

    oriented = []
    real_orient = pick_module.orient

    def orient_spy(volume, zyx, ref, d, config):
        oriented.append(volume.shape)
        return real_orient(volume, zyx, ref, d, config)

    monkeypatch.setattr(pick_module, "verify_candidates", spy)
    monkeypatch.setattr(pick_module, "orient", orient_spy)
    config = Config(verify_rounds=(4,))
    for d, finer in ((17.0, True), (20.0, False)):
        prompts = [Prompt(tuple(truth[0]), "proteasome")]
        oriented.clear()
        out = pick_particles(sim.tomogram, prompts, {"proteasome": d}, config)
        shape, verified_d = seen[-1]
        assert (shape != sim.tomogram.shape) is finer
        assert any(o == shape != sim.tomogram.shape for o in oriented) is finer  # re-ranked there
        assert verified_d == pytest.approx(24.0 if finer else d, rel=0.03)
        off = cKDTree(truth).query(out.picks.zyx)[0]
        assert len(off) >= 3 and np.median(off) < d / 4  # on the particles, original grid


def test_a_reference_refined_from_gaps_loses_its_contrast_and_warns():
    """Refined from matches on particles, the reference keeps the clicked particle's contrast
    over its surroundings; refined from the empty places between them (what a faint click's
    reference matches in a crowded cell) it loses most of it, and the pick warns."""
    from cryosam.method.verify import DRIFT_MIN, drift_warning

    vol, placed = scene(["proteasome"] * 8, seed=3, noise=0.4)
    d = diameter("proteasome")
    pts = np.array([c for c, _ in placed])
    gaps = pts[:-1] + 15.0  # between the grid's particles (30 voxels apart)
    config = Config(verify_rounds=(4,))
    ref = ShapeVerifier(vol, d).reference(pts[:1])
    on = verify_candidates(vol, pts, [Status.CANDIDATE] * len(pts), d, config, ref)
    off = verify_candidates(vol, gaps, [Status.CANDIDATE] * len(gaps), d, config, ref)
    assert on.contrast_kept > 0.8
    assert off.contrast_kept < DRIFT_MIN
    assert drift_warning("proteasome", on.contrast_kept) is None
    assert drift_warning("proteasome", float("nan")) is None
    assert "gaps between particles" in drift_warning("proteasome", off.contrast_kept)


def test_only_matches_as_dense_as_the_prompts_refine_the_reference():
    """Where the empty places between particles rank first (as a faint or cluttered click's
    matches do), refining from the best matches averages the gaps and the reference loses the
    clicked particle; with ``verify_dense_fraction`` such a drifted reference is refined
    again from the matches holding at least half the prompt's mass, which the gaps do not,
    and keeps the particle."""
    from cryosam.method.verify import DRIFT_MIN, drift_warning

    vol, placed = scene(["proteasome"] * 8, seed=3, noise=0.4)
    d = diameter("proteasome")
    pts = np.array([c for c, _ in placed])
    gaps = pts[:-1] + 15.0  # between the grid's particles (30 voxels apart)
    zyx = np.concatenate([gaps, pts[1:]])
    similarity = np.r_[np.ones(len(gaps)), np.zeros(len(pts) - 1)]  # the gaps rank first
    status = [Status.CANDIDATE] * len(zyx)
    ref = ShapeVerifier(vol, d).reference(pts[:1])

    def verified(fraction):
        config = Config(
            verify_rounds=(4,),
            verify_climb=0,
            verify_similarity_weight=5.0,
            verify_dense_fraction=fraction,
        )
        return verify_candidates(vol, zyx, status, d, config, ref, pts[:1], similarity=similarity)

    off, on = verified(0.0), verified(0.5)
    assert off.contrast_kept < DRIFT_MIN and not off.dense_only
    assert on.contrast_kept > 0.8 and on.dense_only
    assert "refined again" in drift_warning("proteasome", on.contrast_kept, on.dense_only)
    # a reference that never drifted is refined once, as before, and gives the same scores
    clean = np.concatenate([pts[1:], gaps])
    plain = [
        verify_candidates(vol, clean, [Status.CANDIDATE] * len(clean), d, c, ref, pts[:1])
        for c in (Config(verify_rounds=(4,), verify_dense_fraction=f) for f in (0.0, 0.5))
    ]
    assert not plain[1].dense_only
    np.testing.assert_array_equal(plain[0].score, plain[1].score)


def test_best_matches_lighter_than_the_click_count_as_a_drift():
    """A reference can drift to lighter things and keep its contrast (clutter of the
    particles' own size, a lighter look-alike): its best-correlating matches then hold under
    half the clicked particle's mass, which counts as a drift (the reference is refined
    again from the dense matches); best matches as heavy as the click do not."""
    from scipy import ndimage

    from cryosam.method.verify import _lighter_than_click

    vol, placed = scene(["proteasome"] * 8, seed=3, noise=0.4)
    d = diameter("proteasome")
    pts = np.array([c for c, _ in placed])
    faint = pts[:-1] + 15.0  # between the grid's particles (30 voxels apart)
    blobs = np.zeros_like(vol)
    blobs[tuple(np.round(faint).astype(int).T)] = 1.0
    blobs = ndimage.gaussian_filter(blobs, 0.2 * d)
    vol += 0.1 * blobs * float(np.abs(vol).max()) / float(blobs.max())
    v = ShapeVerifier(vol, d)
    assert np.all(v.mass(faint) < 0.5 * v.mass(pts[:1]))  # the scene is what it says
    zyx = np.concatenate([faint, pts[1:]])
    st = np.array([Status.CANDIDATE] * len(zyx), dtype=object)
    n = len(faint)
    config = Config(verify_rounds=(4,))
    to_blobs = np.r_[np.ones(n), np.zeros(len(zyx) - n)]
    assert _lighter_than_click(v, to_blobs, zyx, st, pts[:1], config)
    assert not _lighter_than_click(v, 1 - to_blobs, zyx, st, pts[:1], config)
    # only free candidates count: the blobs claimed elsewhere leave the particles on top
    claimed = st.copy()
    claimed[:n] = Status.DUPLICATE
    assert not _lighter_than_click(v, to_blobs, zyx, claimed, pts[:1], config)
    assert not _lighter_than_click(v, to_blobs, zyx, st, np.zeros((0, 3)), config)
    # few particles, far above the rest: the 40 best would be mostly blobs, but only the
    # matches above the first cut of the correlations count
    few = st.copy()
    few[n + 3 :] = Status.DUPLICATE
    corr = np.r_[np.linspace(0.0, 0.05, n), np.ones(len(zyx) - n)]
    assert not _lighter_than_click(v, corr, zyx, few, pts[:1], Config(verify_rounds=(40,)))


def test_correlations_are_the_weighted_pearson_of_every_rotation_and_shift():
    """Each entry of :meth:`ShapeVerifier.correlations` is the weighted Pearson correlation
    of the rotated reference with the box at that shift, computed here the plain way (the
    batched matrix form must keep boxes, rotations and shifts in their places)."""
    rng = np.random.default_rng(3)
    vol = rng.normal(size=(40, 40, 40)).astype(np.float32)
    v = ShapeVerifier(vol, 9.0, Config(verify_bin_px=9.0, verify_angle_step=60.0))
    n, s = v.n, v.shift
    ref = Reference(rng.normal(size=(n,) * 3).astype(np.float32), v.sphere * 0.7, v.bin, 1)
    boxes = rng.normal(size=(3, n + 2 * s, n + 2 * s, n + 2 * s)).astype(np.float32)
    r = v.correlations(ref, boxes)
    assert r.shape == (3, len(v.matrices), len(v.offsets))
    for b, k, j in [(0, 0, 0), (2, len(v.matrices) - 1, len(v.offsets) // 2), (1, 3, 5)]:
        a0, b0, c0 = v.offsets[j]
        x = boxes[b, a0 : a0 + n, b0 : b0 + n, c0 : c0 + n][v.sphere]
        inv = v.matrices[k].T
        t = rotate_box(ref.template, inv)[v.sphere]
        w = np.clip(rotate_box(ref.weight, inv)[v.sphere], 0, 1)
        tc, xc = t - np.average(t, weights=w), x - np.average(x, weights=w)
        want = (w * tc * xc).sum() / np.sqrt((w * tc * tc).sum() * (w * xc * xc).sum())
        assert r[b, k, j] == pytest.approx(want, abs=1e-4)


def test_a_rare_heavy_class_measures_its_mass_on_the_matches_as_dense_as_the_click():
    """A ribosome clicked among many times as many lighter particles of a similar shape
    (a proteasome-rich cell): the confident matches are mostly the light ones, so their
    mass window would hold those and not the click. The reference drifts to them and is
    refined again from the matches as dense as the click; the class's mass is then measured
    on those too: the window that the cut counts by holds the heavy copies, not the light."""
    vol, placed = scene(["ribosome"] * 27, seed=5, noise=0.0)
    pts = np.array([c for c, _ in placed])
    heavy = np.zeros(27, bool)
    heavy[[0, 5, 13, 19, 24]] = True
    for c in pts[~heavy].astype(int):
        vol[tuple(slice(a - 15, a + 15) for a in c)] *= 0.4
    vol += np.random.default_rng(5).normal(0, 0.3, vol.shape).astype(np.float32)
    d = diameter("ribosome")
    v = ShapeVerifier(vol, d)
    assert v.mass(pts[~heavy]).max() < 0.6 * v.mass(pts[heavy]).min()  # the scene
    status = [Status.CANDIDATE] * len(pts)  # the click's own candidate becomes its prompt
    # the light copies rank first by their features, as a majority's look-alikes do
    similarity = (~heavy).astype(float)
    config = Config(verify_rounds=(4, 8), verify_climb=0, verify_similarity_weight=5.0)
    ref = v.reference(pts[:1])
    out = verify_candidates(vol, pts, status, d, config, ref, pts[:1], similarity=similarity)
    assert out.dense_only and out.status[0] == Status.PROMPT
    ok = out.mass_ok[out.status == Status.CANDIDATE]
    free_heavy = heavy[out.status == Status.CANDIDATE]
    assert ok[free_heavy].all() and not ok[~free_heavy].any()
    # where the click is not among the candidates, its mass is read at the click
    out = verify_candidates(
        vol, pts[1:], status[1:], d, config, ref, pts[:1], similarity=similarity[1:]
    )
    assert out.dense_only
    assert out.mass_ok[heavy[1:]].all() and not out.mass_ok[~heavy[1:]].any()
