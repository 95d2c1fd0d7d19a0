"""Gold fiducials: found, erased, and no pick on or beside one."""

import numpy as np
import pytest

from cryosam.config import Config
from cryosam.eval.metrics import score_picks
from cryosam.io.prompts import Prompt
from cryosam.method.candidates import Status
from cryosam.method.pick import pick_particles
from cryosam.volume.fiducials import (
    count_beads,
    erase_zone,
    find_gold,
    gold_reach_px,
    near_gold,
)
from cryosam.volume.prepare import prepare_volume
from tests.conftest import small_sim

D = 29.0


def _bead(vol, centre, amplitude):
    """A gold bead: 10 voxels across, stretched in z as the missing wedge draws it, and
    ``amplitude`` darker (gold is ~14 times denser than protein)."""
    zz, yy, xx = np.indices(vol.shape)
    r2 = ((zz - centre[0]) / 2.0) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
    vol[r2 <= 25] -= amplitude


@pytest.fixture(scope="module")
def scene():
    sim = small_sim((64, 128, 128), {"ribosome": 0.05, "ball": 0.012}, seed=31)
    ribos = sim.centres("ribosome")
    prompt = ribos[np.argmin(np.linalg.norm(ribos - np.array([32, 64, 64]), axis=1))]
    vol = sim.tomogram.copy()
    rng = np.random.default_rng(0)
    beads = []
    while len(beads) < 3:  # in the cytoplasm between the ribosomes, away from the click
        b = rng.uniform([12, 15, 15], [52, 113, 113])
        far = np.linalg.norm(ribos - b, axis=1).min() > 30 and np.linalg.norm(b - prompt) > 40
        if far and all(np.linalg.norm(b - q) > 30 for q in beads):
            beads.append(b)
    for b in beads:
        _bead(vol, b, 40.0 * sim.tomogram.std())
    return sim, vol, ribos, prompt, np.array(beads)


def test_gold_is_found_where_it_is_and_nowhere_else(scene):
    sim, vol, _, prompt, beads = scene
    prepared = prepare_volume(vol, "auto", D, [prompt])[0]
    gold = find_gold(prepared, 10.0)
    assert count_beads(gold) == 3
    assert near_gold(beads, gold, 2.0).all()
    # erased: the beads and their rim read as the mean, the rest as before
    before = prepared[...]
    prepared.erase(erase_zone(gold, vol.shape, 10.0))
    after = prepared[...]
    rim = near_gold(np.argwhere(after != before), gold, 3.01)
    assert rim.all() and (after[tuple(gold.T)] == 0).all()
    assert prepared[tuple(beads.round().astype(int)[0])] == 0.0
    # a cell without gold: its densest protein is far below the threshold
    assert len(find_gold(prepare_volume(sim.tomogram, "auto", D, [prompt])[0], 10.0)) == 0


def test_no_pick_on_or_beside_a_fiducial_and_the_rest_recovered(scene):
    _, vol, ribos, prompt, beads = scene
    prompts, d = [Prompt(tuple(prompt), "ribosome")], {"ribosome": D}
    on = pick_particles(vol, prompts, d, Config(), voxel_size=10.0)
    off = pick_particles(vol, prompts, d, Config(reject_fiducials=False), voxel_size=10.0)
    reach = gold_reach_px(D, 10.0)
    assert not near_gold(on.picks.zyx, beads.round().astype(int), reach).any()
    assert (on.candidate_status == str(Status.NEAR_FIDUCIAL)).sum() > 0
    assert on.reports[0].n_near_fiducial > 0 and off.reports[0].n_near_fiducial == 0
    assert any("found 3 gold fiducials" in w for w in on.prompt_outcome.warnings)
    # the beads out-shone the ribosomes; erased, the ribosomes are found again
    f_on, f_off = (score_picks(o.picks.zyx, ribos, D / 2).f1 for o in (on, off))
    assert f_on > f_off + 0.2, (f_on, f_off)


def test_a_click_on_a_fiducial_keeps_the_fiducials(scene):
    _, vol, _, _, beads = scene
    out = pick_particles(vol, [Prompt(tuple(beads[0]), "gold")], {"gold": 12.0}, voxel_size=10.0)
    assert any("prompt lies on or beside a gold fiducial" in w for w in out.prompt_outcome.warnings)
    assert str(Status.NEAR_FIDUCIAL) not in set(out.candidate_status)
    assert near_gold(out.picks.zyx, beads.round().astype(int), 3.0).sum() >= 2
