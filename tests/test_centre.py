"""Clicks moved to their particle's centre (``prompt_snap``, :mod:`cryosam.method.centre`)."""

from __future__ import annotations

import numpy as np
import pytest

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.prompts import Prompt
from cryosam.method.centre import SNAP_WEAK, blob_centre, snap_prompts

D = 20.0


def _two_touching_particles():
    """Two particle-sized blobs (bright) whose surfaces touch, in noise."""
    g = np.indices((48, 48, 80)).astype(float)
    vol = np.random.default_rng(0).normal(0, 0.3, g.shape[1:])
    centres = [np.array([24.0, 24.0, 28.0]), np.array([24.0, 24.0, 48.0])]
    for c in centres:
        vol += np.exp(-np.sum((g - c[:, None, None, None]) ** 2, axis=0) / (2 * (D / 4) ** 2))
    return vol.astype(np.float32), centres


def test_a_click_off_centre_towards_a_neighbour_moves_to_its_own_particle():
    vol, (a, b) = _two_touching_particles()
    for off in ([0, 0, 5.0], [0, 5.0, 0], [4.0, -3.0, 2.0]):  # a quarter diameter off
        got = blob_centre(vol, a + np.array(off), D, 0.35)
        assert np.linalg.norm(got - a) <= 1.5, (off, got)
    assert np.linalg.norm(blob_centre(vol, b - [0, 0, 5.0], D, 0.35) - b) <= 1.5
    np.testing.assert_array_equal(blob_centre(vol, a + [0, 0, 5.0], D, 0.0), a + [0, 0, 5.0])


def _two_touching_balls():
    """Two solid balls of diameter ``D`` (bright) whose surfaces touch, in noise."""
    g = np.indices((48, 48, 80)).astype(float)
    vol = np.random.default_rng(0).normal(0, 0.3, g.shape[1:])
    centres = [np.array([24.0, 24.0, 28.0]), np.array([24.0, 24.0, 48.0])]
    for c in centres:
        vol[np.sqrt(np.sum((g - c[:, None, None, None]) ** 2, axis=0)) <= D / 2] += 1.0
    return vol.astype(np.float32), centres


def test_only_positive_prompts_of_sized_classes_move():
    vol, (a, _) = _two_touching_balls()
    click = tuple(float(v) for v in a - [0, 0, 9.0])  # on the rim, away from the neighbour
    prompts = [Prompt(click, "ribo"), Prompt(click, "ribo", negative=True), Prompt(click, "x")]
    moved = snap_prompts(vol, prompts, {"ribo": D}, 0.5)
    assert np.linalg.norm(np.subtract(moved[0].zyx, a)) <= 1.5
    assert moved[1].zyx == click and moved[2].zyx == click
    assert moved[0].class_name == "ribo" and moved[1].negative


def test_prompt_snap_is_validated():
    with pytest.raises(CryosamError, match="prompt_snap"):
        Config(prompt_snap=0.8)


def test_an_off_centre_click_is_used_at_its_particles_centre():
    from cryosam.method.pick import pick_particles
    from tests.conftest import small_sim

    sim = small_sim((48, 112, 112), {"ribosome": 0.05}, seed=41)
    ribos = sim.centres("ribosome")
    c = ribos[np.argmin(np.linalg.norm(ribos - np.array([24, 56, 56]), axis=1))]
    d = 29.0  # px at the simulation's 10 A
    click = c + 0.45 * d * np.array([0.0, 0.6, 0.8])  # on its rim
    cfg = Config(prompt_snap=0.5)
    out = pick_particles(sim.tomogram, [Prompt(tuple(click), "ribosome")], {"ribosome": d}, cfg)
    used = np.asarray(out.prompts[0].zyx)
    assert np.linalg.norm(used - c) < 0.6 * np.linalg.norm(click - c), (used, c, click)
    never = Config(prompt_snap=0.0)
    plain = pick_particles(sim.tomogram, [Prompt(tuple(click), "ribosome")], {"ribosome": d}, never)
    np.testing.assert_array_equal(plain.prompts[0].zyx, click)  # 0: clicks never move


def test_only_a_click_on_the_flank_moves():
    """The default moves a click whose blob response is under half the peak's within reach
    (on a ball's rim: 0.45 diameters out) and leaves one a quarter diameter off, whose
    response is still 0.8 of the peak's, where it is."""
    vol, (a, _) = _two_touching_balls()
    for off in ([0, 0, 5.0], [0, 5.0, 0], [1.0, 0, 0]):
        near = a - np.array(off)
        np.testing.assert_array_equal(blob_centre(vol, near, D, 0.5, SNAP_WEAK), near)
        assert np.linalg.norm(blob_centre(vol, near, D, 0.5) - a) <= 1.5  # unconditional
    for off in ([0, 0, 9.0], [0, 9.0, 0], [-9.0, 0, 0]):
        assert np.linalg.norm(blob_centre(vol, a - np.array(off), D, 0.5, SNAP_WEAK) - a) <= 1.5


def test_candidates_move_to_their_blob_on_a_binned_grid_and_never_outside():
    from cryosam.method.centre import BALL_SIGMA, blob_centres

    vol, (a, b) = _two_touching_particles()
    pts = np.array([a + [0, 0, -6.0], b + [3.0, 4.0, 0], [1.0, 1.0, 1.0]])
    got = blob_centres(vol, pts, D, 0.4, BALL_SIGMA, b=2)
    assert np.linalg.norm(got[0] - a) <= 2.0 and np.linalg.norm(got[1] - b) <= 2.0
    assert np.all(got >= 0) and np.all(got <= np.array(vol.shape) - 1)
    np.testing.assert_array_equal(blob_centres(vol, pts, D, 0.0, BALL_SIGMA, b=2), pts)


def test_the_user_hears_which_clicks_moved():
    from cryosam.app.pick import MOVED_LISTED, moved_prompt_notes

    a, b = Prompt((10.0, 20.0, 30.0), "ribo"), Prompt((40.0, 20.0, 30.0), "ribo")
    moved_a = Prompt((10.0, 20.0, 36.0), "ribo")
    notes = moved_prompt_notes([a, b], [moved_a, b])
    assert len(notes) == 1 and "z,y,x=10,20,30" in notes[0] and "6.0 voxels" in notes[0]
    assert moved_prompt_notes([a, b], [a, b]) == []
    many = [Prompt((float(i), 20.0, 30.0), "ribo") for i in range(MOVED_LISTED + 1)]
    shifted = [Prompt((p.zyx[0], 21.0, 30.0), "ribo") for p in many]
    (note,) = moved_prompt_notes(many, shifted)
    assert note.startswith(f"{MOVED_LISTED + 1} clicks")


def test_a_pick_from_a_click_on_the_rim_says_it_moved():
    from cryosam.app.pick import in_memory, pick
    from tests.conftest import small_sim

    sim = small_sim((48, 112, 112), {"ribosome": 0.05}, seed=41)
    ribos = sim.centres("ribosome")
    c = ribos[np.argmin(np.linalg.norm(ribos - np.array([24, 56, 56]), axis=1))]
    d = 29.0
    click = c + 0.45 * d * np.array([0.0, 0.6, 0.8])
    run = pick(
        in_memory(sim.tomogram, 10.0),
        [Prompt(tuple(click), "ribosome")],
        {"ribosome": d},
        Config(prompt_snap=0.5),
    )
    assert any("flank" in w and "moved" in w for w in run.warnings), run.warnings
    assert run.record["prompts_used"][0] != [round(v, 2) for v in click]
