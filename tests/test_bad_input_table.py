"""Every bad input of `cryosam pick` gets one line, exit status 2 and no output at all."""

import json
import os

import mrcfile
import numpy as np
import pytest

from cryosam.cli.main import main
from tests.conftest import write_mrc


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(24, 40, 40)).astype(np.float32)
    good = write_mrc(d / "good.mrc", vol, voxel_size=10.0)
    write_mrc(d / "unknown_vs.mrc", vol, voxel_size=1.0)
    write_mrc(d / "zero_vs.mrc", vol, voxel_size=0.0)
    nan = vol.copy()
    nan[1, 2, 3] = np.nan
    write_mrc(d / "nan.mrc", nan)
    write_mrc(d / "constant.mrc", np.ones_like(vol))
    write_mrc(d / "tiny.mrc", vol[:4, :4, :4])
    with mrcfile.new(d / "complex.mrc") as m:
        m.set_data(np.zeros((2, 3, 4), np.complex64))
    (d / "text.mrc").write_text("not a tomogram\n" * 100)
    (d / "truncated.mrc").write_bytes(good.read_bytes()[:3000])
    mism = write_mrc(d / "mismatch.mrc", vol)
    with mrcfile.open(mism, "r+", permissive=True) as m:
        m.header.nz = 48
    under = write_mrc(d / "understated.mrc", vol)
    with mrcfile.open(under, "r+", permissive=True) as m:
        m.header.nz = 10  # 24 slices in the file
    (d / "empty.csv").write_text("z,y,x\n")
    (d / "badcols.csv").write_text("a,b,c\n1,2,3\n")
    (d / "words.csv").write_text("z,y,x\n1,2,three\n")
    (d / "nocoords.star").write_text("data_\nloop_\n_rlnImageName #1\na.mrc\n")
    (d / "broken.json").write_text("{not json")
    (d / "nopoints.json").write_text(json.dumps({"pickable_object_name": "x"}))
    (d / "afile").write_text("I am a file")
    (d / "mixed.star").write_text(
        "data_particles\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnCoordinateZ #3\n"
        "_rlnCenteredCoordinateXAngst #4\n_rlnCenteredCoordinateYAngst #5\n"
        "_rlnCenteredCoordinateZAngst #6\n10 10 10 0 0 0\n"
    )
    (d / "angstrom.csv").write_text("z,y,x\n120,200,200\n")
    (d / "extra_field.csv").write_text("z,y,x\n5,12,20,20\n")  # pandas: 5 -> the index
    (d / "trailing_comma.csv").write_text("z,y,x\n12,20,20,\n")
    (d / "other_tomo.csv").write_text("z,y,x,tomogram\n12,20,20,TS_99.mrc\n")
    return d


P = ["--point", "12,20,20"]
CASES = [
    ("missing file", ["missing.mrc", *P], "no such file"),
    ("not an MRC", ["text.mrc", *P], "not an MRC"),
    ("truncated MRC", ["truncated.mrc", *P], "truncated"),
    ("header/data mismatch", ["mismatch.mrc", *P], "truncated"),
    ("header understates nz", ["understated.mrc", *P], "bytes more"),
    ("complex mode", ["complex.mrc", *P], "complex"),
    ("NaN data", ["nan.mrc", *P], "NaN"),
    ("voxel size 1 in header", ["unknown_vs.mrc", *P], "--voxel-size"),
    ("voxel size 0 in header", ["zero_vs.mrc", *P], "--voxel-size"),
    ("--voxel-size 0", ["good.mrc", *P, "--voxel-size", "0"], "positive"),
    ("constant volume", ["constant.mrc", *P], "constant"),
    ("volume smaller than a particle", ["tiny.mrc", "--point", "1,1,1"], "not smaller"),
    ("point outside", ["good.mrc", "--point", "99,1,1"], "outside the volume"),
    ("malformed point", ["good.mrc", "--point", "1,2"], "expected z,y,x"),
    ("no prompts", ["good.mrc"], "no prompts"),
    ("only negatives", ["good.mrc", "--negative", "1,1,1"], "only negative"),
    ("empty CSV", ["good.mrc", "--prompts", "empty.csv"], "no rows"),
    ("CSV without z,y,x", ["good.mrc", "--prompts", "badcols.csv"], "lacks column"),
    ("CSV with words", ["good.mrc", "--prompts", "words.csv"], "line 2"),
    ("STAR without coordinates", ["good.mrc", "--prompts", "nocoords.star"], "rlnCoordinateX"),
    ("broken JSON", ["good.mrc", "--prompts", "broken.json"], "not valid JSON"),
    ("JSON without points", ["good.mrc", "--prompts", "nopoints.json"], "points"),
    ("diameter <= 0", ["good.mrc", *P, "--diameter", "-3"], "positive"),
    ("absurd diameter", ["good.mrc", *P, "--diameter", "9000"], "not smaller"),
    ("output is a file", ["good.mrc", *P, "--out", "afile"], "not a folder"),
    ("STAR with two disagreeing dialects", ["good.mrc", "--prompts", "mixed.star"], "disagree"),
    ("CSV in Å instead of voxels", ["good.mrc", "--prompts", "angstrom.csv"], "voxel indices"),
    ("CSV row with a field more", ["good.mrc", "--prompts", "extra_field.csv"], "line 2: 4 fields"),
    ("CSV row with a trailing comma", ["good.mrc", "--prompts", "trailing_comma.csv"], "line 2"),
    ("rows all name another tomogram", ["good.mrc", "--prompts", "other_tomo.csv"], "TS_99"),
    ("point on the far edge", ["good.mrc", "--point", "23.5,39.5,39.5"], "outside the volume"),
]


@pytest.mark.parametrize("name,args,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input(files, tmp_path, capsys, monkeypatch, name, args, match):
    monkeypatch.chdir(files)
    if "--diameter" not in args:
        args = [*args, "--diameter", "100"]
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    before = sorted(os.listdir(files))
    code = main(["pick", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (name, err)
    assert len(err) == 1 and err[0].startswith("cryosam: error:") and match in err[0], err
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(files)) == before


def test_unwritable_output_folder(files, tmp_path, capsys, monkeypatch):
    # root may write anywhere, so the permission check itself is made to say no
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
    args = ["pick", str(files / "good.mrc"), *P, "--diameter", "100", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "permission denied" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_run_that_cannot_fit_in_memory_is_refused(files, tmp_path, capsys, monkeypatch):
    import cryosam.app.resources as resources

    monkeypatch.setattr(resources, "available_bytes", lambda: 1024)  # a 1 KB machine
    args = ["pick", str(files / "good.mrc"), *P, "--diameter", "100", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "bin or crop" in err
    assert not (tmp_path / "x").exists()
