"""`cryosam recut`: a finished pick cut again at the user's score, outputs rewritten as a set."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cryosam.cli.main import main
from cryosam.io.star import read_star
from cryosam.io.tomogram import read_tomogram
from cryosam.simulate import write_simulation
from tests.conftest import small_sim, write_mrc


@pytest.fixture(scope="module")
def picked(tmp_path_factory):
    """A finished pick (one click on a ribosome) and its scene."""
    root = tmp_path_factory.mktemp("recut")
    sim = small_sim((64, 128, 128), {"ribosome": 0.05, "ball": 0.012}, seed=31)
    write_simulation(sim, root / "sim")
    ribos = sim.centres("ribosome")
    c = ribos[np.argmin(np.linalg.norm(ribos - np.asarray(sim.tomogram.shape) / 2, axis=1))]
    out = root / "pick"
    args = ["pick", str(root / "sim" / "tomogram.mrc"), "--point", f"{c[0]:g},{c[1]:g},{c[2]:g}"]
    assert main([*args, "--diameter", "290", "--out", str(out)]) == 0
    return root, out


def fresh_copy(picked, tmp_path):
    out = tmp_path / "pick"
    shutil.copytree(picked[1], out)
    return out


def test_recut_at_the_automatic_cut_reproduces_the_pick(picked, tmp_path, capsys):
    out = fresh_copy(picked, tmp_path)
    auto = json.loads((out / "run.json").read_text())["cut"]["particle"]["value"]
    before = (out / "picks.csv").read_text()
    assert main(["recut", str(out), "--min-score", repr(auto)]) == 0, capsys.readouterr().err
    assert (out / "picks.csv").read_text() == before


def test_lower_cut_accepts_more_and_rewrites_every_output(picked, tmp_path, capsys):
    out = fresh_copy(picked, tmp_path)
    run0 = json.loads((out / "run.json").read_text())
    auto = run0["cut"]["particle"]["value"]
    cands = pd.read_csv(out / "candidates.csv")
    below = cands[cands.status == "below_cut"].score.sort_values(ascending=False)
    assert len(below) >= 5, "the scene must leave candidates below the automatic cut"
    lower = float(below.iloc[4]) - 1e-9  # five more candidates pass
    n0 = len(pd.read_csv(out / "picks.csv"))
    assert main(["recut", str(out), "--min-score", f"particle={lower!r}"]) == 0
    assert f"automatic cut {auto:.3f}" in capsys.readouterr().out
    picks = pd.read_csv(out / "picks.csv")
    assert n0 < len(picks) <= n0 + 5
    assert (picks.score.iloc[1:] >= lower).all()  # the prompt comes first, scored 1
    cands = pd.read_csv(out / "candidates.csv")
    free = cands.status.isin(["accepted", "below_cut", "size_mismatch", "other_class"])
    assert (cands[free & (cands.score >= lower)].status != "below_cut").all()
    assert (cands[free & (cands.score < lower)].status == "below_cut").all()
    star = read_star(out / "picks.star", shape_zyx=(64, 128, 128), voxel_size=10.0)
    np.testing.assert_allclose(star.zyx, picks[["z", "y", "x"]].to_numpy(), atol=1e-6)
    inst = np.asarray(read_tomogram(out / "masks" / "instances.mrc").data)
    assert int(inst.max()) == len(picks)
    run = json.loads((out / "run.json").read_text())
    assert run["cut"]["particle"]["value"] == pytest.approx(lower)
    assert run["recut"]["automatic"]["particle"]["value"] == pytest.approx(auto)
    assert run["n_picks"] == len(picks) and run["cryosam_command"].startswith("cryosam recut")
    # a second recut still knows the automatic cut
    assert main(["recut", str(out), "--min-score", repr(auto)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["recut"]["automatic"]["particle"]["value"] == pytest.approx(auto)
    assert len(pd.read_csv(out / "picks.csv")) == n0


def test_higher_cut_keeps_the_prompt(picked, tmp_path):
    out = fresh_copy(picked, tmp_path)
    assert main(["recut", str(out), "--min-score", "0.99"]) == 0
    picks = pd.read_csv(out / "picks.csv")
    assert len(picks) == 1 and picks.score.iloc[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--min-score", "abc"], "a number or CLASS=NUMBER"),
        (["--min-score", "nan"], "finite"),
        (["--min-score", "ribosome=0.2"], "names class 'ribosome'"),
        ([], "give --min-score"),
    ],
)
def test_bad_arguments_change_nothing(picked, tmp_path, capsys, args, says):
    out = fresh_copy(picked, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main(["recut", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_not_a_pick_folder_or_another_tomogram_is_refused(picked, tmp_path, capsys):
    assert main(["recut", str(tmp_path), "--min-score", "0.2"]) == 2
    assert "no run.json here" in capsys.readouterr().err
    out = fresh_copy(picked, tmp_path)
    other = write_mrc(tmp_path / "other.mrc", np.zeros((64, 128, 128), np.float32) + 1.0)
    assert main(["recut", str(out), "--min-score", "0.2", "--tomogram", str(other)]) == 2
    assert "not the tomogram this pick was made on" in capsys.readouterr().err


def test_separation_tells_one_population_from_two():
    from cryosam.method.cut import WEAK_SEPARATION, separation

    rng = np.random.default_rng(0)
    one = rng.normal(0.2, 0.05, 500)
    assert separation(one, np.quantile(one, 0.9)) < WEAK_SEPARATION
    two = np.concatenate([one, rng.normal(0.6, 0.05, 60)])
    assert separation(two, 0.4) > 2 * WEAK_SEPARATION
    assert np.isnan(separation(two[:3], 0.4))


def test_a_pick_without_a_population_warns_and_names_recut():
    """Particles of every contrast from faint to strong: no gap, and the pick says so."""
    from cryosam.app.pick import in_memory, pick
    from cryosam.io.prompts import Prompt
    from cryosam.method.cut import CutRule
    from tests.test_pick import blob_scene

    vol, centres = blob_scene(60, np.linspace(0.05, 1.5, 60))
    run = pick(in_memory(vol, 10.0), [Prompt(tuple(centres[-1]))], {"particle": 16.0}, cache=False)
    said = [w for w in run.warnings if "no population of their own" in w]
    assert said and "cryosam recut" in said[0]
    rep = run.outcome.reports[0]
    assert rep.separation < 2.25
    # the report keeps the cut by shape and, where masses were measured, the count by mass
    by = rep.cut_by_mass if rep.cut_method == CutRule.SHAPE_MASS_COUNT.value else rep.cut_by_shape
    assert rep.cut == by and rep.n_by_shape >= 1
    if rep.cut_method == CutRule.SHAPE_MASS_COUNT.value:  # the count cut lower, kept more
        assert rep.cut_by_mass < rep.cut_by_shape and rep.n_by_mass > rep.n_by_shape


def test_a_cut_by_mass_count_still_says_it_is_a_guess():
    """The mass count keeps more candidates where shape could not separate them; the warning
    reports the separation by shape (the mass count's own rejected tail is narrower and
    would hide it) and says how the cut was made."""
    from cryosam.app.pick import weak_cut_warnings
    from cryosam.method.cut import CutRule
    from cryosam.method.pick import ClassReport

    rep = ClassReport("ribosome", 1, 25.0, 1, cut=0.14, verified=True, separation=1.8)
    rep.cut_method = CutRule.SHAPE_MASS_COUNT.value
    (said,) = weak_cut_warnings([rep], "picks")
    assert "1.8 robust spreads" in said and "class's mass" in said
    assert "cryosam recut picks --min-score S" in said
    rep.separation = 3.0
    assert weak_cut_warnings([rep], "picks") == []


def test_a_shape_cut_far_below_the_count_by_mass_names_the_recut_that_keeps_them():
    """A knee that keeps a few dozen where hundreds have the class's mass (the real tomogram
    from most clicks) is pointed out with the cut that would keep them; a count close to the
    cut's, a cut already by mass, or no mass window says nothing."""
    from cryosam.app.pick import MASS_NOTE_RATIO, mass_count_notes
    from cryosam.method.cut import CutRule
    from cryosam.method.pick import ClassReport

    rep = ClassReport("ribosome", 1, 25.0, 1, cut=0.243, verified=True, separation=2.7)
    rep.cut_method = CutRule.SHAPE_KNEE.value
    rep.n_by_shape, rep.n_by_mass, rep.cut_by_mass = 75, 993, 0.15718
    (said,) = mass_count_notes([rep], "picks")
    assert "keeps 75" in said and "993 have the class's mass" in said
    assert "cryosam recut picks --min-score ribosome=0.1571" in said
    rep.n_by_mass = int(MASS_NOTE_RATIO * 75) - 1
    assert mass_count_notes([rep], "picks") == []
    rep.n_by_mass, rep.cut_method = 993, CutRule.SHAPE_MASS_COUNT.value
    assert mass_count_notes([rep], "picks") == []
    # counted because the knee kept a few of many: the note names the recut to the few
    rep.cut_method, rep.cut, rep.cut_by_shape = CutRule.SHAPE_MASS_MANY.value, 0.15718, 0.24325
    (said,) = mass_count_notes([rep], "picks")
    assert "only 75 candidates stand out" in said and "993 have the class's mass" in said
    assert "cryosam recut picks --min-score ribosome=0.2432" in said
    rep.cut_method, rep.cut_by_mass = CutRule.SHAPE_KNEE.value, float("nan")
    assert mass_count_notes([rep], None) == []
