"""The pick's stages and the shared pieces under them: one NMS, the candidate table, the cut
rules, masked correlation, binning, checksums, and the one pick path every front-end takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer

import cryosam
from cryosam.app.pick import in_memory, pick
from cryosam.cli.main import main
from cryosam.config import Config
from cryosam.io.checksums import sha256_array
from cryosam.io.prompts import Prompt
from cryosam.io.tomogram import is_tomogram_name, tomogram_stem
from cryosam.method.candidates import Candidates, PickEntry, Status, deduplicate, statuses
from cryosam.method.cut import (
    MASS_COUNT_RATIO,
    NEAREST_SEPARATION,
    WEAK_SEPARATION,
    Cut,
    CutRule,
    count_by_mass,
    feature_cut,
    mass_count_cut,
    nearest_separation,
    one_population,
    separation,
    shape_cut,
    verified_cut,
    weak_cut,
)
from cryosam.method.matching import nms
from cryosam.models.cache import FeatureCache
from cryosam.volume.binning import block_mean, extract_boxes
from cryosam.volume.correlate import MaskedCorrelation, normalise_template
from tests.conftest import small_sim


def test_nms_radius_per_point_groups_and_forced_first():
    pts = np.array([[0, 0, 0], [0, 0, 3], [0, 0, 7], [0, 0, 30]], float)
    scores = np.array([0.5, 0.9, 0.8, 0.1])
    assert list(nms(pts, scores, 4.5)) == [1, 3]  # 0 and 2 lie within 4.5 of 1
    assert list(nms(pts, scores, 4.0)) == [1, 2, 3]  # closer than the radius, not as close
    # the smaller of two radii decides: 1 (radius 2) and 2 (radius 10) are 4 apart
    assert list(nms(pts, scores, np.array([1.0, 2.0, 10.0, 1.0]))) == [1, 2, 0, 3]
    # only different groups conflict
    assert list(nms(pts, scores, 4.5, groups=np.array(["a", "a", "b", "a"]))) == [1, 0, 3]
    assert list(nms(pts, scores, 4.5, groups=np.array(["a", "b", "a", "a"]))) == [1, 3]
    # the first are kept whatever their neighbours, then best first
    assert list(nms(pts, scores, 4.5, keep_first=1)) == [0, 2, 3]
    assert list(nms(pts, scores, 4.5, top_k=1)) == [1]


def test_classes_compete_for_a_particle():
    table = Candidates.join(
        [
            Candidates(
                [[10, 10, 10], [40, 40, 40]], [0.9, 0.5], statuses(2, Status.ACCEPTED)
            ).label("ribosome", 20.0),
            Candidates(
                [[12, 10, 10], [40, 40, 45]], [0.7, 0.6], statuses(2, Status.ACCEPTED)
            ).label("ball", 10.0),
        ]
    )
    kept = table.compete(0.5)
    # 2 apart < 0.5 x 10: the ribosome holds the particle; 5 apart is not < 5
    assert list(kept) == [0, 3, 1]
    assert table.status[2] == Status.OTHER_CLASS
    assert list(table.status[[0, 1, 3]]) == [Status.ACCEPTED] * 3


def test_deduplicate_keeps_the_prompts_first():
    e = lambda c, s: PickEntry(np.array(c, float), s, "x", 10.0, None)  # noqa: E731
    entries = [e([0, 0, 0], 1.0), e([0, 0, 2], 1.0), e([0, 0, 3], 0.9), e([0, 0, 20], 0.2)]
    kept = deduplicate(entries, 0.5, n_first=2)
    assert kept == [entries[0], entries[1], entries[3]]


def test_the_cut_is_one_decision_by_a_named_rule():
    rng = np.random.default_rng(3)
    feature = np.clip(rng.normal(0.985, 0.007, 500), 0.95, 0.9995)
    assert one_population(feature, background=0.95)
    assert not one_population(feature[:3], background=0.95)  # too few for a distribution
    assert not one_population(feature, background=None)
    assert feature_cut(feature, 0.5, 0.95).rule is CutRule.FEATURE_ONE_POPULATION
    shape_scores = np.r_[rng.normal(0.2, 0.05, 300), rng.normal(0.6, 0.05, 30)]
    split = shape_cut(shape_scores, 0.1)
    assert split.rule is CutRule.SHAPE_VALLEY and 0.3 < split.value < 0.5
    assert shape_cut(shape_scores, 0.7).rule is CutRule.SHAPE_FLOOR  # another tomogram's level


def test_a_cut_that_is_a_guess_counts_the_particles_by_mass():
    """Crowded cells: 100 particles among 400 look-alikes and background whose shape scores
    overlap theirs (no gap; the knee keeps a few dozen). The particles are counted by mass
    instead: the cut keeps as many of the best as have the class's mass."""
    rng = np.random.default_rng(5)
    true = np.r_[np.ones(100, bool), np.zeros(400, bool)]
    scores = np.where(true, rng.normal(0.30, 0.04, 500), rng.normal(0.22, 0.04, 500))
    of_mass = np.where(true, rng.random(500) < 0.9, rng.random(500) < 0.1)  # ~130 in all

    def by_mass(x, given, ok, **kw):  # the rule, told the separation at the cut it is given
        return mass_count_cut(x, given, ok, separation(x, given.value), **kw)

    knee = shape_cut(scores)
    assert separation(scores, knee.value) < 2.25 and (scores >= knee.value).sum() < 60
    cut = by_mass(scores, knee, of_mass)
    assert cut.rule is CutRule.SHAPE_MASS_COUNT
    kept = scores >= cut.value
    assert kept.sum() == of_mass.sum()
    assert count_by_mass(scores, of_mass) == cut.value  # what run.json keeps as cut_by_mass
    f1 = lambda k: 2 * (k & true).sum() / (k.sum() + true.sum())  # noqa: E731
    assert f1(kept) > f1(scores >= knee.value) + 0.1
    # never above the cut it is given, never below the floor, nothing without masses
    assert by_mass(scores, Cut(0.0, CutRule.SHAPE_KNEE), of_mass).value == 0.0
    assert by_mass(scores, knee, of_mass, floor=cut.value + 0.01).value == cut.value + 0.01
    assert by_mass(scores, knee, None) == knee
    # a cut the matches stand well above (a sparse cell) is kept as it is
    clear = np.where(true, rng.normal(0.6, 0.04, 500), rng.normal(0.2, 0.04, 500))
    gap = shape_cut(clear)
    assert by_mass(clear, gap, of_mass) == gap
    # the count is still told (a user may take it with recut); none without enough masses
    assert count_by_mass(clear, of_mass) < gap.value
    assert count_by_mass(clear, None) is None
    assert count_by_mass(clear, np.arange(500) < 4) is None


def test_a_knee_that_keeps_a_few_of_many_of_the_class_mass_is_counted_by_mass():
    """A cell packed with the particle (the real tomogram from most clicks): the knee keeps
    about a hundred of the densest, which stand well above the rest (no weak separation) with
    no valley below them, while about 780 have the class's mass. Keeping under
    1 / MASS_COUNT_RATIO of the count, the knee gives way to the count; where a quarter as many
    have the mass (a crowd of another class), the knee stays."""
    rng = np.random.default_rng(11)
    scores = np.r_[rng.normal(0.32, 0.03, 60), rng.normal(0.20, 0.04, 900)]
    many = np.r_[np.ones(60, bool), rng.random(900) < 0.8]
    cut = verified_cut(scores, of_class_mass=many)
    kept_by_shape = int((scores >= cut.first.value).sum())
    assert cut.first.rule is CutRule.SHAPE_KNEE and kept_by_shape < 120
    assert not weak_cut(cut.separation, cut.nearest)
    assert cut.final.rule is CutRule.SHAPE_MASS_MANY
    assert (scores >= cut.final.value).sum() == many.sum() >= MASS_COUNT_RATIO * kept_by_shape
    few = np.r_[np.ones(60, bool), rng.random(900) < 0.2]
    assert few.sum() < MASS_COUNT_RATIO * kept_by_shape
    assert verified_cut(scores, of_class_mass=few).final == cut.first
    # the rule as the pick and recut call it, told the separation
    sep = separation(scores, cut.first.value)
    assert mass_count_cut(scores, cut.first, many, sep).rule is CutRule.SHAPE_MASS_MANY


def test_matches_clear_of_a_crowd_of_another_class_are_not_counted_by_mass():
    """A clicked proteasome in a cell packed with ribosomes: 70 proteasomes stand clear above
    350 ribosomes, which correlate half as well, and 420 places of background below. Measured
    against all the rejected (two populations: a wide spread) the proteasomes read weakly
    separated; against the nearer group, the ribosomes, they stand clear, so the shape cut
    stays though half the ribosomes measure the proteasome's mass in its box. Where the
    rejected are one tail (the crowded case above), both readings are weak alike."""
    rng = np.random.default_rng(3)
    cls = np.repeat([2, 1, 0], [70, 350, 420])  # proteasome, ribosome, background
    n = len(cls)
    scores = np.select([cls == 2, cls == 1], [rng.normal(0.60, 0.07, n),
                       rng.normal(0.35, 0.05, n)], rng.normal(0.05, 0.15, n))  # fmt: skip
    of_mass = np.where(cls == 2, rng.random(n) < 0.9, rng.random(n) < 0.3 * cls)
    knee = shape_cut(scores)
    kept = scores >= knee.value
    assert knee.rule is CutRule.SHAPE_KNEE and kept.sum() < 100 and (cls[kept] == 2).sum() > 60
    sep, near = separation(scores, knee.value), nearest_separation(scores, knee.value)
    assert sep < WEAK_SEPARATION <= NEAREST_SEPARATION <= near
    assert not weak_cut(sep, near)
    assert mass_count_cut(scores, knee, of_mass, sep, nearest=near) == knee
    without = mass_count_cut(scores, knee, of_mass, sep)  # not told: counted by mass
    assert (scores >= without.value).sum() > 150
    # one tail of look-alikes: the nearer group is that tail, and the count goes on
    rng = np.random.default_rng(5)
    true = np.r_[np.ones(100, bool), np.zeros(400, bool)]
    tail = np.where(true, rng.normal(0.30, 0.04, 500), rng.normal(0.22, 0.04, 500))
    knee = shape_cut(tail)
    sep, near = separation(tail, knee.value), nearest_separation(tail, knee.value)
    assert weak_cut(sep, near) and near < NEAREST_SEPARATION


def test_negatives_do_not_move_the_cut_into_the_matches():
    # verification scores of one pick (a ribosome and three negative clicks on TRiC, in an
    # independently simulated sparse tomogram): the negatives claimed most of the junk
    z = np.load(Path(__file__).parent / "data" / "negatives_cut_scores.npz")
    status = np.where(z["negative"], Status.NEGATIVE, Status.CANDIDATE).astype(object)
    status = np.r_[status, [Status.DUPLICATE] * 5]  # never part of the pool
    cands = Candidates(np.zeros((len(status), 3)), np.r_[z["score"], [9.0] * 5], status)
    assert cands.cut_pool.sum() == len(z["score"])
    true_free = z["true"] & ~z["negative"]
    cut = shape_cut(cands.score[cands.cut_pool]).value
    kept = (z["score"] >= cut) & ~z["negative"]
    assert kept[true_free].mean() > 0.85 and (kept & ~z["true"]).sum() <= 5
    # cut on the free ones alone (the matches now a third of them) it falls among the matches
    alone = shape_cut(cands.score[cands.free]).value
    assert (z["score"][true_free] >= alone).mean() < 0.8


def test_masked_correlation_is_pearson_at_every_offset():
    rng = np.random.default_rng(4)
    vol = rng.normal(size=(12, 14, 16)).astype(np.float32)
    n = 5
    g = np.indices((n,) * 3) - n // 2
    mask = ((g**2).sum(0) <= 4).astype(np.float32)
    tpl = rng.normal(size=(n,) * 3).astype(np.float32)
    shape = [s + n - 1 for s in vol.shape]
    ncc = MaskedCorrelation(vol, mask, shape, tuple(slice(0, s) for s in vol.shape), True)
    cc = ncc(normalise_template(tpl, mask))
    sel = mask > 0
    for c in [(6, 7, 8), (2, 2, 2), (9, 5, 12)]:
        box = vol[tuple(slice(a - 2, a + 3) for a in c)]
        want = np.corrcoef(box[sel], tpl[sel])[0, 1]
        assert cc[c] == pytest.approx(want, abs=1e-4)


def test_block_mean_and_boxes():
    a = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    b = block_mean(a, 2)
    assert b.shape == (2, 3, 4) and b[1, 2, 3] == pytest.approx(a[2:4, 4:6, 6:8].mean())
    boxes = extract_boxes(a, [(0, 0, 0), (2, 3, 4)], 2, 2)
    assert boxes.shape == (2, 2, 2, 2)
    assert boxes[1, 1, 1, 1] == pytest.approx(a[2:4, 3:5, 4:6].mean())
    assert boxes[0, 0, 0, 0] == 0.0  # outside the volume: the standardised mean


def test_tomogram_names_and_array_checksums():
    assert is_tomogram_name("TS_01.rec.gz") and is_tomogram_name("a/b/TS_01.MRC")
    assert not is_tomogram_name("TS_01.tomostar")  # Warp's tilt-series file, not a volume
    assert tomogram_stem("TS_01.tomostar") == "TS_01" == tomogram_stem("TS_01.mrc.bz2")
    a = np.random.default_rng(5).normal(size=(6, 7, 8)).astype(np.float32)
    b = a.copy()
    assert sha256_array(a) == sha256_array(b)
    b[3, 3, 3] += 1e-3
    assert sha256_array(a) != sha256_array(b)
    assert sha256_array(a) != sha256_array(a.reshape(7, 6, 8))


def test_config_carries_every_help_text_and_the_cli_takes_its_defaults():
    assert all(text for _, _, text in Config.describe())
    import cryosam.cli.app as cli_app

    commands = {c.name: c for c in typer.main.get_command(cli_app.app).commands.values()}
    params = {p.name: p for p in commands["pick"].params}
    d = Config()
    for name in ("top_k", "tau_sim", "invert", "segmenter", "encoder", "device"):
        assert params[name].default == getattr(d, name), name
    seg = {p.name: p for p in commands["segment"].params}
    assert seg["axes"].default == d.propagation_axes and seg["tau_iou"].default == d.tau_iou


def test_import_cryosam_is_light_and_exports_the_entry_points():
    code = "import cryosam, sys; print(any(m.startswith('cryosam.app') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert cryosam.pick is pick and cryosam.Config is Config and cryosam.Prompt is Prompt
    assert callable(cryosam.read_tomogram) and callable(cryosam.segment)


@pytest.fixture(scope="module")
def ribosomes():
    sim = small_sim((40, 96, 96), {"ribosome": 0.05}, snr=1.0, seed=21)
    c = sim.centres("ribosome")
    return sim, c[np.argmin(np.linalg.norm(c - np.array([20, 48, 48]), axis=1))]


def test_in_memory_pick_goes_through_the_feature_cache(ribosomes, tmp_path):
    """napari and copick pick arrays without a file: the array's checksum keys the cache, so
    the second press reuses the features, and the picks are the same."""
    sim, p = ribosomes
    cache = FeatureCache(tmp_path / "cache")
    tomo = in_memory(sim.tomogram, 10.0, "layer")
    prompts, diam = [Prompt(tuple(p), "ribosome")], {"ribosome": 25.0}
    first = pick(tomo, prompts, diam, cache=cache)
    second = pick(tomo, prompts, diam, cache=cache)
    assert first.outcome.reports[0].feature_cache == "miss"
    assert second.outcome.reports[0].feature_cache == "hit"
    np.testing.assert_array_equal(first.outcome.picks.zyx, second.outcome.picks.zyx)
    assert first.record["input"]["path"] is None and first.outcome.picks.tomogram == "layer"


def test_run_record_names_what_ran_it(ribosomes, tmp_path):
    sim, p = ribosomes
    tomo = in_memory(sim.tomogram, 10.0)
    config = Config(missing_wedge="auto")
    prompts, diameters = [Prompt(tuple(p), "ribosome")], {"ribosome": 25.0}
    pick(tomo, prompts, diameters, config, out=tmp_path / "api", cache=False)
    record = json.loads((tmp_path / "api" / "run.json").read_text())
    assert record["cryosam_command"].startswith("python")
    # the missing wedge verification minded, read from the tomogram (simulated tilts -60..60)
    axis, _, tilt = record["input"]["missing_wedge"].partition(":")
    assert axis == "y" and 55 <= float(tilt) <= 66 and record["config"]["missing_wedge"] == "auto"
    # the spectrum read as it is, by default
    assert record["input"]["spectrum_balanced"] is False
    from cryosam.simulate import write_simulation

    write_simulation(sim, tmp_path / "sim")
    args = [
        "pick",
        str(tmp_path / "sim" / "tomogram.mrc"),
        "--point",
        ",".join(f"{v:g}" for v in p),
        "--diameter",
        "250",
        "--no-cache",
        "--set",
        "verify=false",  # what ran it is the question, not the shapes (half the test's time)
        "--out",
        str(tmp_path / "cli"),
    ]
    assert main(args) == 0
    record = json.loads((tmp_path / "cli" / "run.json").read_text())
    assert record["cryosam_command"] == "cryosam " + " ".join(args)


def test_preview_slabs_are_low_passed_slabs_not_single_slices():
    from cryosam.io.figures import slab_sizes, slab_view

    rng = np.random.default_rng(8)
    vol = rng.normal(size=(30, 40, 50)).astype(np.float32)
    vol[10:20, 15:25, 20:30] += 3.0  # a dense block
    half, sigma = slab_sizes(10.0)
    assert half == 2 and sigma == 2.0  # 5 nm thick, 20 Å low-pass at 10 Å voxels
    view = slab_view(vol, 0, 15, half, sigma)
    assert view.shape == (40, 50)
    # averaging and low-passing take the noise down: far below a single slice's
    assert view[:8, :12].std() < 0.3 * vol[15, :8, :12].std()
    assert view[20, 25] > view[2, 2] + 1.0  # the block stands out
    side = slab_view(vol, 2, 25, half, sigma)
    assert side.shape == (30, 40)


def test_gallery_writes_rows_of_crops(tmp_path):
    from cryosam.io.figures import write_gallery

    vol = np.random.default_rng(9).normal(size=(40, 60, 60)).astype(np.float32)
    pts = np.array([[20, 20, 20], [20, 40, 40], [0, 0, 0]], float)  # one at the corner
    rows = [("best", pts[:2], np.array([0.9, 0.8])), ("rejected", pts[2:], np.array([0.1]))]
    path = write_gallery(tmp_path / "g.png", vol, rows, 12.0, "t", 10.0, per_row=3)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_many_prompts_say_how_far_their_segmentation_has_come():
    """Thousands of prompts are segmented one by one before the search: the user hears the
    count every tenth, not silence for minutes."""
    from cryosam.method.pick import pick_particles

    sim = small_sim((32, 96, 96), {"ball": 0.08}, snr=2.0, seed=5)
    balls = sim.centres("ball")
    assert len(balls) >= 20
    said = []
    pick_particles(
        sim.tomogram, [Prompt(tuple(b), "ball") for b in balls[:20]], {"ball": 12.0},
        progress=said.append,
    )  # fmt: skip
    counts = [s for s in said if s.startswith("prompts segmented: ")]
    assert counts[0] == "prompts segmented: 2 / 20" and counts[-1] == "prompts segmented: 18 / 20"
    assert len(counts) == 9
    # merged prompts (here every prompt given twice) are segmented, and counted, once
    said.clear()
    twice = [Prompt(tuple(b), "ball") for b in balls[:20] for _ in range(2)]
    pick_particles(sim.tomogram, twice, {"ball": 12.0}, progress=said.append)
    assert [s for s in said if s.startswith("prompts segmented: ")] == counts


def test_the_size_check_measures_the_class_on_its_matches_not_one_prompt(monkeypatch):
    """One prompt's mask is one draw of the segmenter: here it came out twice its matches'
    size, so against it every match looked too small. Against the matches' median only the
    one really small mask (a subunit) is a size mismatch; with few matches the prompt's
    size still decides."""
    from types import SimpleNamespace

    import cryosam.method.pick as mp
    from cryosam.method.propagate import InstanceMask

    sizes = [1000, 1100, 900, 1050, 950, 1000, 1020, 980, 1010, 990, 300]  # the last: a subunit

    def fake_mask(segmenter, shape, zyx, d, config, *a):
        n = sizes[int(zyx[2]) - 20]  # the candidate's number in x
        return InstanceMask(np.ones((n, 1, 1), bool), np.asarray(zyx, int), np.asarray(zyx))

    monkeypatch.setattr(mp, "propagate_instance", fake_mask)

    def run(n):
        status = np.array([Status.ACCEPTED] * n, dtype=object)
        zyx = np.array([[20.0, 20.0, 20 + k] for k in range(n)])
        table = Candidates(zyx, np.ones(n), status, np.array(["x"] * n, object), np.full(n, 16.0))
        s = SimpleNamespace(
            segmenter=SimpleNamespace(set_volume=lambda *a: None),
            prepared=SimpleNamespace(shape=(40, 40, 60)),
            diameters_px={"x": 16.0},
            config=Config(),
        )
        rep = SimpleNamespace(name="x", query=SimpleNamespace(ref_voxels=2000.0), verified=True)
        entries = mp.segment_accepted(s, [rep], table, np.arange(n))
        return [e.row for e in entries], list(table.status)

    rows, status = run(len(sizes))
    assert rows == list(range(len(sizes) - 1))  # every match but the subunit
    assert status[-1] == Status.SIZE_MISMATCH
    rows, _ = run(5)  # too few to measure the class: the prompt's size
    assert rows == []
