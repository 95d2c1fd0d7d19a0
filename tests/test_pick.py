"""Find-all: the pipeline and `cryosam pick` / `cryosam demo` end to end."""

import json

import numpy as np
import pandas as pd
import pytest

from cryosam.cli.main import main
from cryosam.eval.metrics import score_picks
from cryosam.io.prompts import Prompt
from cryosam.io.star import read_star
from cryosam.io.tomogram import read_tomogram
from cryosam.method.cut import CutRule, feature_cut
from cryosam.method.pick import pick_particles
from cryosam.simulate import write_simulation
from tests.conftest import small_sim


@pytest.fixture(scope="module")
def sim():
    return small_sim((64, 128, 128), {"ribosome": 0.05, "ball": 0.012}, seed=31)


def central(points, shape):
    return points[np.argmin(np.linalg.norm(points - np.asarray(shape) / 2, axis=1))]


def test_one_prompt_finds_most_ribosomes(sim):
    ribos = sim.centres("ribosome")
    prompt = central(ribos, sim.tomogram.shape)
    out = pick_particles(sim.tomogram, [Prompt(tuple(prompt), "ribosome")], {"ribosome": 29.0})
    s = score_picks(out.picks.zyx, ribos, 14.0)
    assert s.recall > 0.6 and s.precision > 0.6, s.as_row()
    assert s.mean_distance < 5  # centres, not prompt corners
    assert "verification scores" in out.reports[0].cut_method and out.reports[0].verified
    assert len(out.candidates) >= len(out.picks) - 1
    # every accepted candidate is a pick, the prompt is instance 1
    assert out.picks.instance[0] == 1 and out.picks.score[0] == 1.0
    assert 0 < out.instances.max() <= len(out.picks)


def test_masks_are_trimmed_to_the_class_envelope_and_the_picks_stay(sim):
    from cryosam.config import Config

    ribos = sim.centres("ribosome")
    prompt = [Prompt(tuple(central(ribos, sim.tomogram.shape)), "ribosome")]
    whole = pick_particles(sim.tomogram, prompt, {"ribosome": 29.0}, Config(mask_envelope=False))
    out = pick_particles(sim.tomogram, prompt, {"ribosome": 29.0})
    assert np.allclose(out.picks.zyx, whole.picks.zyx) and len(out.picks) >= 5
    trimmed, full = out.instances > 0, whole.instances > 0
    assert trimmed.sum() < full.sum()
    # each mask is its own propagated mask cut back (a leak cut from one mask may free
    # voxels a neighbour's mask held too)
    same = out.instances[trimmed] == whole.instances[trimmed]
    assert same.mean() > 0.95
    n = len(out.picks) + 1
    before, after = (
        np.bincount(m.ravel(), minlength=n)[1:] for m in (whole.instances, out.instances)
    )
    assert np.count_nonzero(after) >= np.count_nonzero(before)  # no mask lost
    kept = after[before > 0] / before[before > 0]
    assert 0.7 < np.median(kept) < 1.0  # cut back, not cut away


def test_negative_prompt_rejects_what_it_marks(sim):
    ribos = sim.centres("ribosome")
    pos = central(ribos, sim.tomogram.shape)
    neg = ribos[np.argsort(np.linalg.norm(ribos - pos, axis=1))[3]]
    prompts = [Prompt(tuple(pos), "ribosome"), Prompt(tuple(neg), None, negative=True)]
    out = pick_particles(sim.tomogram, prompts, {"ribosome": 29.0})
    near_neg = np.linalg.norm(out.picks.zyx - neg, axis=1) < 10
    assert not near_neg.any()
    assert "negative" in set(out.candidate_status)


def test_a_negative_takes_its_own_matches_away_and_changes_nothing_else(sim):
    """The matches a negative prompt claims go on as free ones (ranked, cut, segmented,
    judged for strays) and leave only at the end: every other pick is the same as without
    the negative, at the same place with the same score."""
    ribos = sim.centres("ribosome")
    pos = central(ribos, sim.tomogram.shape)
    neg = ribos[np.argsort(np.linalg.norm(ribos - pos, axis=1))[3]]
    d = {"ribosome": 29.0}
    plain = pick_particles(sim.tomogram, [Prompt(tuple(pos), "ribosome")], d)
    prompts = [Prompt(tuple(pos), "ribosome"), Prompt(tuple(neg), None, negative=True)]
    out = pick_particles(sim.tomogram, prompts, d)
    dist = np.linalg.norm(out.picks.zyx[:, None] - plain.picks.zyx[None], axis=2)
    same = dist.argmin(1)
    assert np.all(dist.min(1) < 1e-6), dist.min(1)  # no pick of its own
    assert np.allclose(out.picks.score, plain.picks.score[same])
    gone = np.setdiff1d(np.arange(len(plain.picks)), same)
    assert len(gone) and len(out.picks) + len(gone) == len(plain.picks)
    negative = out.candidates.zyx[out.candidate_status == "negative"]
    for p in plain.picks.zyx[gone]:  # each pick it took is a match it claimed
        assert np.linalg.norm(negative - p, axis=1).min() < 29.0 / 2
    assert out.averages["ribosome"].shape == plain.averages["ribosome"].shape


def test_two_classes_compete(sim):
    ribos, balls = sim.centres("ribosome"), sim.centres("ball")
    prompts = [
        Prompt(tuple(central(ribos, sim.tomogram.shape)), "ribosome"),
        Prompt(tuple(central(balls, sim.tomogram.shape)), "ball"),
    ]
    out = pick_particles(sim.tomogram, prompts, {"ribosome": 29.0, "ball": 13.0})
    assert set(out.picks.class_name) == {"ribosome", "ball"}
    assert set(np.unique(out.semantic)) <= {0, 1, 2} and out.semantic.max() == 2
    # no particle is picked as both classes
    r, b = out.picks.of_class("ribosome").zyx, out.picks.of_class("ball").zyx
    nms = 0.5 * min(rep.diameter_px for rep in out.reports)
    assert np.linalg.norm(r[:, None] - b[None], axis=2).min() >= nms
    assert score_picks(b, balls, 6.5).recall > 0.5


def test_feature_cut():
    rng = np.random.default_rng(0)
    # many look-alikes spread below, the true matches crowd just under 1
    scores = np.r_[rng.uniform(0.5, 0.9, 200), np.clip(rng.normal(0.98, 0.005, 40), 0, 0.999)]
    cut = feature_cut(scores, 0.5)
    assert cut.rule is CutRule.FEATURE_OTSU
    assert (scores[200:] >= cut.value).all() and (scores[:200] < cut.value).mean() > 0.95
    too_few = feature_cut(np.array([0.9, 0.8]), 0.5)
    assert too_few.value == 0.5 and too_few.rule is CutRule.FEATURE_TOO_FEW
    # look-alikes mostly below the background's 99th percentile: Otsu's cut stands
    assert feature_cut(scores, 0.5, background=0.85) == cut


def test_automatic_cut_keeps_one_population_above_the_background():
    """A large tomogram rich in the target: nearly every candidate is a true match, with
    scores spread over 0.95..1. Otsu alone would cut the population in half."""
    rng = np.random.default_rng(1)
    true = np.clip(rng.normal(0.985, 0.007, 2000), 0.95, 0.9995)
    cut_otsu = feature_cut(true, 0.5)
    assert (true >= cut_otsu.value).mean() < 0.7
    cut = feature_cut(true, 0.5, background=0.95)
    assert cut.value == 0.95 and cut.rule is CutRule.FEATURE_ONE_POPULATION
    assert (true >= cut.value).all()


def test_cli_pick_writes_every_output(sim, tmp_path, capsys):
    folder = tmp_path / "sim"
    write_simulation(sim, folder)
    prompt = central(sim.centres("ribosome"), sim.tomogram.shape)
    out = tmp_path / "pick"
    args = [
        "pick",
        str(folder / "tomogram.mrc"),
        "--point",
        f"{prompt[0]:g},{prompt[1]:g},{prompt[2]:g}:ribosome",
        "--diameter",
        "290",
        "--out",
        str(out),
        "--relion5",
    ]
    assert main(args) == 0, capsys.readouterr().err
    header = (out / "picks.csv").read_text().splitlines()[0]
    assert header.startswith("z,y,x,score,class,instance")
    picks = pd.read_csv(out / "picks.csv")
    assert set(picks["class"]) == {"ribosome"} and len(picks) > 3
    cands = pd.read_csv(out / "candidates.csv")
    assert {"score", "status", "correlation", "similarity"} <= set(cands.columns)
    assert len(cands) >= len(picks) - 1
    for png in ("preview.png", "gallery.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    star = read_star(out / "picks.star", shape_zyx=sim.tomogram.shape, voxel_size=10.0)
    np.testing.assert_allclose(star.zyx, picks[["z", "y", "x"]].to_numpy(), atol=1e-6)
    sem = read_tomogram(out / "masks" / "semantic.mrc")
    inst = read_tomogram(out / "masks" / "instances.mrc")
    assert sem.shape == inst.shape == sim.tomogram.shape
    assert sem.voxel_size == pytest.approx(10.0)
    run = json.loads((out / "run.json").read_text())
    assert run["cut"]["ribosome"]["method"] and run["class_ids"] == {"ribosome": 1}
    assert "pick" in run["timings_s"]
    given = [p["zyx"] for p in run["prompts"]]
    assert np.shape(run["prompts_used"]) == np.shape(given)  # each as used (maybe moved)
    # scoring our own picks through the CLI
    assert main(["evaluate", str(out), "--truth", str(folder), "--only", "ribosome"]) == 0
    assert "| ribosome" in capsys.readouterr().out


def test_demo_runs_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "precision" in text and "recall" in text and "F1" in text
    assert (tmp_path / "cryosam-demo" / "pick" / "preview.png").exists()
    f1 = float(text.split("F1 ")[1].split()[0])
    assert f1 > 0.6


def blob_scene(n_blobs, amplitudes, seed=3, shape=(48, 128, 128)):
    """Noise (sigma 1) with ``n_blobs`` dark Gaussian blobs (sigma 4 voxels) apart."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(0, 1, shape).astype(np.float32)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    centres = []
    while len(centres) < n_blobs:
        c = rng.uniform(10, np.asarray(shape) - 10)
        if all(np.linalg.norm(c - o) > 18 for o in centres):
            centres.append(c)
    for c, a in zip(centres, amplitudes):
        r2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        vol -= (a * np.exp(-r2 / 32.0)).astype(np.float32)
    return vol, np.array(centres)


def test_a_few_particles_alone_are_all_kept():
    """30 particles and nothing else: every candidate is one (their features all stand
    above the background), so the cut must not split them by shape."""
    from cryosam.app.pick import in_memory, pick

    vol, centres = blob_scene(30, np.full(30, 1.5))
    run = pick(in_memory(vol, 10.0), [Prompt(tuple(centres[0]))], {"particle": 16.0}, cache=False)
    assert run.outcome.reports[0].cut_method == CutRule.SHAPE_ONE_POPULATION.value
    assert score_picks(run.outcome.picks.zyx, centres, 8.0).recall >= 0.8
