"""Orientations: each pick's rotation relative to its class's reference, in RELION's angles,
and the files that carry them (STAR, Dynamo, copick JSON)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.io.coords import relion_angles_of_matrices, relion_euler_matrices
from cryosam.io.copick_json import read_copick_json, write_copick_json
from cryosam.io.dynamo import dynamo_to_relion_angles, relion_to_dynamo_angles, write_dynamo_table
from cryosam.io.picks import Picks
from cryosam.io.star import merge_star, read_star, write_relion5_index, write_star
from cryosam.method.orient import average, average_correlations, orient, relion_angles
from cryosam.method.rotations import rotation_grid
from cryosam.method.verify import ShapeVerifier, rotate_box

P = np.eye(3)[::-1]  # (z, y, x) <-> (x, y, z)
N = 31
CENTRES = [(20, 20, 20), (20, 20, 60), (20, 60, 20), (20, 60, 60), (52, 40, 40)]
FINE = Config(verify_bin_px=20.0)
"""The test particles (20 voxels across) carry knobs of 2 voxels that binning by 2 (the
default for 20 voxels) would erase: these tests orient at full sampling."""
FINE_ARGS = ["--set", "verify_bin_px=20"]


def _particle() -> np.ndarray:
    """An asymmetric particle (a body and three knobs of different sizes), bright."""
    g = np.indices((N,) * 3) - N // 2
    out = np.zeros((N,) * 3, np.float32)
    for c, s, a in [((0, 0, 0), 4.0, 1.0), ((6, 0, 0), 2.5, 0.9), ((0, 7, 2), 2.0, 0.8),
                    ((-3, -4, 6), 2.0, 0.7)]:  # fmt: skip
        out += a * np.exp(-((g - np.reshape(c, (3, 1, 1, 1))) ** 2).sum(0) / (2 * s * s))
    return out


def _scene(rotations_xyz, seed=0):
    """A volume with the particle at ``CENTRES``, the k-th turned by RELION matrix
    ``rotations_xyz[k]`` (``particle(x) = particle_0(A^T x)`` in x, y, z), light noise."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(0, 0.1, (72, 80, 80)).astype(np.float32)
    part = _particle()
    for c, A in zip(CENTRES, rotations_xyz):
        M = P @ A @ P  # the same rotation acting on (z, y, x)
        sl = tuple(slice(ci - N // 2, ci + N // 2 + 1) for ci in c)
        vol[sl] += rotate_box(part, M.T)  # sampled at M^T x: turned by M
    return vol


@pytest.fixture(scope="module")
def oriented():
    A = relion_euler_matrices([[0, 0, 0], [40, 70, -120], [-150, 100, 30], [75, 150, 160],
                               [10, 35, -60]])  # fmt: skip
    vol = _scene(A)
    cfg = FINE
    ref = ShapeVerifier(vol, 20, cfg).reference([CENTRES[0]])
    M, corr = orient(vol, CENTRES, ref, 20, cfg)
    return A, M, corr


def test_orientations_recovered_as_relion_angles(oriented):
    """Particles turned by known RELION angles come back with those angles (relative to the
    first, which made the reference), in either lower or upper hemisphere of axes, within
    10° (the boxes are binned 2: the particle spans 10 voxels)."""
    A, M, corr = oriented
    got = relion_euler_matrices(relion_angles(M))
    err = np.degrees(Rotation.from_matrix(np.transpose(got, (0, 2, 1)) @ A).magnitude())
    assert np.all(err < 10.0), err  # binned 2: the particle spans 10 voxels
    assert np.all(corr > 0.8)


def test_average_of_turned_back_picks_is_the_particle(oriented):
    """Averaging the particles, each turned back by its found rotation, gives the particle as
    it lies at the reference: its knobs (the particle less its central body) correlate with
    the average; turned the wrong way, the knobs blur."""
    A, M, _ = oriented
    vol = _scene(A)
    avg = average(vol, CENTRES, M, N)
    wrong = average(vol, CENTRES, np.transpose(M, (0, 2, 1)), N)
    g = np.indices((N,) * 3) - N // 2
    knobs = _particle() - np.exp(-(g**2).sum(0) / (2 * 4.0**2))
    r = lambda a: np.corrcoef(a.ravel(), knobs.ravel())[0, 1]  # noqa: E731
    assert r(avg) > 0.65 and r(wrong) < r(avg) - 0.1, (r(avg), r(wrong))


def test_each_pick_correlates_with_the_average_of_the_others(oriented):
    """The per-pick agreement written to candidates.csv: the particles, turned back by their
    rotations, correlate with the average of the others; a place of pure noise does not, and
    neither do the particles turned the wrong way."""
    A, M, _ = oriented
    vol = _scene(A)
    zyx = [*CENTRES, (56, 66, 66)]  # the last: noise only
    Ms = np.concatenate([M, np.eye(3)[None]])
    r = average_correlations(vol, zyx, Ms, average(vol, zyx, Ms, N), 10.0)
    assert np.all(r[:-1] > 0.5) and r[-1] < 0.2, r
    wrong = np.transpose(M, (0, 2, 1))
    r_wrong = average_correlations(vol, CENTRES, wrong, average(vol, CENTRES, wrong, N), 10.0)
    assert np.median(r_wrong) < np.median(r[:-1]) - 0.1, (r, r_wrong)
    assert np.isnan(
        average_correlations(vol, CENTRES[:1], M[:1], average(vol, CENTRES[:1], M[:1], N), 10.0)
    ).all()


def test_fine_correlation_beats_the_coarse_grid(oriented):
    """The correlation at the refined full-sphere orientation (what verification's final
    score uses, ``verify_refine_angles``) is higher for every particle than the best of the
    coarse half-sphere grid the rounds search."""
    A, _, fine = oriented
    vol = _scene(A)
    v = ShapeVerifier(vol, 20, FINE)
    coarse, _ = v.score(v.reference([CENTRES[0]]), CENTRES)
    assert np.all(fine > coarse + 0.02), (fine, coarse)


def test_rerank_keeps_the_count_and_picks_the_particles(oriented):
    """verify_refine_angles: the cut's count stays, the refined correlation chooses which.
    Five particles scored below five noise spots (as a coarse score might) are the five kept
    after re-ranking, and the scores are the same values, only reassigned."""
    from types import SimpleNamespace

    from cryosam.method.candidates import Candidates, Status, statuses
    from cryosam.method.pick import rerank_refined
    from cryosam.method.verify import FinerGrid

    A, _, _ = oriented
    vol = _scene(A)
    cfg = FINE
    ref = ShapeVerifier(vol, 20, cfg).reference([CENTRES[0]])
    noise = [(60, 15, 70), (60, 70, 12), (8, 40, 40), (40, 8, 72), (66, 72, 72)]
    zyx = np.asarray(CENTRES + noise, float)
    score = np.array([0.40, 0.41, 0.42, 0.43, 0.44, 0.50, 0.51, 0.52, 0.53, 0.54])
    cols = {"correlation": score.copy(), "similarity": np.zeros(10)}
    cands = Candidates(zyx, score.copy(), statuses(10), columns=cols)
    on_volume = FinerGrid(vol, np.ones(3), ref)  # the volume itself, as verification used it
    rerank_refined(SimpleNamespace(prepared=vol, config=cfg), cands, 0.50, 20, on_volume)
    assert sorted(cands.score) == sorted(score)
    cands.cut_at(0.50)
    kept = np.flatnonzero(cands.status == Status.ACCEPTED)
    assert sorted(kept) == [0, 1, 2, 3, 4], cands.score


def test_full_grid_covers_every_rotation():
    rots = Rotation.random(300, random_state=3)
    for full, worst in ((True, 25.0), (False, 60.0)):
        g = rotation_grid(30, full=full)
        d = np.array([np.degrees((g * r.inv()).magnitude().min()) for r in rots])
        assert (d.max() < worst) if full else (d.max() > worst)


def test_relion_angles_round_trip():
    ang = np.array([[10.0, 20.0, 30.0], [-170.0, 90.0, 45.0], [0.0, 135.0, -60.0]])
    back = relion_angles_of_matrices(relion_euler_matrices(ang))
    assert np.allclose(relion_euler_matrices(back), relion_euler_matrices(ang))
    assert np.allclose(back, ang)


def test_dynamo_angles_are_the_same_rotation():
    """Dynamo's zxz (extrinsic, passive, as copick and eulerangles read it): tilt about x.
    RELION (0, 90, 0) is a 90 degree tilt about y, Dynamo's (-90, 90, 90)."""
    ang = np.array([[0.0, 90.0, 0.0], [30.0, 50.0, 70.0], [-120.0, 100.0, 10.0]])
    dyn = relion_to_dynamo_angles(ang)
    assert np.allclose(dynamo_to_relion_angles(dyn), ang)
    assert np.allclose(dyn[0], [-90.0, 90.0, 90.0])
    passive = Rotation.from_euler("zxz", dyn, degrees=True).inv().as_matrix()
    assert np.allclose(passive, relion_euler_matrices(ang))


def _picks():
    ang = np.array([[10.0, 20.0, 30.0], [-100.0, 120.0, 45.0]])
    return Picks(np.array([[5.0, 6.0, 7.0], [10.0, 11.0, 12.5]]), [0.9, 0.8],
                 ["ribosome", "ribosome"], [1, 2], ang, "TS_01.mrc")  # fmt: skip


def test_star_carries_angles_and_a_chosen_tomo_name(tmp_path):
    p = _picks()
    write_star(tmp_path / "p.star", p, "relion5", (20, 30, 40), 10.0, "TS_01.tomostar",
               exact_name=True)  # fmt: skip
    df = starfile.read(tmp_path / "p.star")["particles"]
    assert list(df["rlnTomoName"]) == ["TS_01.tomostar"] * 2
    assert np.allclose(df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]], p.angles)
    back = read_star(tmp_path / "p.star", shape_zyx=(20, 30, 40), voxel_size=10.0)
    assert np.allclose(back.angles, p.angles) and np.allclose(back.zyx, p.zyx)
    write_star(tmp_path / "q.star", p, "relion5", (20, 30, 40), 10.0, "TS_01.mrc")
    assert set(starfile.read(tmp_path / "q.star")["particles"]["rlnTomoName"]) == {"TS_01"}


def test_relion5_index_names_each_tomogram_and_its_file(tmp_path):
    write_relion5_index(tmp_path / "idx.star", {"TS_01": tmp_path / "a" / "picks.star"})
    df = starfile.read(tmp_path / "idx.star")
    assert list(df["rlnTomoName"]) == ["TS_01"]
    assert df["rlnTomoImportParticleFile"][0] == str((tmp_path / "a" / "picks.star").resolve())


def test_merged_star_renumbers_classes_by_name(tmp_path):
    a = Picks([[1.0, 2, 3], [4, 5, 6]], [0.9, 0.8], ["ribosome", "proteasome"], [1, 2])
    b = Picks([[7.0, 8, 9]], [0.7], ["proteasome"], [1])
    write_star(tmp_path / "a.star", a, tomogram="TS_01.mrc")
    write_star(tmp_path / "b.star", b, tomogram="TS_02.mrc")
    merge_star(tmp_path / "all.star", [tmp_path / "a.star", tmp_path / "b.star"])
    merged = read_star(tmp_path / "all.star")
    assert list(merged.class_name) == ["ribosome", "proteasome", "proteasome"]
    df = starfile.read(tmp_path / "all.star")["particles"]
    assert list(df["rlnMicrographName"]) == ["TS_01.mrc", "TS_01.mrc", "TS_02.mrc"]
    assert list(df["rlnClassNumber"]) == [1, 2, 2]


def test_merged_dynamo_table_skips_a_tomogram_without_picks(tmp_path):
    import dynamotable

    from cryosam.io.dynamo import merge_dynamo_tables

    write_dynamo_table(tmp_path / "a.tbl", _picks(), 10.0, "a.mrc")
    write_dynamo_table(tmp_path / "e.tbl", Picks.empty(), 10.0, "e.mrc")
    write_dynamo_table(tmp_path / "b.tbl", _picks(), 10.0, "b.mrc")
    merge_dynamo_tables(tmp_path / "m.tbl", [tmp_path / n for n in ("a.tbl", "e.tbl", "b.tbl")])
    df = dynamotable.read(str(tmp_path / "m.tbl"))
    assert list(df["tomo"]) == [1, 1, 3, 3] and list(df["tag"]) == [1, 2, 3, 4]
    assert (tmp_path / "m.doc").read_text().split() == ["1", "a.mrc", "3", "b.mrc"]
    merge_dynamo_tables(tmp_path / "n.tbl", [tmp_path / "e.tbl"])  # nothing at all: no error


def test_dynamo_table_columns(tmp_path):
    import dynamotable

    p = _picks()
    write_dynamo_table(tmp_path / "p.tbl", p, 10.0, "/data/TS_01.mrc")
    df = dynamotable.read(str(tmp_path / "p.tbl"))
    assert np.allclose(df[["x", "y", "z"]], p.zyx[:, ::-1])
    assert np.allclose(df[["tdrot", "tilt", "narot"]], relion_to_dynamo_angles(p.angles))
    assert list(df["tomo"]) == [1, 1] and np.allclose(df["cc"], p.score)
    assert (tmp_path / "p.doc").read_text().split() == ["1", "/data/TS_01.mrc"]
    with pytest.raises(CryosamError, match="already exists"):
        write_dynamo_table(tmp_path / "p.tbl", p, 10.0)


def test_copick_transforms_carry_the_rotation(tmp_path):
    p = _picks()
    write_copick_json(tmp_path / "p.json", p, 10.0)
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["trust_orientation"] is True
    T = np.array([pt["transformation_"] for pt in data["points"]])
    assert np.allclose(T[:, :3, :3], relion_euler_matrices(p.angles))
    assert np.allclose(T[:, :3, 3], 0.0)
    back = read_copick_json(tmp_path / "p.json", 10.0)
    assert np.allclose(relion_euler_matrices(back.angles), relion_euler_matrices(p.angles))
    plain = Picks(p.zyx, p.score, p.class_name, p.instance)
    write_copick_json(tmp_path / "q.json", plain, 10.0)
    data = json.loads((tmp_path / "q.json").read_text())
    assert data["trust_orientation"] is False
    assert np.allclose(data["points"][0]["transformation_"], np.eye(4))
    assert read_copick_json(tmp_path / "q.json", 10.0).angles is None


def test_pick_writes_angles_references_and_particle_files(tmp_path):
    """A pick's outputs: angles in picks.csv and the STAR file, the class reference in
    references/, a Dynamo table, and with --relion5 the import index under --tomo-name."""
    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    A = relion_euler_matrices([[0, 0, 0], [40, 70, -120], [-150, 100, 30], [75, 150, 160],
                               [10, 35, -60]])  # fmt: skip
    vol = -_scene(A, seed=1)  # dark protein, as a raw tomogram
    path = write_mrc(tmp_path / "TS_07.mrc", vol, voxel_size=10.0)
    out = tmp_path / "out"
    args = ["pick", str(path), "--point", "20,20,20:knob", "--diameter", "200", *FINE_ARGS,
            "--relion5", "--tomo-name", "{stem}_10.00Apx", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    picks = pd.read_csv(out / "picks.csv")
    assert len(picks) == len(CENTRES)
    for _, row in picks.iterrows():  # each pick turned as its particle was, within 15 degrees
        k = np.argmin(
            np.linalg.norm(np.asarray(CENTRES) - row[["z", "y", "x"]].to_numpy(float), axis=1)
        )
        got = relion_euler_matrices(row[["rot", "tilt", "psi"]].to_numpy(float))[0]
        assert np.degrees(Rotation.from_matrix(got.T @ A[k]).magnitude()) < 15.0
    star = starfile.read(out / "picks.star")["particles"]
    assert set(star["rlnTomoName"]) == {"TS_07_10.00Apx"}
    assert "rlnAngleTilt" in star
    idx = starfile.read(out / "relion5_import.star")
    assert list(idx["rlnTomoName"]) == ["TS_07_10.00Apx"]
    assert idx["rlnTomoImportParticleFile"][0] == str((out / "picks.star").resolve())
    assert (out / "references" / "knob.mrc").exists()
    assert (out / "references" / "knob_mask.mrc").exists()
    assert (out / "picks.tbl").exists() and (out / "picks.doc").exists()
    assert (out / "average.mrc").exists() and (out / "average.png").exists()
    cands = pd.read_csv(out / "candidates.csv")
    matched = cands[cands["status"] == "accepted"]
    assert len(matched) == len(CENTRES) - 1  # the prompt is no candidate
    assert (matched["average_correlation"] > 0.5).all(), matched
    assert cands.loc[cands["status"] != "accepted", "average_correlation"].isna().all()


def test_reference_map_puts_the_angles_in_its_frame(tmp_path):
    """With --reference MAP the angles are relative to the map, not to the clicked particle:
    each pick comes back turned as it was made from the map (here at twice the tomogram's
    voxel size, in a larger box), whichever particle was clicked."""
    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    A = relion_euler_matrices([[30, 40, 50], [40, 70, -120], [-150, 100, 30], [75, 150, 160],
                               [10, 35, -60]])  # fmt: skip
    path = write_mrc(tmp_path / "TS_08.mrc", -_scene(A, seed=2), voxel_size=10.0)
    big = np.zeros((41, 41, 41), np.float32)
    big[5:36, 5:36, 5:36] = _particle()
    from scipy import ndimage

    write_mrc(tmp_path / "map.mrc", ndimage.zoom(big, 0.5, order=1), voxel_size=20.0)
    out = tmp_path / "out"
    args = ["pick", str(path), "--point", "20,60,20:knob", "--diameter", "200", *FINE_ARGS,
            "--reference", f"{tmp_path / 'map.mrc'}:knob", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    picks = pd.read_csv(out / "picks.csv")
    assert len(picks) == len(CENTRES)
    for _, row in picks.iterrows():
        zyx = row[["z", "y", "x"]].to_numpy(float)
        k = np.argmin(np.linalg.norm(np.asarray(CENTRES) - zyx, axis=1))
        got = relion_euler_matrices(row[["rot", "tilt", "psi"]].to_numpy(float))[0]
        assert np.degrees(Rotation.from_matrix(got.T @ A[k]).magnitude()) < 15.0
    assert main([*args[:-2], "--reference", "nothere.mrc", "--out", str(tmp_path / "o2")]) == 2
    before = pd.read_csv(out / "picks.csv")
    assert main(["recut", str(out), "--min-score", "-1"]) == 0  # angles still in the map's frame
    after = pd.read_csv(out / "picks.csv")
    common = before.merge(after, on=["z", "y", "x"], suffixes=("", "_r"))
    assert len(common) >= len(CENTRES) - 1
    assert np.allclose(common[["rot", "tilt", "psi"]], common[["rot_r", "tilt_r", "psi_r"]])


def _c3_particle() -> np.ndarray:
    """A C3 particle: a body, three knobs about its z axis and one on top, bright."""
    g = np.indices((N,) * 3) - N // 2
    part = np.exp(-(g**2).sum(0) / (2 * 4.0**2))
    knobs = [(0, 7 * np.cos(t), 7 * np.sin(t)) for t in np.deg2rad([0, 120, 240])] + [(6, 0, 0)]
    for c in knobs:
        part += 0.8 * np.exp(-((g - np.reshape(c, (3, 1, 1, 1))) ** 2).sum(0) / (2 * 2.0**2))
    return part.astype(np.float32)


C3_TURNS = [[30, 40, 50], [40, 70, -120], [-150, 100, 30], [75, 150, 160], [10, 35, -60]]


def _c3_scene(tmp_path, name: str):
    """The C3 particle at ``CENTRES`` turned by ``C3_TURNS``; the tomogram (protein dark)
    written as ``name``, its RELION matrices returned."""
    from tests.conftest import write_mrc

    A = relion_euler_matrices(C3_TURNS)
    rng = np.random.default_rng(3)
    vol = rng.normal(0, 0.1, (72, 80, 80)).astype(np.float32)
    for c, a in zip(CENTRES, A):
        sl = tuple(slice(ci - N // 2, ci + N // 2 + 1) for ci in c)
        vol[sl] += rotate_box(_c3_particle(), (P @ a @ P).T)
    return write_mrc(tmp_path / name, -vol, voxel_size=10.0), A


def test_symmetry_gives_the_equivalent_nearest_the_maps_frame(tmp_path):
    """A C3 particle, its map given with --symmetry C3: each pick's rotation is one of the
    three equivalent to how it was made, the one nearest the map's frame, and the average is
    C3-symmetric."""
    from cryosam.cli.main import main
    from cryosam.method.orient import canonical, symmetry_group
    from tests.conftest import write_mrc

    path, A = _c3_scene(tmp_path, "TS_09.mrc")
    write_mrc(tmp_path / "map.mrc", _c3_particle(), voxel_size=10.0)
    out = tmp_path / "out"
    base = ["pick", str(path), "--point", "20,20,60:c3", "--diameter", "200", *FINE_ARGS, "--out"]
    assert (
        main([*base, str(out), "--reference", str(tmp_path / "map.mrc"), "--symmetry", "C3"]) == 0
    )
    ops = symmetry_group("C3")
    picks = pd.read_csv(out / "picks.csv")
    assert len(picks) == len(CENTRES)
    for _, row in picks.iterrows():
        k = np.argmin(
            np.linalg.norm(np.asarray(CENTRES) - row[["z", "y", "x"]].to_numpy(float), axis=1)
        )
        got = P @ relion_euler_matrices(row[["rot", "tilt", "psi"]].to_numpy(float))[0] @ P
        made = canonical(P @ A[k] @ P, ops)[0]  # the equivalent nearest the map's frame
        assert np.degrees(Rotation.from_matrix(got.T @ made).magnitude()) < 15.0
    import mrcfile

    avg = mrcfile.read(out / "average.mrc")
    turned = rotate_box(avg, ops[1])
    assert np.corrcoef(avg.ravel(), turned.ravel())[0, 1] > 0.99


def _centre_crop(a: np.ndarray, n: int) -> np.ndarray:
    lo = (a.shape[0] - n) // 2
    return a[lo : lo + n, lo : lo + n, lo : lo + n]


def _best_about_z(volume: np.ndarray, particle: np.ndarray) -> float:
    """The best correlation (in the smaller of the two boxes, high-passed: the knobs, not
    the body, decide) of ``volume`` with ``particle`` turned about its z axis (3° steps over
    a third of a turn)."""
    from scipy import ndimage

    n = min(volume.shape[0], particle.shape[0])
    box = _centre_crop(volume, n)
    box = (box - ndimage.gaussian_filter(box, 3.0)).ravel()
    best = -1.0
    for t in np.deg2rad(np.arange(0.0, 120.0, 3.0)):
        R = Rotation.from_rotvec([t, 0.0, 0.0]).as_matrix()  # about z: (z, y, x) axis 0
        turned = _centre_crop(rotate_box(particle, R), n)
        turned = turned - ndimage.gaussian_filter(turned, 3.0)
        best = max(best, np.corrcoef(box, turned.ravel())[0, 1])
    return best


def test_symmetry_from_a_click_finds_the_axis(tmp_path):
    """--symmetry C3 without a map: the axis is found in the picks' average and the frame
    turned to put it along z, top knob up: the average is the particle as it was made, up to
    a turn about z (tilted or upside down it matches worse), the written
    reference is in the same frame, and the picks' angles agree with each other up to C3."""
    import mrcfile

    from cryosam.cli.main import main
    from cryosam.method.orient import symmetry_group
    from cryosam.volume.binning import block_mean

    path, A = _c3_scene(tmp_path, "TS_10.mrc")
    out = tmp_path / "out"
    # the clicked particle lies upside down (tilt 150°): its axis points down in its frame
    args = ["pick", str(path), "--point", "20,60,60:c3", "--diameter", "200", *FINE_ARGS, "--out",
            str(out)]  # fmt: skip
    assert main([*args, "--symmetry", "C3"]) == 0
    avg = mrcfile.read(out / "average.mrc")
    assert _best_about_z(avg, _c3_particle()) > 0.93
    tilted = rotate_box(avg, Rotation.from_rotvec([0.0, 0.6, 0.0]).as_matrix())
    assert _best_about_z(tilted, _c3_particle()) < 0.8
    upside_down = rotate_box(avg, Rotation.from_rotvec([0.0, np.pi, 0.0]).as_matrix())
    assert _best_about_z(upside_down, _c3_particle()) < 0.92
    ref = mrcfile.read(out / "references" / "c3.mrc")
    b = (avg.shape[0] // ref.shape[0]) or 1
    binned = block_mean(_centre_crop(avg, ref.shape[0] * b), b)
    assert np.corrcoef(binned.ravel(), ref.ravel())[0, 1] > 0.8
    picks = pd.read_csv(out / "picks.csv")
    assert len(picks) == len(CENTRES)
    ops = symmetry_group("C3")
    order = [
        int(np.argmin(np.linalg.norm(np.asarray(CENTRES) - z, axis=1)))
        for z in picks[["z", "y", "x"]].to_numpy(float)
    ]
    got = [P @ relion_euler_matrices(r)[0] @ P for r in picks[["rot", "tilt", "psi"]].to_numpy()]
    made = [P @ A[k] @ P for k in order]
    for i in range(1, len(got)):  # relative turns as made, up to the symmetry
        errs = [
            np.degrees(
                Rotation.from_matrix(got[0] @ S @ got[i].T @ made[i] @ made[0].T).magnitude()
            )
            for S in ops
        ]
        assert min(errs) < 15.0, errs


def test_batch_reference_map_orients_every_tomogram_in_its_frame(tmp_path):
    """cryosam batch --reference-map: the tomogram without a click (searched with the pooled
    query) gets its angles in the map's frame too."""
    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    A = relion_euler_matrices([[30, 40, 50], [40, 70, -120], [-150, 100, 30], [75, 150, 160],
                               [10, 35, -60]])  # fmt: skip
    (tmp_path / "tomos").mkdir()
    for k in (1, 2):
        write_mrc(tmp_path / "tomos" / f"t{k}.mrc", -_scene(A, seed=10 + k), voxel_size=10.0)
    write_mrc(tmp_path / "map.mrc", _particle(), voxel_size=10.0)
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "tomos"), "--point", "20,60,20:knob", *FINE_ARGS,
            "--reference", "t1", "--diameter", "200", "--reference-map",
            str(tmp_path / "map.mrc"), "--workers", "0", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    for k in (1, 2):
        picks = pd.read_csv(out / f"t{k}" / "picks.csv")
        assert len(picks) >= len(CENTRES) - 1
        for _, row in picks.iterrows():
            zyx = row[["z", "y", "x"]].to_numpy(float)
            i = np.argmin(np.linalg.norm(np.asarray(CENTRES) - zyx, axis=1))
            got = relion_euler_matrices(row[["rot", "tilt", "psi"]].to_numpy(float))[0]
            assert np.degrees(Rotation.from_matrix(got.T @ A[i]).magnitude()) < 15.0, k


def test_a_second_round_against_the_average_aligns_better():
    """``orient_rounds``: twelve particles in heavy noise, oriented against one of them, then
    again against their aligned average (a cleaner reference in the same frame): the angles
    agree better with how they were made (each against the first's, which made the
    reference)."""
    from cryosam.method.orient import average_reference

    rng = np.random.default_rng(7)
    A = Rotation.random(12, random_state=3).as_matrix()
    centres = [(z, y, x) for z in (20, 52) for y in (20, 60, 100) for x in (20, 60)]
    vol = rng.normal(0, 0.5, (72, 120, 80)).astype(np.float32)
    for c, a in zip(centres, A):
        sl = tuple(slice(ci - N // 2, ci + N // 2 + 1) for ci in c)
        vol[sl] += rotate_box(_particle(), a.T)
    ref = ShapeVerifier(vol, 20, FINE).reference([centres[0]])

    def errors(M):
        G = np.transpose(M, (0, 2, 1)) @ A  # one rotation for every pick when all are right
        return np.degrees([Rotation.from_matrix(g @ G[0].T).magnitude() for g in G])

    M, _ = orient(vol, centres, ref, 20, FINE)
    mean = average(vol, centres, M, 2 * int(np.ceil(0.6 * 20)) + 1)
    again = average_reference(mean, ref, vol, 20, FINE)
    assert again.template.shape == ref.template.shape and again.bin == ref.bin
    M2, _ = orient(vol, centres, again, 20, FINE)
    first, second = errors(M), errors(M2)
    assert np.median(second) < np.median(first) and second.max() < first.max() - 5.0, (
        first,
        second,
    )


def test_a_map_off_its_symmetry_frame_is_told_apart():
    """A map given with --symmetry must have its n-fold axis along z: the C3 particle's knobs
    do, turned a quarter turn about y they do not (the pick then warns)."""
    from cryosam.method.orient import symmetry_agreement, symmetry_group
    from cryosam.method.pick import MAP_SYMMETRY_MIN

    ops = symmetry_group("C3")
    g = np.indices((N,) * 3) - N // 2
    part = _c3_particle() - np.exp(-(g**2).sum(0) / (2 * 4.0**2)).astype(np.float32)
    assert symmetry_agreement(part, ops) > 0.9
    tipped = rotate_box(part, Rotation.from_rotvec([0.0, np.pi / 2, 0.0]).as_matrix())
    assert symmetry_agreement(tipped, ops) < MAP_SYMMETRY_MIN
    assert symmetry_agreement(part, symmetry_group("C1")) == 1.0


def test_the_second_round_averages_the_best_picks_not_the_look_alikes():
    """``orient_average_best``: half the picks are the particle's mirror image (a look-alike
    no rotation aligns). Averaged in, they blur the second round's reference and some true
    particles come out flipped; averaging the best-correlating half keeps every true
    particle within a few degrees of the others."""
    from types import SimpleNamespace

    from cryosam.method.pick import _oriented

    centres = np.array(
        [(z, y, x) for z in (20, 52) for y in (20, 60, 100) for x in (20, 60, 100)][:16], float
    )
    true = np.arange(0, 16, 2)

    def worst_error(seed: int, fraction: float) -> float:
        rng = np.random.default_rng(seed)
        A = Rotation.random(16, random_state=seed + 3).as_matrix()
        vol = rng.normal(0, 0.7, (72, 120, 120)).astype(np.float32)
        for k, (c, a) in enumerate(zip(centres.astype(int), A)):
            part = _particle() if k % 2 == 0 else _particle()[:, :, ::-1]
            sl = tuple(slice(ci - N // 2, ci + N // 2 + 1) for ci in c)
            vol[sl] += rotate_box(part, a.T)
        config = Config(verify_bin_px=20.0, orient_average_best=fraction)
        ref = ShapeVerifier(vol, 20, config).reference([centres[0]])
        M = _oriented(SimpleNamespace(prepared=vol, config=config), centres, ref, 20.0)[0]
        G = np.transpose(M[true], (0, 2, 1)) @ A[true]  # one rotation when all are right
        return max(np.degrees(Rotation.from_matrix(g @ G[0].T).magnitude()) for g in G)

    for seed in (1, 4):
        assert worst_error(seed, 1.0) > 45.0  # the blurred average flips some
        assert worst_error(seed, 0.5) < 30.0
