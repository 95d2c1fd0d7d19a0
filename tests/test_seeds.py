"""A class given a reference map and no click (cryosam.method.seeds): the map finds its
prompts among look-alikes that a blob detector ranks first."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryosam.io.coords import relion_euler_matrices
from cryosam.method.seeds import blob_peaks, map_diameter_angst
from cryosam.method.verify import rotate_box
from cryosam.volume.prepare import prepare_volume
from tests.test_orient import N, P, _particle

KNOBS = [(20, 20, 20), (20, 20, 100), (52, 60, 60), (20, 100, 20)]
BALLS = [(20, 60, 20), (52, 20, 60), (52, 100, 100), (20, 100, 100)]


def _scene(seed: int = 0) -> np.ndarray:
    """The asymmetric particle at ``KNOBS``, turned, and brighter, larger plain balls at
    ``BALLS``; dark protein, as a raw tomogram."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(0, 0.1, (72, 120, 120)).astype(np.float32)
    A = relion_euler_matrices([[30, 40, 50], [40, 70, -120], [-150, 100, 30], [75, 150, 160]])
    g = np.indices((N,) * 3) - N // 2
    ball = 1.4 * np.exp(-(g**2).sum(0) / (2 * 4.5**2))
    for c, a in zip(KNOBS, A):
        sl = tuple(slice(ci - N // 2, ci + N // 2 + 1) for ci in c)
        vol[sl] += rotate_box(_particle(), (P @ a @ P).T)
    for c in BALLS:
        sl = tuple(slice(ci - N // 2, ci + N // 2 + 1) for ci in c)
        vol[sl] += ball
    return -vol


def _near(points, centres, tol: float = 4.0) -> np.ndarray:
    d = np.linalg.norm(np.asarray(points)[:, None] - np.asarray(centres)[None], axis=2)
    return d.min(1) <= tol


def test_map_diameter_is_the_size_of_the_molecule():
    g = np.indices((41,) * 3) - 20
    ball = (np.sqrt((g**2).sum(0)) <= 10).astype(np.float32)  # 100 Å across at 5 Å
    assert map_diameter_angst(ball, 5.0) == pytest.approx(100.0, rel=0.15)
    assert map_diameter_angst(ball, 10.0) == pytest.approx(200.0, rel=0.15)
    with pytest.raises(ValueError, match="constant"):
        map_diameter_angst(np.zeros((8, 8, 8)), 10.0)


def test_pick_from_a_map_alone_seeds_on_the_particle_not_the_brighter_blobs(tmp_path):
    """No --point, no --diameter: the map's size is the class's, its best matches are the
    prompts (the knobbed particles, where the blob response alone ranks the plain balls
    first) and every particle is picked."""
    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    vol = _scene()
    prepared, _ = prepare_volume(vol, "yes", 18.0)
    assert _near(blob_peaks(prepared, 18.0, 4), BALLS).all()  # the trap is real
    path = write_mrc(tmp_path / "TS_01.mrc", vol, voxel_size=10.0)
    write_mrc(tmp_path / "map.mrc", _particle(), voxel_size=10.0)
    out = tmp_path / "out"
    assert (
        main(["pick", str(path), "--reference", str(tmp_path / "map.mrc"), "--out", str(out)]) == 0
    )
    run = json.loads((out / "run.json").read_text())
    (cls,) = run["classes"]
    assert cls["name"] == "particle"
    assert 15.0 < cls["diameter_px"] < 22.0  # the map's size (the particle spans ~18 voxels)
    seeds = np.array(cls["seeded_from_map"])
    assert len(seeds) == 3 and _near(seeds[:, :3], KNOBS).all()
    picks = pd.read_csv(out / "picks.csv")
    zyx = picks[["z", "y", "x"]].to_numpy(float)
    on_knob = _near(zyx, KNOBS)
    assert _near(KNOBS, zyx[on_knob]).all()  # every particle picked


def test_map_alone_refusals(tmp_path):
    """Two unnamed maps, or no point and no map: one line each, exit 2."""
    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    path = write_mrc(tmp_path / "t.mrc", _scene(), voxel_size=10.0)
    m = write_mrc(tmp_path / "map.mrc", _particle(), voxel_size=10.0)
    base = ["pick", str(path), "--out", str(tmp_path / "o")]
    assert main([*base, "--reference", str(m), "--reference", str(m)]) == 2
    assert main([*base, "--diameter", "200"]) == 2
    assert not (tmp_path / "o" / "picks.csv").exists()


def test_batch_from_a_map_alone_seeds_each_tomogram(tmp_path):
    """`batch` with a map and no click anywhere: each tomogram finds its own seeds from the
    map (no query crosses from one to the other) and picks its particles."""
    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    tomos = tmp_path / "tomos"
    tomos.mkdir()
    write_mrc(tomos / "TS_01.mrc", _scene(0), voxel_size=10.0)
    write_mrc(tomos / "TS_02.mrc", _scene(1)[:, :, ::-1].copy(), voxel_size=10.0)  # mirrored
    m = write_mrc(tmp_path / "map.mrc", _particle(), voxel_size=10.0)
    out = tmp_path / "out"
    args = ["batch", str(tomos), "--reference-map", f"{m}:knob", "--workers", "0"]
    assert main([*args, "--out", str(out)]) == 0
    for name, knobs in (("TS_01", KNOBS), ("TS_02", [(z, y, 119 - x) for z, y, x in KNOBS])):
        run = json.loads((out / name / "run.json").read_text())
        (cls,) = run["classes"]
        assert cls["name"] == "knob" and len(cls["seeded_from_map"]) == 3
        assert _near(np.array(cls["seeded_from_map"])[:, :3], knobs).all()
        picks = pd.read_csv(out / name / "picks.csv")
        assert _near(knobs, picks[["z", "y", "x"]].to_numpy(float)).all()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["status"]) == ["done", "done"]
    # no click and no map: refused before any tomogram is read
    assert main(["batch", str(tomos), "--diameter", "200", "--out", str(tmp_path / "o")]) == 2
