"""Pick files written by RELION (and Warp via RELION 3.1), read through our readers.

A round trip through our own writer passes when writer and reader are wrong the same
way; these files were written by the programs that own the conventions
(tests/data/golden/README.md says where each comes from)."""

from pathlib import Path

import numpy as np
import pytest

from cryosam.errors import CryosamError
from cryosam.io import coords
from cryosam.io.readers import read_any_picks
from cryosam.io.star import read_star

GOLDEN = Path(__file__).parent / "data" / "golden"


def test_relion5_refine3d_positions_apply_origin_shifts():
    # RELION 5: position = centred coordinate - origin shift (Å), centre at size / 2
    shape_zyx, vs = (100, 600, 400), 3.105
    picks = read_star(GOLDEN / "relion5_refine3d_data.star", shape_zyx=shape_zyx, voxel_size=vs)
    assert len(picks) == 4
    # first particle: centred (-176.94, 765.48005, 11.16) Å, origin (-2.41904, 2.498456, -6.78404) Å
    x = (-176.94 + 2.41904) / vs + 200
    y = (765.48005 - 2.498456) / vs + 300
    z = (11.16 + 6.78404) / vs + 50
    np.testing.assert_allclose(picks.zyx[0], [z, y, x], atol=1e-6)
    np.testing.assert_allclose(picks.angles[0], [-126.27895, 65.873044, 99.174441])
    assert picks.tomogram == "TS_01"
    only_ts02 = read_star(
        GOLDEN / "relion5_refine3d_data.star", shape_zyx=shape_zyx, voxel_size=vs, tomogram="TS_02"
    )
    assert len(only_ts02) == 1


def test_relion31_warp_positions_in_pixels_minus_origin():
    path = GOLDEN / "relion31_warp_subtomo.star"
    picks = read_any_picks(path, voxel_size=2.446)
    # first particle: (915.549, 1480.63, 938.008) px, origin (-0.25289, -2.69889, 7.24711) Å
    expected_xyz = (
        np.array([915.549, 1480.63, 938.008]) - np.array([-0.25289, -2.69889, 7.24711]) / 2.446
    )
    np.testing.assert_allclose(picks.zyx[0], expected_xyz[::-1], atol=1e-6)
    assert len(read_star(path, voxel_size=2.446, tomogram="0003_12.23Apx.mrc")) == 2
    with pytest.raises(CryosamError, match="voxel-size"):
        read_star(path)  # non-zero origins in Å need the pixel size


def test_relion_euler_matrix_is_relions_passive_convention():
    # RELION's Euler_angles2matrix(rot=90, 0, 0) = passive Rz(90): x -> -y
    a = coords.relion_euler_matrices([90.0, 0.0, 0.0])[0]
    np.testing.assert_allclose(a @ [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], atol=1e-12)
    # tilt=90 alone: passive Ry(90) sends x to +z
    b = coords.relion_euler_matrices([0.0, 90.0, 0.0])[0]
    np.testing.assert_allclose(b @ [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], atol=1e-12)
    # the subtomogram's frame turns the origin shift, as RELION 5's getPosition does
    shift = coords.relion_origin_shift_xyz([[1.0, 0.0, 0.0]], [[90.0, 0.0, 0.0]])
    np.testing.assert_allclose(shift[0], [0.0, -1.0, 0.0], atol=1e-12)


def test_emdb_map_reads_with_its_voxel_size():
    from cryosam.io.tomogram import read_tomogram

    vol = read_tomogram(GOLDEN / "EMD-3197.map")  # EMDB subtomogram average, nxstart -2
    assert vol.shape == (20, 20, 20)
    assert vol.voxel_size == pytest.approx(11.4, abs=1e-4)
    assert vol.mode == 2 and np.isfinite(vol.data).all() and vol.data.std() > 0


def test_emdb_map_with_permuted_axes_reads_as_zyx():
    from cryosam.io.tomogram import header_info, read_tomogram

    path = GOLDEN / "EMD-3001.map.bz2"  # mapc=3 mapr=1 maps=2: columns are z, rows x, sections y
    with pytest.raises(CryosamError, match="anisotropic"):
        read_tomogram(path)  # 0.448 / 0.393 / 0.459 Å: refused in one line
    vol = read_tomogram(path, voxel_size=0.45)
    assert vol.shape == (73, 25, 43) == header_info(path, 0.45)[0]
    # the file's brightest voxel sits at (section 9, row 24, column 15) = (y 9, x 24, z 15)
    assert np.unravel_index(np.argmax(vol.data), vol.shape) == (15, 9, 24)


def _first_contour_points(path: Path) -> np.ndarray:
    """The first CONT chunk's points as stored (big-endian float32 X, Y, Z), parsed by hand
    from IMOD's binary model specification (binspec): psize, flags, time, surf, points."""
    raw = path.read_bytes()
    at = raw.index(b"CONT") + 4
    n = int(np.frombuffer(raw, ">i4", 1, at)[0])
    return np.frombuffer(raw, ">f4", 3 * n, at + 16).reshape(n, 3).astype(np.float64)


def test_imod_model_from_3dmod_reads_as_voxel_prompts():
    # 3dmod: origin at the first pixel's corner in X and Y, at the first section's centre in
    # Z: voxel (z, y, x) = (Z, Y - 0.5, X - 0.5)
    from cryosam.io.prompts import read_prompt_file

    path = GOLDEN / "two_contour_example.mod"
    prompts = read_prompt_file(path)
    assert len(prompts) == 25 and {p.class_name for p in prompts} == {"particle"}
    X, Y, Z = _first_contour_points(path)[0]
    assert (X, Y, Z) == pytest.approx((64.333336, 64.666664, 80.0), abs=1e-5)
    assert prompts[0].zyx == pytest.approx((80.0, 64.166664, 63.833336), abs=1e-5)


def test_imod_objects_are_classes_by_name():
    from cryosam.io.prompts import read_prompt_file

    prompts = read_prompt_file(GOLDEN / "multiple_objects_example.mod")
    assert len(prompts) == 6 and {p.class_name for p in prompts} == {"chemo-array"}
    X, Y, Z = _first_contour_points(GOLDEN / "multiple_objects_example.mod")[0]
    assert prompts[0].zyx == pytest.approx((Z, Y - 0.5, X - 0.5), abs=1e-4)
    assert prompts[0].zyx == pytest.approx((134.0, 661.333435, 366.500061), abs=1e-4)


def test_relion_float16_image_reads_as_float32_with_its_pixel_size():
    from cryosam.io.tomogram import header_info, read_tomogram

    path = GOLDEN / "relion_float16.mrc"
    shape, vs, mode = header_info(path)
    assert shape == (1, 64, 64) and mode == 12 and vs == pytest.approx(3.5953, abs=1e-4)
    vol = read_tomogram(path)
    assert vol.data.dtype == np.float32
    raw = np.frombuffer(path.read_bytes(), "<f2", 64 * 64, 1024).reshape(64, 64)
    np.testing.assert_array_equal(vol.data[0], raw.astype(np.float32))
    assert np.unravel_index(np.argmax(vol.data[0]), (64, 64)) == (31, 29)


WARP = GOLDEN / "warptools_ts_export_particles_2d.star"


def test_warptools_export_reads_in_pixels_of_its_tomogram_by_tomostar_name():
    # WarpTools ts_export_particles: rlnCoordinateX/Y/Z in pixels of the export's pixel size
    # (12 A here), rlnTomoName the tilt series' .tomostar name
    picks = read_star(WARP, voxel_size=12.0, tomogram="Unt_083.mrc")
    assert picks.tomogram == "Unt_083.mrc" and len(picks) == 3
    np.testing.assert_allclose(picks.zyx[0], [28.146, 564.065, 494.521])
    np.testing.assert_allclose(picks.angles[0], [53.913, 104.840, -78.580])


def test_prompts_from_a_star_of_several_tomograms_keep_their_own():
    from cryosam.io.prompts import prompts_for_tomogram, read_prompt_file

    prompts = read_prompt_file(WARP)
    assert [p.tomogram for p in prompts] == ["Unt_083.tomostar"] * 3 + ["Unt_050.tomostar"] * 3
    mine = prompts_for_tomogram(prompts, "Unt_050.mrc")
    assert len(mine) == 3 and mine[0].zyx == pytest.approx((27.755, 86.278, 508.142))


def _dynamo_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def test_dynamo_table_reads_as_prompts_at_position_plus_shift():
    """A table Dynamo wrote (MATLAB's complex-number text in column 28 included): each
    particle at columns 24-26 plus the shifts of columns 4-6 (1-based), worked out from the
    raw text; the table map beside it names each row's tomogram."""
    from cryosam.io.prompts import prompts_for_tomogram, read_prompt_file

    path = GOLDEN / "dynamo_complex_excerpt.tbl"
    rows = _dynamo_rows(path)
    assert all(len(r) == 41 for r in rows) and "0+1.2074e-06i" in rows[1]
    prompts = read_prompt_file(path)
    want = [
        [float(r[25]) + float(r[5]), float(r[24]) + float(r[4]), float(r[23]) + float(r[3])]
        for r in rows
    ]
    assert np.allclose([p.zyx for p in prompts], want)
    assert np.allclose(prompts[0].zyx, (641.59 + 1.5785, 759.36 + 0.57826, 1018.9 - 1.4197))
    assert {p.tomogram for p in prompts} == {"tomo_ts01.mrc_15.00Apx.mrc"}
    assert len(prompts_for_tomogram(prompts, "tomo_ts01.mrc_15.00Apx.mrc")) == 3
    assert not prompts_for_tomogram(prompts, "tomo_ts02.mrc_15.00Apx.mrc")


def test_dynamo_table_of_several_tomograms_needs_its_map(tmp_path):
    rows = _dynamo_rows(GOLDEN / "dynamo_complex_excerpt.tbl")
    rows[1][19] = "2"  # the second particle in tomogram 2, no table map beside
    (tmp_path / "t.tbl").write_text("".join(" ".join(r) + "\n" for r in rows))
    from cryosam.io.prompts import read_prompt_file

    with pytest.raises(CryosamError, match="table map"):
        read_prompt_file(tmp_path / "t.tbl")


def test_our_dynamo_table_lays_out_columns_as_dynamo_does(tmp_path):
    """Beside a table Dynamo wrote: at least its 35 standard columns (Dynamo wrote 41,
    dynamotable writes 42: ``eig1``, ``eig2``), the tag in 1, the angles in 7-9, the tomogram
    index in 20, the position in 24-26 (x, y, z) and a table map of ``index<TAB>path``
    lines."""
    from cryosam.io.dynamo import dynamo_to_relion_angles, write_dynamo_table
    from cryosam.io.picks import Picks

    picks = Picks(
        np.array([[643.1685, 759.93826, 1017.4803]]), np.array([0.05]),
        np.array(["particle"], dtype=object), np.array([1]),
        angles=dynamo_to_relion_angles([[-44.606, 4.5303, -14.579]]),
    )  # fmt: skip
    write_dynamo_table(tmp_path / "ours.tbl", picks, 15.0, "tomo_ts01.mrc_15.00Apx.mrc")
    (ours,) = _dynamo_rows(tmp_path / "ours.tbl")
    theirs = _dynamo_rows(GOLDEN / "dynamo_complex_excerpt.tbl")[0]
    assert len(theirs) == 41 and len(ours) >= 41
    assert ours[0] == "1" and ours[19] == theirs[19] == "1"
    assert np.allclose([float(v) for v in ours[23:26]], [1017.4803, 759.93826, 643.1685])
    assert np.allclose([float(v) for v in ours[6:9]], [float(v) for v in theirs[6:9]], atol=1e-3)
    doc = (tmp_path / "ours.doc").read_text()
    theirs_doc = (GOLDEN / "dynamo_complex_excerpt.doc").read_text().splitlines()[0]
    assert doc == "1\ttomo_ts01.mrc_15.00Apx.mrc\n" == theirs_doc + "\n"
