"""copick projects: prompts read from a project, picks and segmentations written back.

Needs copick (`pip install -e ".[test,copick]"`; CI runs this file in its own venv because
copick pins zarr 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

copick = pytest.importorskip("copick")

from cryosam.cli.main import main  # noqa: E402
from cryosam.eval.metrics import score_picks  # noqa: E402
from tests.conftest import small_sim  # noqa: E402


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root_dir = tmp_path_factory.mktemp("copick")
    cfg = {
        "config_type": "filesystem",
        "name": "test",
        "description": "",
        "version": "0.5.0",
        "pickable_objects": [
            {
                "name": "ribosome",
                "is_particle": True,
                "label": 3,
                "color": [0, 255, 0, 255],
                "radius": 145.0,
            },
            {"name": "membrane", "is_particle": False, "label": 1, "color": [255, 0, 0, 255]},
        ],
        "overlay_root": f"local://{root_dir}/overlay",
        "static_root": f"local://{root_dir}/static",
        "overlay_fs_args": {"auto_mkdir": True},
        "static_fs_args": {"auto_mkdir": True},
    }
    path = root_dir / "config.json"
    path.write_text(json.dumps(cfg))
    root = copick.from_file(str(path))
    sims = {}
    for name, seed in (("TS_01", 61), ("TS_02", 62)):
        sim = small_sim((48, 112, 112), {"ribosome": 0.05, "ball": 0.01}, seed=seed)
        run = root.new_run(name)
        run.new_voxel_spacing(10.0).new_tomogram("wbp").from_numpy(sim.tomogram)
        sims[name] = sim
    ribos = sims["TS_01"].centres("ribosome")
    c = ribos[np.argmin(np.linalg.norm(ribos - np.array([24, 56, 56]), axis=1))]
    picks = root.get_run("TS_01").new_picks("ribosome", session_id="0", user_id="alice")
    picks.from_numpy(np.array([c[::-1] * 10.0]))  # copick: x, y, z in Å
    return path, sims


def _read(path, run, user="cryosam", session="0"):
    root = copick.from_file(str(path))
    r = root.get_run(run)
    picks = r.get_picks(object_name="ribosome", user_id=user, session_id=session)
    segs = r.get_segmentations(user_id=user, session_id=session, name="cryosam")
    return picks, segs


def test_copick_project_prompts_in_picks_out(project, capsys):
    path, sims = project
    argv = ["copick", str(path), "--prompt-object", "ribosome:alice", "--diameter", "290"]
    assert main(argv) == 0
    for name, sim in sims.items():
        picks, segs = _read(path, name)
        assert len(picks) == 1 and len(segs) == 1
        xyz, transforms = picks[0].numpy()
        rot = np.asarray(transforms)[:, :3, :3]  # each pick's orientation, trusted
        assert picks[0].trust_orientation and not np.allclose(rot, np.eye(3))
        assert np.allclose(rot @ np.transpose(rot, (0, 2, 1)), np.eye(3), atol=1e-6)
        s = score_picks(np.asarray(xyz)[:, ::-1] / 10.0, sim.centres("ribosome"), 14.0)
        assert s.f1 > 0.7, (name, s.as_row())  # TS_02 had no prompt: the pooled query
        assert 0.0 < picks[0].scores().min() <= picks[0].scores().max() <= 1.0  # correlations
        seg = segs[0]
        assert seg.is_multilabel
        labels = np.asarray(seg.numpy())
        assert labels.shape == sim.tomogram.shape and set(np.unique(labels)) == {0, 3}
    # nothing is replaced without --overwrite
    assert main(argv) == 2
    assert "already has ribosome picks" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0


def test_copick_errors_are_one_line(project, tmp_path, capsys):
    path, _ = project
    assert main(["copick", str(tmp_path / "none.json"), "-p", "ribosome", "-d", "290"]) == 2
    assert "no such copick config" in capsys.readouterr().err
    err = ["--session-id", "errors"]
    assert main(["copick", str(path), "-p", "ribosome:nobody", "-d", "290", *err]) == 2
    assert "no run has picks" in capsys.readouterr().err
    assert (
        main(
            [
                "copick",
                str(path),
                "-p",
                "ribosome:alice",
                "-d",
                "290",
                *err,
                "--tomo-type",
                "denoised",
            ]
        )
        == 2
    )
    assert "no run has a 'denoised' tomogram" in capsys.readouterr().err
    # cryosam's own earlier picks (cryosam/0) are never taken as prompts
    assert main(["copick", str(path), "-p", "ribosome:cryosam:0", "-d", "290", "--overwrite"]) == 2
    assert "no run has picks" in capsys.readouterr().err


def test_copick_reference_map_and_symmetry_reach_every_run(project, tmp_path, monkeypatch):
    import cryosam.app.copick as app_copick
    from tests.conftest import write_mrc

    path, _ = project
    g = np.indices((24, 24, 24)) - 11.5
    ball = (np.sum(g**2, axis=0) <= 12.0**2).astype(np.float32)
    map_path = write_mrc(tmp_path / "ribo_map.mrc", ball, voxel_size=12.0)
    seen = []
    real = app_copick.pick

    def spy(*args, **kwargs):
        seen.append((kwargs["reference_maps"], kwargs["symmetry"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(app_copick, "pick", spy)
    argv = ["copick", str(path), "-p", "ribosome:alice", "-d", "290", "--session-id", "maps",
            "--reference-map", f"{map_path}:ribosome", "--symmetry", "ribosome=C2"]  # fmt: skip
    assert main(argv) == 0
    assert len(seen) == 2  # both runs, the prompted one and the one searched with the pool
    for maps, groups in seen:
        assert maps["ribosome"].voxel_size == pytest.approx(12.0)
        assert maps["ribosome"].data.shape == (24, 24, 24) and groups == {"ribosome": "C2"}
    assert main([*argv[:-2], "--symmetry", "ribosome=X7"]) == 2  # not a point group


def test_copick_cli_plugin_forwards_to_cryosam(project):
    from click.testing import CliRunner

    from cryosam.cli.copick_plugin import cryosam_command

    path, _ = project
    args = [str(path), "-p", "ribosome:alice", "-d", "290", "--session-id", "7", "--workers", "2"]
    result = CliRunner().invoke(cryosam_command, args)  # runs on a local dask cluster
    assert result.exit_code == 0, result.output
    picks, _ = _read(path, "TS_02", session="7")
    assert len(picks) == 1 and len(picks[0].numpy()[0]) > 5


def test_our_particle_files_read_by_copicks_own_converters(tmp_path):
    """copick's readers of RELION and Dynamo particle files give back the positions and the
    rotations cryosam meant (RELION's Euler_angles2matrix of the angles)."""
    from copick.util import formats

    from cryosam.io.coords import relion_euler_matrices
    from cryosam.io.dynamo import write_dynamo_table
    from cryosam.io.picks import Picks
    from cryosam.io.star import write_star

    angles = np.array([[10.0, 20.0, 30.0], [-100.0, 120.0, 45.0], [170.0, 80.0, -60.0]])
    zyx = np.array([[5.0, 6.0, 7.0], [10.0, 11.0, 12.5], [20.0, 3.0, 40.0]])
    p = Picks(zyx, [0.9, 0.8, 0.7], ["ribosome"] * 3, [1, 2, 3], angles, "TS_01.mrc")
    write_dynamo_table(tmp_path / "p.tbl", p, 10.0)
    pos, eul, shifts, _ = formats.read_dynamo_table(str(tmp_path / "p.tbl"))
    points, transforms = formats.dynamo_to_copick_transform(pos, eul, shifts, 10.0)
    assert np.allclose(points + transforms[:, :3, 3], zyx[:, ::-1] * 10.0)
    assert np.allclose(transforms[:, :3, :3], relion_euler_matrices(angles))
    relion = pytest.importorskip("copick.util.relion")
    if not hasattr(relion, "relion_rows_to_poses"):
        pytest.skip("this copick has no relion_rows_to_poses")
    write_star(tmp_path / "p.star", p, "relion5", (30, 40, 50), 10.0, "TS_01.mrc")
    rotations, offsets = relion.relion_rows_to_poses(
        formats.read_star_particles(str(tmp_path / "p.star"))
    )
    assert np.allclose(rotations, relion_euler_matrices(angles)) and np.allclose(offsets, 0.0)


def test_copick_from_a_map_alone_picks_every_run(tmp_path):
    """No --prompt-object: the map names its object and seeds every run (no picks in the
    project at all); the picks go back as that object."""
    from tests.conftest import write_mrc
    from tests.test_orient import _particle
    from tests.test_seeds import KNOBS, _near, _scene

    cfg = {
        "config_type": "filesystem", "name": "maps", "description": "", "version": "0.5.0",
        "pickable_objects": [{"name": "knob", "is_particle": True, "label": 2,
                              "color": [0, 255, 0, 255], "radius": 90.0}],
        "overlay_root": f"local://{tmp_path}/overlay", "static_root": f"local://{tmp_path}/static",
        "overlay_fs_args": {"auto_mkdir": True}, "static_fs_args": {"auto_mkdir": True},
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    root = copick.from_file(str(path))
    for name, seed in (("TS_01", 0), ("TS_02", 1)):
        root.new_run(name).new_voxel_spacing(10.0).new_tomogram("wbp").from_numpy(_scene(seed))
    m = write_mrc(tmp_path / "map.mrc", _particle(), voxel_size=10.0)
    assert main(["copick", str(path), "--reference-map", f"{m}:knob"]) == 0
    root = copick.from_file(str(path))
    for name in ("TS_01", "TS_02"):
        (picks,) = root.get_run(name).get_picks(object_name="knob", user_id="cryosam")
        pts, _ = picks.numpy()
        assert _near(KNOBS, pts[:, ::-1] / 10.0).all()
    # a map naming no object, or an object the project lacks: one line, exit 2
    assert main(["copick", str(path), "--reference-map", str(m), "--overwrite"]) == 2
    assert main(["copick", str(path), "--reference-map", f"{m}:ribo", "--overwrite"]) == 2
