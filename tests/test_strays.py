"""Strays: accepted matches that form a separate low mode of score and agreement with their
class's average, or lie far below the matches' median, are dropped after orientation
(``pick_strays``)."""

from __future__ import annotations

import numpy as np
import pytest

import cryosam.method.pick as pick_module
from cryosam.app.pick import pick
from cryosam.config import Config
from cryosam.io.picks import Picks
from cryosam.method.candidates import Status
from cryosam.method.cut import off_mass, outliers, robust_bandwidth, robust_z, strays
from cryosam.method.pick import paint, without
from cryosam.method.propagate import InstanceMask
from tests.conftest import clicked_ribosomes


def _matches(n_true: int, n_stray: int, seed: int = 0):
    """Scores and agreements of ``n_true`` particles and ``n_stray`` look-alikes near the
    cut that do not agree with the average (their indices last)."""
    rng = np.random.default_rng(seed)
    score = np.r_[rng.normal(0.45, 0.06, n_true), rng.normal(0.25, 0.02, n_stray)]
    agree = np.r_[rng.normal(0.45, 0.06, n_true), rng.normal(0.08, 0.05, n_stray)]
    return score, agree


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_low_mode_of_score_and_agreement_is_dropped(seed):
    score, agree = _matches(90, 10, seed)
    off = strays(score, agree)
    assert off[90:].all()  # every stray
    assert off[:90].sum() <= 1  # and (nearly) no particle


def test_one_population_or_a_majority_keeps_everything():
    rng = np.random.default_rng(3)
    one = rng.normal(0.4, 0.08, (2, 120))
    assert not strays(*one).any()  # crowded: no mode stands apart
    score, agree = _matches(10, 90)
    assert not strays(score, agree).any()  # nine in ten disagree: no average to trust
    score, agree = _matches(6, 2)
    assert not strays(score, agree).any()  # too few for a distribution


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_look_alikes_outnumbering_the_particles_are_dropped(seed):
    """A valley cut under a second population (ribosomes under a 20S proteasome's reference
    in a sparse cell) keeps more look-alikes than particles: the particles, aligned alike,
    still make the average, and the look-alikes' low mode goes while it is under 0.85 (four
    in five here)."""
    score, agree = _matches(25, 100, seed)
    off = strays(score, agree)
    assert off[25:].mean() > 0.95 and off[:25].sum() <= 1


def test_unknown_agreement_is_kept_and_the_rest_still_judged():
    score, agree = _matches(90, 10)
    agree[0] = np.nan
    agree[95] = np.nan
    off = strays(score, agree)
    assert not off[0] and not off[95]
    assert off[[90, 91, 92, 93, 94, 96, 97, 98, 99]].all()


def _spread_strays(seed: int, n: int = 145, k: int = 25):
    """``n`` particles and ``k`` look-alikes spread evenly from just below them to far below
    (dev1 20S proteasome, one click): whether they pile into a mode of their own depends on
    the draw."""
    rng = np.random.default_rng(seed)
    score = np.r_[rng.normal(0.45, 0.05, n), rng.uniform(0.25, 0.40, k)]
    agree = np.r_[rng.normal(0.45, 0.06, n), rng.uniform(0.05, 0.35, k)]
    return score, agree


@pytest.mark.parametrize("seed", range(10))
def test_look_alikes_far_below_are_dropped_whether_or_not_they_form_a_mode(seed):
    score, agree = _spread_strays(seed)
    off = strays(score, agree)
    far = np.r_[np.zeros(145, bool), (score[145:] < 0.33) & (agree[145:] < 0.2)]
    assert far.any() and off[far].all()  # (stop 39's valley alone dropped none: seeds 0, 2, 9)
    assert off[:145].sum() <= 2


def test_outliers_are_counted_from_the_median_and_mad():
    rng = np.random.default_rng(4)
    score, agree = rng.normal(0.4, 0.05, (2, 200))
    assert not outliers(score, agree).any()  # one population: nothing 3.5 robust sd below
    score[:30], agree[:30] = 0.1, 0.0  # a minority far below does not move the median
    assert outliers(score, agree)[:30].all() and not outliers(score, agree)[30:].any()
    z = robust_z([1.0, 2, 3, 4, 100])  # MAD 1: a normal's sd is 1.4826 of it
    np.testing.assert_allclose(z[:4], [-1.349, -0.674, 0, 0.674], atol=1e-3)
    assert not robust_z(np.ones(5)).any()


def _few_strays(seed: int, n: int = 94, k: int = 6):
    """``n`` particles and ``k`` look-alikes just below them: a mode the robust bandwidth
    smooths away; masses of the class for the particles and of a lighter molecule (TRiC
    beside ribosomes) for the look-alikes, or of the class for all."""
    rng = np.random.default_rng(seed)
    score = np.r_[rng.normal(0.40, 0.06, n), rng.normal(0.28, 0.015, k)]
    agree = np.r_[rng.normal(0.42, 0.08, n), rng.normal(0.22, 0.04, k)]
    light = np.r_[rng.normal(0.19, 0.03, n), rng.normal(0.10, 0.015, k)]
    same = rng.normal(0.19, 0.03, n + k)
    return score, agree, light, same


@pytest.mark.parametrize("seed", [3, 5, 9])
def test_a_few_strays_are_dropped_when_their_mass_is_not_the_class_s(seed):
    score, agree, light, same = _few_strays(seed)
    alone = strays(score, agree)  # too few for the robust bandwidth's mode: the far ones only
    assert not alone[94:].all() and not alone[:94].any()
    off = strays(score, agree, light, 0.3)
    assert off[94:].all() and not off[:94].any()
    # of the class's mass, no mass window, or mass no measure (TRiC's spread): as without
    noisy = np.r_[np.random.default_rng(seed).normal(0.2, 0.3, 94), light[94:]]
    for mass, tolerance in ((same, 0.3), (light, 0.0), (noisy, 0.3)):
        np.testing.assert_array_equal(strays(score, agree, mass, tolerance), alone)


def test_of_a_mode_the_mass_confirms_only_the_members_off_the_class_s_mass_are_dropped():
    """The narrow mode takes in the low tail of the particles' own scores too (dev1 ribosome
    at half the dose: 14 of its 28 were ribosomes); their mass is the class's."""
    rng = np.random.default_rng(7)
    mass = np.r_[rng.normal(0.19, 0.02, 90), rng.normal(0.19, 0.01, 4), rng.normal(0.1, 0.01, 6)]
    low = np.r_[np.zeros(90, bool), np.ones(10, bool)]  # 4 tail particles, 6 look-alikes
    np.testing.assert_array_equal(off_mass(mass, low, 0.3), np.r_[np.zeros(94, bool), [True] * 6])
    mass[94:] = 0.19  # the whole mode of the class's mass: not confirmed
    assert off_mass(mass, low, 0.3) is None
    mass[94:] = 0.1
    assert off_mass(mass, low, 0.0) is None  # no window
    assert off_mass(np.r_[mass[:-1], np.nan], low, 0.3) is None  # a mass unknown
    assert off_mass(mass, None, 0.3) is None  # no mode


@pytest.mark.parametrize("seed", [13, 18])
def test_a_mode_of_strays_needs_a_shallower_valley_than_a_cut(seed):
    """A fifth of the matches three spreads below, in draws whose valley is 0.75-0.8 of its
    flanks deep (dev1 proteasome click 1: 0.777, 25 of the 30 below it look-alikes)."""
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 1, 145), rng.normal(-3.0, 0.8, 30)]
    off = strays(x, x)
    assert off[145:].sum() >= 20 and off[:145].sum() <= 3


@pytest.mark.parametrize("seed", range(12))
def test_a_light_group_the_mass_confirms_needs_only_a_dip_not_a_deep_valley(seed):
    """Ten look-alikes of half the class's mass three spreads below it: their narrow
    valley is sometimes shallow (seed 9: shallower than the 0.75 a cut needs); mass decides."""
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 1, 88), rng.normal(-3.0, 0.45, 10)]
    mass = np.r_[rng.normal(0.19, 0.02, 88), rng.normal(0.11, 0.015, 10)]
    off = strays(x, x, mass, 0.3)
    assert off[88:].sum() >= 7 and off[:88].sum() <= 2


def test_the_robust_bandwidth_is_narrower_than_silvermans_for_two_groups():
    score, agree = _matches(90, 10)
    z = score / score.std() + agree / agree.std()
    assert robust_bandwidth(z) < 1.06 * z.std() * len(z) ** -0.2


def test_without_drops_picks_and_the_maps_are_painted_from_those_that_stay():
    zyx = np.array([[1.0, 1, 1], [5, 5, 5], [9, 9, 9]])
    picks = Picks(zyx, [0.9, 0.5, 0.4], ["a", "a", "a"], [1, 2, 3], np.zeros((3, 3)))
    # the stray's mask (the second, 4-8) overlaps the third's (8-10) at (8, 8, 8)
    masks = [
        InstanceMask(np.ones((n,) * 3, bool), np.full(3, lo), np.full(3, lo + n // 2, float))
        for lo, n in ((0, 3), (4, 5), (8, 3))
    ]
    keep = np.array([True, False, True])
    p = without(picks, keep)
    np.testing.assert_array_equal(p.zyx, [[1, 1, 1], [9, 9, 9]])
    np.testing.assert_array_equal(p.instance, [1, 2])
    kept = [m for m, k in zip(masks, keep) if k]
    sem, inst = paint((11, 11, 11), kept, p.class_name, {"a": 3})
    assert inst[5, 5, 5] == 0 and sem[5, 5, 5] == 0  # the stray's mask is gone
    assert inst[8, 8, 8] == 2  # and takes no voxel from the kept neighbour
    assert inst[9, 9, 9] == 2 and inst[1, 1, 1] == 1 and sem[9, 9, 9] == 3
    assert set(np.unique(inst)) == {0, 1, 2}
    # a voxel two masks hold goes to the first (the better pick)
    sem, inst = paint((11, 11, 11), masks, picks.class_name, {"a": 3})
    assert inst[5, 5, 5] == 2 and inst[8, 8, 8] == 2 and inst[9, 9, 9] == 3


def test_a_pick_drops_its_strays_from_picks_masks_and_counts(monkeypatch):
    """The pick's wiring: the matches the rule names become ``stray`` candidates, leave the
    picks and the label map, and are counted in the class's report; the prompt and the
    particles cut by the volume's border are never judged; ``pick_strays=false`` keeps
    them."""
    sim, tomo, prompts, diam = clicked_ribosomes("strays")
    judged, masses = [], []

    def two_lowest(score, agreement, mass=None, tolerance=0.0):
        judged.append(len(score))
        masses.append((mass, tolerance))
        off = np.zeros(len(score), bool)
        off[np.argsort(score)[:2]] = True
        return off

    # the same cut with the strays to follow (it takes the knee below a valley), none named
    monkeypatch.setattr(pick_module, "strays", lambda score, *_: np.zeros(len(score), bool))
    kept = pick(tomo, prompts, diam, cache=False).outcome
    monkeypatch.setattr(pick_module, "strays", two_lowest)
    out = pick(tomo, prompts, diam, cache=False).outcome
    off = pick(tomo, prompts, diam, cache=False, config=Config(pick_strays=False)).outcome
    assert off.reports[0].n_strays == 0 and str(Status.STRAY) not in set(off.candidate_status)
    z = kept.picks.zyx
    inside = np.all((z >= 12.5) & (z <= np.subtract(sim.tomogram.shape, 13.5)), axis=1)
    prompt = np.all(np.isclose(z, z[0]), axis=1)  # the prompt's pick comes first
    assert judged == [int(np.sum(inside & ~prompt))] and judged[0] >= 3
    mass, tolerance = masses[0]  # each match's mass from verification goes with it
    assert len(mass) == judged[0] and np.isfinite(mass).all() and (mass > 0).any()
    assert tolerance == Config().verify_mass_tolerance
    assert (~inside).any()  # some were near the border, and not judged
    assert len(out.picks) == len(kept.picks) - 2
    assert out.reports[0].n_strays == 2 and kept.reports[0].n_strays == 0
    assert np.sum(out.candidate_status == str(Status.STRAY)) == 2
    gone = ~np.isin(z, out.picks.zyx).all(1)
    assert gone.sum() == 2 and inside[gone].all()
    lowest = np.sort(kept.picks.score[inside & ~prompt])[:2]
    np.testing.assert_allclose(np.sort(kept.picks.score[gone]), lowest)
    labels = np.unique(out.instances)
    np.testing.assert_array_equal(labels[labels > 0], np.arange(1, len(out.picks) + 1))
    assert not np.any((out.semantic > 0) & (out.instances == 0))
