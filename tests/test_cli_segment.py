"""`cryosam segment` end to end, with the classical and a tiny saved SAM model."""

import json

import pytest

from cryosam.cli.main import main
from cryosam.io.tomogram import read_tomogram
from cryosam.simulate import write_simulation
from tests.conftest import small_sim


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    sim = small_sim((48, 96, 96), {"ribosome": 0.04, "ball": 0.01}, seed=21)
    write_simulation(sim, out)
    ribos = [o for o in sim.particles if o["class"] == "ribosome"]
    return out, ribos, sim


def pt(o, cls=None):
    s = f"{o['z']:g},{o['y']:g},{o['x']:g}"
    return s + (f":{cls}" if cls else "")


def test_segment_classical_writes_instances_in_prompt_order(sim_dir, tmp_path, capsys):
    sim_path, ribos, sim = sim_dir
    out = tmp_path / "seg"
    tomo = str(sim_path / "tomogram.mrc")
    args = [
        "segment",
        tomo,
        "--point",
        pt(ribos[0], "ribosome"),
        "--point",
        pt(ribos[1], "ribosome"),
        "--diameter",
        "290",
        "--out",
        str(out),
    ]
    assert main(args) == 0, capsys.readouterr().err
    labels = read_tomogram(out / "masks" / "instances.mrc")
    assert labels.shape == sim.tomogram.shape and labels.voxel_size == pytest.approx(10)
    for k, o in enumerate(ribos[:2], start=1):
        truth = sim.scene.instances == o["instance"]
        mine = labels.data == k
        assert (mine & truth).sum() > 0.5 * mine.sum() > 0
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "segment" and len(run["input"]["sha256"]) == 64
    assert run["config"]["tau_iou"] == 0.5 and run["input"]["protein_dark_inverted"] is True
    assert run["input"]["spectrum_balanced"] is False
    assert (out / "preview.png").read_bytes()[:4] == b"\x89PNG"
    assert "ribosome" in (out / "instances.csv").read_text()
    # rerun without --overwrite is refused before any work
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    # asked to balance the spectrum, the record says it was
    assert main([*args, "--overwrite", "--set", "balance_spectrum=yes"]) == 0
    assert json.loads((out / "run.json").read_text())["input"]["spectrum_balanced"] is True


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--point", "100,5,5"], "outside the volume"),
        (["--point", "5,5,5", "--diameter", "5000"], "not smaller than the volume"),
        (["--point", "5,5,5", "--diameter", "0"], "positive"),
        ([], "no prompts"),
        (["--negative", "5,5,5"], "only negative"),
        (["--point", "5,5"], "expected z,y,x"),
    ],
)
def test_segment_bad_input_writes_nothing(sim_dir, tmp_path, capsys, extra, match):
    sim_path, _, _ = sim_dir
    out = tmp_path / "bad"
    args = ["segment", str(sim_path / "tomogram.mrc"), "--out", str(out)] + extra
    if "--diameter" not in extra:
        args += ["--diameter", "250"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not out.exists()


def test_segment_with_a_tiny_saved_sam_model(sim_dir, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from cryosam.models.sam import tiny_sam_config

    model_dir = tmp_path / "tiny-sam"
    torch.manual_seed(0)
    transformers.SamModel(tiny_sam_config(image_size=128)).save_pretrained(model_dir)
    sim_path, ribos, _ = sim_dir
    out = tmp_path / "sam"
    args = [
        "segment",
        str(sim_path / "tomogram.mrc"),
        "--point",
        pt(ribos[0]),
        "--diameter",
        "290",
        "--segmenter",
        "sam",
        "--model",
        str(model_dir),
        "--device",
        "cpu",
        "--axes",
        "z",
        "--out",
        str(out),
    ]
    # the tiny model is seeded: the same run every time, and it must finish
    assert main(args) == 0, capsys.readouterr().err
    assert read_tomogram(out / "masks" / "instances.mrc").shape == (48, 96, 96)
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["segmenter"] == "sam" and run["config"]["model"] == str(model_dir)
    # a folder that is not a model is refused clearly
    bad = args.copy()
    bad[bad.index(str(model_dir))] = str(tmp_path)
    bad[-1] = str(tmp_path / "o3")
    assert main(bad) == 2
    assert "config.json" in capsys.readouterr().err
