"""Membranes and filaments: `--extended` for segment and pick."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryosam.cli.main import main
from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.method.extended import choose_structure, segment_extended
from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation
from cryosam.volume.prepare import standardise


@pytest.fixture(scope="module")
def vesicles(tmp_path_factory):
    """Two vesicles among particles, SNR 0.5, written as a simulate folder."""
    cfg = SimulationConfig(
        shape=(80, 160, 160),
        preset="default",
        vesicles=2,
        filaments=0,
        imaging=Imaging(snr=0.5),
        seed=11,
    )
    sim = simulate(cfg)
    root = tmp_path_factory.mktemp("vesicles")
    write_simulation(sim, root / "sim", overwrite=True)
    ids = sim.scene.class_ids
    membrane = sim.scene.labels == ids["membrane"]
    particles = (sim.scene.labels > 0) & ~membrane
    return root, sim, membrane, particles


def _prompt_on(sim, instance: int) -> tuple[int, int, int]:
    """A membrane voxel of vesicle ``instance`` whose normal lies in the xy plane
    (the membrane's clearest part in a tomogram) near the middle z."""
    obj = next(o for o in sim.scene.objects if o["instance"] == instance)
    sel = (sim.scene.instances == instance) & (sim.scene.labels == sim.scene.class_ids["membrane"])
    pts = np.argwhere(sel)
    centre = np.array([obj["z"], obj["y"], obj["x"]])
    d = pts - centre
    flat = np.abs(d[:, 0]) / np.linalg.norm(d, axis=1) < 0.2
    pts = pts[flat] if flat.any() else pts
    mid = np.argmin(np.abs(pts[:, 0] - sim.tomogram.shape[0] / 2))
    return tuple(int(v) for v in pts[mid])


def _dice(a, b) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def _vesicle_ids(sim) -> list[int]:
    return [o["instance"] for o in sim.scene.objects if o["class"] == "membrane"]


def test_pick_extended_finds_every_membrane_and_no_particles(vesicles, tmp_path):
    root, sim, membrane, particles = vesicles
    first = _vesicle_ids(sim)[0]
    p = _prompt_on(sim, first)
    out = tmp_path / "pick"
    argv = [
        "pick",
        str(root / "sim" / "tomogram.mrc"),
        "--point",
        f"{p[0]},{p[1]},{p[2]}:membrane",
        "--extended",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    semantic = mrcfile.read(out / "masks" / "semantic.mrc") > 0
    assert _dice(semantic, membrane) > 0.55
    assert semantic[particles].mean() < 0.01  # particles are not membranes
    # both vesicles, not only the prompted one
    for v in _vesicle_ids(sim):
        on = membrane & (sim.scene.instances == v)
        assert semantic[on].mean() > 0.3, v
    assert len(pd.read_csv(out / "picks.csv")) == 0  # no particle picks for a membrane
    comps = pd.read_csv(out / "components.csv")
    instances = mrcfile.read(out / "masks" / "instances.mrc")
    assert len(comps) == instances.max() >= 1 and (comps.area_nm2 > 1000).all()
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "extended" and run["classes"][0]["kind"] == "sheet"


def test_negative_prompt_drops_a_membrane(vesicles):
    _, sim, membrane, _ = vesicles
    a, b = _vesicle_ids(sim)[:2]
    vol = standardise(sim.tomogram, True)
    both = segment_extended(vol, [_prompt_on(sim, a)], 10.0, Config())
    without_b = segment_extended(
        vol, [_prompt_on(sim, a)], 10.0, Config(), negatives_zyx=[_prompt_on(sim, b)]
    )
    on_b = membrane & (sim.scene.instances == b)
    assert both.mask[on_b].mean() > 0.3 and without_b.mask[on_b].mean() < 0.05
    on_a = membrane & (sim.scene.instances == a)
    assert without_b.mask[on_a].mean() > 0.3


def test_segment_extended_gives_the_prompted_membrane(vesicles, tmp_path):
    root, sim, membrane, _ = vesicles
    a, b = _vesicle_ids(sim)[:2]
    pa, pb = _prompt_on(sim, a), _prompt_on(sim, b)
    out = tmp_path / "seg"
    argv = [
        "segment",
        str(root / "sim" / "tomogram.mrc"),
        "--extended",
        "--out",
        str(out),
        "--point",
        ",".join(map(str, pa)),
        "--point",
        ",".join(map(str, pb)),
    ]
    assert main(argv) == 0
    inst = mrcfile.read(out / "masks" / "instances.mrc")
    for k, v in ((1, a), (2, b)):
        truth = membrane & (sim.scene.instances == v)
        assert _dice(inst == k, truth) > 0.5, k
    rows = pd.read_csv(out / "instances.csv")
    assert list(rows.status) == ["ok", "ok"] and set(rows.kind) == {"sheet"}
    # a membrane lives in the low band: --extended reads the spectrum as it is (only "yes"
    # balances it), and the record says so
    assert json.loads((out / "run.json").read_text())["input"]["spectrum_balanced"] is False


def _synthetic(kind: str, shape=(48, 64, 64), noise=0.3):
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    if kind == "sheet":  # a bright plate 3 voxels thick, tilted
        d = np.abs((yy - 32) * 0.8 + (xx - 32) * 0.6)
        truth = d <= 1.5
    else:  # a bright rod of radius 3 along x
        d = np.sqrt((zz - 24) ** 2 + (yy - 30) ** 2)
        truth = d <= 3
    vol = np.exp(-0.5 * (d / 1.5) ** 2) + np.random.default_rng(0).normal(0, noise, shape)
    return vol.astype(np.float32), truth


@pytest.mark.parametrize("kind", ["sheet", "tube"])
def test_the_prompt_decides_sheet_or_tube(kind):
    vol, truth = _synthetic(kind)
    p = np.argwhere(truth)[len(np.argwhere(truth)) // 2]
    chosen, _, z_at = choose_structure(vol, [p], 10.0)
    assert chosen == kind and z_at[0] > 3
    out = segment_extended(vol, [p], 10.0, Config())
    assert out.kind == kind and _dice(out.mask, truth) > 0.4


def test_extended_thresholds_are_validated():
    with pytest.raises(CryosamError, match="extended_grow_z"):
        Config(extended_seed_z=2.0, extended_grow_z=3.0)


def test_segment_extended_with_a_sam_checkpoint(tmp_path):
    """--extended through a SAM checkpoint (a tiny one whose weights mask dark patches, so
    its output decides the mask): an object far larger than any particle is segmented whole,
    past the particle-size bound, and the background is not flooded."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.conftest import dark_patch_sam, write_mrc

    shape, centre, radii = (48, 96, 112), np.array([24.0, 44.0, 60.0]), np.array([14, 30, 34.0])
    g = (np.indices(shape) - centre[:, None, None, None]) / radii[:, None, None, None]
    blob = (g**2).sum(0) <= 1
    vol = np.where(blob, -1.0, 1.0) + np.random.default_rng(0).normal(0, 0.3, shape)
    path = write_mrc(tmp_path / "slab.mrc", vol.astype(np.float32), voxel_size=10.0)
    dark_patch_sam(tmp_path / "dark")
    out = tmp_path / "seg-sam"
    argv = ["segment", str(path), "--extended", "--segmenter", "sam", "--model",
            str(tmp_path / "dark"), "--device", "cpu", "--axes", "z", "--out", str(out),
            "--point", "24,44,60"]  # fmt: skip
    assert main(argv) == 0
    inst = mrcfile.read(out / "masks" / "instances.mrc") > 0
    assert _dice(inst, blob) > 0.8
    # never a flood of the background: no slice mask beyond 40 % of its plane
    assert max(inst[z].mean() for z in range(shape[0])) <= 0.41


def test_particle_picks_are_not_centred_on_membranes(vesicles):
    """Membranes are found without prompts (as --extended finds them) and a particle pick
    rejects the candidates centred on one, unless its own prompt lies on a membrane."""
    from cryosam.io.prompts import Prompt
    from cryosam.method.candidates import Status
    from cryosam.method.extended import in_zone, membrane_zone
    from cryosam.method.pick import pick_particles
    from cryosam.volume.prepare import prepare_volume

    _, sim, membrane, _ = vesicles
    zone = membrane_zone(prepare_volume(sim.tomogram, "auto", 25.0)[0], 10.0)
    assert in_zone(zone, np.argwhere(membrane)).mean() > 0.5
    ribos = sim.centres("ribosome")
    assert in_zone(zone, ribos).mean() < 0.1  # particles beside a membrane are not on it
    prompt = ribos[np.argmin(np.linalg.norm(ribos - np.array(sim.tomogram.shape) / 2, axis=1))]
    out = pick_particles(sim.tomogram, [Prompt(tuple(prompt), "ribosome")], {"ribosome": 25.0})
    status = np.array(out.candidate_status)
    assert (status == str(Status.ON_MEMBRANE)).any() and out.reports[0].n_on_membrane > 0
    assert not in_zone(zone, out.picks.zyx).any()
    on = _prompt_on(sim, _vesicle_ids(sim)[0])
    out = pick_particles(sim.tomogram, [Prompt(on, "receptor")], {"receptor": 10.0})
    assert str(Status.ON_MEMBRANE) not in set(out.candidate_status)
