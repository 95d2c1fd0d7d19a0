import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryosam.errors import CryosamError
from cryosam.io import coords
from cryosam.io.copick_json import read_copick_json, write_copick_json
from cryosam.io.picks import Picks, read_picks_csv, write_picks_csv
from cryosam.io.star import read_star, write_star

SHAPE = (200, 400, 380)


DATA = Path(__file__).parent / "data"


def make_picks(n=5, seed=0, angles=True):
    rng = np.random.default_rng(seed)
    zyx = rng.uniform(0, 1, (n, 3)) * (np.array(SHAPE) - 1)
    return Picks(
        zyx,
        score=rng.uniform(0, 1, n),
        class_name=["ribosome", "proteasome"] * (n // 2) + ["ribosome"] * (n % 2),
        instance=np.arange(1, n + 1) * 3,
        angles=rng.uniform(-180, 180, (n, 3)) if angles else None,
        tomogram="TS_01.mrc",
    )


def assert_same(a: Picks, b: Picks):
    np.testing.assert_array_equal(a.zyx, b.zyx)
    np.testing.assert_array_equal(a.score, b.score)
    assert a.class_name.tolist() == b.class_name.tolist()
    np.testing.assert_array_equal(a.instance, b.instance)
    if a.angles is None:
        assert b.angles is None
    else:
        np.testing.assert_array_equal(a.angles, b.angles)


def test_csv_round_trip_exact(tmp_path):
    picks = make_picks()
    path = write_picks_csv(tmp_path / "picks.csv", picks)
    lines = path.read_text().splitlines()
    assert lines[0] == "z,y,x,score,class,instance,rot,tilt,psi"
    assert not any(line.startswith("#") for line in lines)
    assert_same(picks, read_picks_csv(path))


def test_csv_columns_in_any_order_and_case(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("X,class,Z,y\n3.5,ribo,1,2\n")
    picks = read_picks_csv(path)
    np.testing.assert_array_equal(picks.zyx, [[1, 2, 3.5]])
    assert picks.class_name.tolist() == ["ribo"]


def test_relion3_star_round_trip_and_columns(tmp_path):
    picks = make_picks()
    path = write_star(tmp_path / "picks.star", picks, "relion3")
    text = path.read_text()
    assert "_rlnCoordinateX" in text and "_rlnMicrographName" in text
    back = read_star(path)
    assert_same(picks, back)
    # X is the fastest axis: rlnCoordinateX equals the voxel x index
    import starfile

    table = starfile.read(path, always_dict=True)["particles"]
    np.testing.assert_array_equal(table["rlnCoordinateX"].to_numpy(float), picks.zyx[:, 2])
    np.testing.assert_array_equal(table["rlnCoordinateZ"].to_numpy(float), picks.zyx[:, 0])


def test_relion5_star_round_trip_and_centre(tmp_path):
    picks = make_picks(angles=False)
    path = write_star(tmp_path / "p5.star", picks, "relion5", shape_zyx=SHAPE, voxel_size=10.0)
    assert "_rlnCenteredCoordinateXAngst" in path.read_text()
    back = read_star(path, shape_zyx=SHAPE, voxel_size=10.0)
    np.testing.assert_allclose(back.zyx, picks.zyx, rtol=0, atol=1e-9)
    assert back.class_name.tolist() == picks.class_name.tolist()
    with pytest.raises(CryosamError, match="centre"):
        read_star(path)
    # the tomogram centre maps to 0 Å
    centre = Picks([np.array(SHAPE) / 2])
    write_star(tmp_path / "c.star", centre, "relion5", shape_zyx=SHAPE, voxel_size=10.0)
    import starfile

    t = starfile.read(tmp_path / "c.star", always_dict=True)["particles"]
    assert float(t["rlnCenteredCoordinateXAngst"].iloc[0]) == 0.0


def test_star_dialect_and_tomogram_filter(tmp_path):
    path = tmp_path / "warp.star"
    pd_table = pd.DataFrame(
        {
            "rlnMicrographName": ["TS_01.tomostar", "TS_02.tomostar", "TS_01.tomostar"],
            "rlnCoordinateX": [1.0, 2.0, 3.0],
            "rlnCoordinateY": [4.0, 5.0, 6.0],
            "rlnCoordinateZ": [7.0, 8.0, 9.0],
        }
    )
    import starfile

    starfile.write(pd_table, path)
    picks = read_star(path, tomogram="TS_01.mrc")
    np.testing.assert_array_equal(picks.zyx, [[7, 4, 1], [9, 6, 3]])
    assert picks.class_name.tolist() == ["particle", "particle"]


def test_star_without_known_columns(tmp_path):
    import starfile

    path = tmp_path / "bad.star"
    starfile.write(pd.DataFrame({"rlnImageName": ["a"], "rlnDefocusU": [1.0]}), path)
    with pytest.raises(CryosamError, match="rlnCoordinateX"):
        read_star(path)


def test_copick_round_trip(tmp_path):
    picks = make_picks(angles=False).of_class("ribosome")
    path = write_copick_json(tmp_path / "ribo.json", picks, voxel_size=7.84, run_name="TS_01")
    data = json.loads(path.read_text())
    assert data["pickable_object_name"] == "ribosome"
    loc = data["points"][0]["location"]
    assert loc["x"] == pytest.approx(picks.zyx[0, 2] * 7.84)
    back = read_copick_json(path, voxel_size=7.84)
    np.testing.assert_allclose(back.zyx, picks.zyx, atol=1e-9)
    np.testing.assert_array_equal(back.score, picks.score)
    assert back.tomogram == "TS_01"
    with pytest.raises(CryosamError, match="one object"):
        write_copick_json(tmp_path / "x.json", make_picks(), voxel_size=1.0)


def test_copick_position_adds_the_transformation_translation():
    """copick's position of a point is its location plus the translation of its 4 x 4
    ``transformation_`` (copick adds it when it reads and writes other formats). The file
    is in copick's schema: a point at rest, the same location moved by (20, -30, 40) Å
    (x, y, z) with a rotation, and a point without a transformation."""
    back = read_copick_json(DATA / "copick_picks_with_transforms.json", voxel_size=10.0)
    np.testing.assert_allclose(back.zyx, [[30, 40, 50], [34, 37, 52], [5, 20, 10]])
    assert list(back.class_name) == ["ribosome"] * 3 and back.tomogram == "TS_01"


def test_a_broken_copick_transformation_is_refused(tmp_path):
    data = json.loads((DATA / "copick_picks_with_transforms.json").read_text())
    data["points"][1]["transformation_"] = [[1, 0, 0], [0, 1, 0]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(CryosamError, match="point 1: transformation_"):
        read_copick_json(bad, voxel_size=10.0)


def test_coordinate_conversions_both_ways():
    zyx = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(coords.zyx_to_relion3_xyz(zyx), [[3, 2, 1], [0, 0, 0]])
    np.testing.assert_array_equal(coords.relion3_xyz_to_zyx([[3, 2, 1]]), [[1, 2, 3]])
    np.testing.assert_array_equal(
        coords.zyx_to_relion5_xyz_angst([[0, 0, 0]], (10, 20, 30), 2.0), [[-30, -20, -10]]
    )
    np.testing.assert_array_equal(
        coords.relion5_xyz_angst_to_zyx([[-30, -20, -10]], (10, 20, 30), 2.0), [[0, 0, 0]]
    )
    np.testing.assert_array_equal(coords.zyx_to_angstrom_xyz([[1, 2, 3]], 10.0), [[30, 20, 10]])
    np.testing.assert_array_equal(coords.angstrom_xyz_to_zyx([[30, 20, 10]], 10.0), [[1, 2, 3]])
    assert coords.diameter_to_voxels(250, 10) == 25
    with pytest.raises(CryosamError):
        coords.diameter_to_voxels(0, 10)
    with pytest.raises(CryosamError):
        coords.zyx_to_angstrom_xyz(zyx, 0.0)


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=6),
    st.floats(min_value=0.1, max_value=50),
    st.tuples(*[st.integers(1, 2000)] * 3),
)
def test_property_relion5_and_angstrom_round_trip(points, voxel_size, shape):
    zyx = np.array(points)
    back = coords.relion5_xyz_angst_to_zyx(
        coords.zyx_to_relion5_xyz_angst(zyx, shape, voxel_size), shape, voxel_size
    )
    np.testing.assert_allclose(back, zyx, rtol=1e-12, atol=1e-9)
    back = coords.angstrom_xyz_to_zyx(coords.zyx_to_angstrom_xyz(zyx, voxel_size), voxel_size)
    np.testing.assert_allclose(back, zyx, rtol=1e-12, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(finite, finite, finite, st.floats(0, 1), st.sampled_from(["a", "b_1", "c-2"])),
        min_size=0,
        max_size=5,
    )
)
def test_property_csv_and_star_round_trip(tmp_path_factory, rows):
    d = tmp_path_factory.mktemp("rt")
    picks = Picks(
        [r[:3] for r in rows] if rows else np.zeros((0, 3)),
        score=[r[3] for r in rows],
        class_name=[r[4] for r in rows],
    )
    assert_same(picks, read_picks_csv(write_picks_csv(d / "p.csv", picks)))
    if rows:
        assert_same(picks, read_star(write_star(d / "p.star", picks)))
