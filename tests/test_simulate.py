import json

import numpy as np
import pytest

from cryosam.cli.main import main
from cryosam.errors import CryosamError
from cryosam.io.picks import read_picks_csv
from cryosam.io.tomogram import read_tomogram
from cryosam.simulate import Imaging, SimulationConfig, simulate
from cryosam.simulate.species import BUILDERS, template
from cryosam.volume.contrast import protein_is_dark

SMALL = dict(shape=(48, 96, 96), voxel_size=10.0)


@pytest.fixture(scope="module")
def sim():
    return simulate(SimulationConfig(**SMALL, seed=5))


def test_species_are_distinct_and_sized():
    sizes = {n: template(n, 10.0).diameter_angst for n in BUILDERS}
    assert 240 <= sizes["ribosome"] <= 320  # ~25 nm complex
    assert 100 <= sizes["ball"] <= 150  # ~11 nm globule
    # the barrel and its distractor have similar size but different shapes
    assert abs(sizes["proteasome"] - sizes["double_ring"]) < 0.15 * sizes["proteasome"]
    barrel, rings = template("proteasome", 10.0), template("double_ring", 10.0)
    assert barrel.envelope.shape == rings.envelope.shape
    assert (barrel.envelope ^ rings.envelope).sum() > 0.3 * barrel.envelope.sum()
    # the barrel is hollow: its centre voxel is outside the envelope
    c = np.asarray(barrel.envelope.shape) // 2
    assert not barrel.envelope[tuple(c)]
    assert template("ball", 10.0).envelope[
        tuple(np.asarray(template("ball", 10.0).envelope.shape) // 2)
    ]


def test_same_seed_same_tomogram_and_different_seed_differs(sim):
    again = simulate(SimulationConfig(**SMALL, seed=5))
    np.testing.assert_array_equal(again.tomogram, sim.tomogram)
    np.testing.assert_array_equal(again.scene.labels, sim.scene.labels)
    other = simulate(SimulationConfig(**SMALL, seed=6))
    assert not np.array_equal(other.scene.labels, sim.scene.labels)


def test_truth_is_consistent(sim):
    scene = sim.scene
    assert sim.tomogram.shape == scene.labels.shape == scene.instances.shape == SMALL["shape"]
    assert sim.tomogram.dtype == np.float32
    assert abs(float(sim.tomogram.mean())) < 1e-3 and abs(float(sim.tomogram.std()) - 1) < 1e-3
    # each solid particle's centre voxel lies in its own instance; hollow ones (barrel,
    # rings, cage) have their centre in the lumen, and the instance surrounds it
    hollow = ("proteasome", "double_ring", "cage")
    for o in sim.particles:
        idx = tuple(int(o[k]) for k in "zyx")
        assert float(o["z"]).is_integer()  # recorded where the box centre landed
        if o["class"] not in hollow:
            assert scene.instances[idx] == o["instance"], o
        else:
            assert scene.instances[idx] == 0
            near = scene.instances[tuple(slice(max(i - 5, 0), i + 6) for i in idx)]
            assert (near == o["instance"]).any()
    # labels and instances agree on which voxels are occupied
    np.testing.assert_array_equal(scene.labels > 0, scene.instances > 0)
    # no overlaps: every instance is one class
    for inst in np.unique(scene.instances)[1:20]:
        assert len(np.unique(scene.labels[scene.instances == inst])) == 1
    assert 0.05 < sim.info["envelope_fraction"] < 0.2
    assert sim.info["tomogram_snr"] == pytest.approx(0.25, rel=0.05)


def test_protein_is_dark_like_a_raw_tomogram(sim):
    assert protein_is_dark(sim.tomogram, 20.0)[0]
    # and darker inside ribosome envelopes than in the ice
    rib = sim.scene.labels == sim.scene.class_ids["ribosome"]
    assert sim.tomogram[rib].mean() < sim.tomogram[sim.scene.labels == 0].mean() - 0.2


def test_snr_and_dose_change_the_noise():
    clean = simulate(SimulationConfig(**SMALL, seed=1, imaging=Imaging(snr=5.0)))
    noisy = simulate(SimulationConfig(**SMALL, seed=1, imaging=Imaging(snr=0.1)))
    dense = clean.scene.density
    corr = [np.corrcoef(-s.tomogram.ravel(), dense.ravel())[0, 1] for s in (clean, noisy)]
    assert corr[0] > corr[1] + 0.1
    dosed = simulate(SimulationConfig(**SMALL, seed=1, imaging=Imaging(snr=None, dose=100.0)))
    assert np.isfinite(dosed.tomogram).all() and dosed.info["tomogram_snr"] > 0


def test_crowded_preset_reaches_high_fraction_with_lookalikes():
    s = simulate(SimulationConfig(shape=(64, 128, 128), preset="crowded", seed=2))
    assert s.info["envelope_fraction"] > 0.13
    for name in ("lsu", "dimer_small", "dimer_large", "cage", "rod", "double_ring"):
        assert s.info["placed"][name] > 0


def test_bad_configs():
    with pytest.raises(CryosamError, match="preset"):
        SimulationConfig(preset="nope")
    with pytest.raises(CryosamError, match="species"):
        SimulationConfig(fractions={"unicorn": 0.1})
    with pytest.raises(CryosamError, match="40 %"):
        SimulationConfig(fractions={"ribosome": 0.5})
    with pytest.raises(CryosamError, match="SNR"):
        SimulationConfig(imaging=Imaging(snr=0))


def test_cli_simulate_writes_everything_then_evaluate_scores_truth(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--shape", "40,80,80", "--out", str(out), "--seed", "3"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "placed:" in stdout and "preview:" in stdout
    for name in (
        "tomogram.mrc",
        "labels.mrc",
        "instances.mrc",
        "density.mrc",
        "particles.csv",
        "truth.json",
        "preview.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tomo = read_tomogram(out / "tomogram.mrc")
    assert tomo.voxel_size == pytest.approx(10.0) and tomo.shape == (40, 80, 80)
    truth = json.loads((out / "truth.json").read_text())
    assert truth["config"]["seed"] == 3 and "ribosome" in truth["diameters_angst"]
    parts = read_picks_csv(out / "particles.csv")
    # every placed particle is a row (membrane proteins come on top of the placed counts)
    n_membrane_proteins = int((parts.class_name == "membrane_protein").sum())
    assert len(parts) == sum(truth["placed"].values()) + n_membrane_proteins > 0
    # existing outputs are kept unless --overwrite
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    # the truth scored against itself is perfect
    assert main(["evaluate", str(out / "particles.csv"), "--truth", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| ribosome" in table and "1.000" in table
    # jittered picks: within the radius still match, far ones do not
    shifted = parts.zyx + np.array([0, 0, 40.0])
    from cryosam.io.picks import Picks, write_picks_csv

    write_picks_csv(tmp_path / "far.csv", Picks(shifted, class_name=parts.class_name))
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "far.csv"),
                "--truth",
                str(out),
                "--only",
                "ribosome",
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    scores = json.loads((tmp_path / "s.json").read_text())["picks"][0]
    assert scores["class"] == "ribosome" and scores["recall"] < 0.5


def test_cli_simulate_refuses_a_volume_too_small_for_any_particle(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["simulate", "--shape", "8,8,8", "--out", str(out)]) == 2
    assert "nothing fits" in capsys.readouterr().err
    assert not out.exists()


def test_simulate_with_density_maps_as_species(tmp_path):
    """``--templates DIR``: each map (any voxel size) is a species named after its file, at
    its own size, centred on its centre of mass; the truth lists it; an empty folder is
    refused."""
    from cryosam.simulate.species import map_template
    from tests.conftest import write_mrc

    maps = tmp_path / "maps"
    maps.mkdir()
    g = np.indices((48, 48, 48)) - np.array([20.0, 24.0, 26.0])[:, None, None, None]
    rod = (((g / np.array([16.0, 8.0, 8.0])[:, None, None, None]) ** 2).sum(0) <= 1.0) * 3.0
    write_mrc(maps / "rod.mrc", rod.astype(np.float32) + 0.5, voxel_size=5.0)  # 160 x 80 Å
    tpl = map_template("rod", rod + 0.5, 5.0, 10.0)
    assert 150.0 < tpl.diameter_angst < 200.0  # its long axis, at the new sampling
    centre = (np.asarray(tpl.density.shape) - 1) / 2.0
    assert np.allclose(np.argwhere(tpl.envelope).mean(0), centre, atol=0.6)  # centred
    assert np.median(tpl.density[tpl.envelope]) == pytest.approx(1.0, rel=0.3)  # interior ~1
    out = tmp_path / "sim"
    argv = ["simulate", "--templates", str(maps), "--shape", "40,96,96", "--out", str(out)]
    assert main([*argv, "--species", "rod=0.03", "--snr", "1"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["placed"]["rod"] > 3 and list(truth["diameters_angst"]) == ["rod"]
    rows = [line.split(",") for line in (out / "particles.csv").read_text().splitlines()[1:]]
    density = read_tomogram(out / "density.mrc").data
    for z, y, x in (np.array([r[:3] for r in rows], float)).astype(int):
        assert density[z, y, x] > 0.5  # a rod at each listed centre
    empty = tmp_path / "none"
    empty.mkdir()
    assert main(["simulate", "--templates", str(empty), "--out", str(tmp_path / "o")]) == 2
