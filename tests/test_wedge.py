"""The missing wedge: read from a tomogram's spectrum, and minded by shape verification."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import fft
from scipy.spatial.transform import Rotation

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.method.verify import ShapeVerifier, rotate_box
from cryosam.volume.wedge import NARROW_BELOW, Wedge, estimate_wedge, wedge_to_mind


def wedge_filtered(volume: np.ndarray, wedge: Wedge) -> np.ndarray:
    """``volume`` as a tilt series ``wedge`` would have measured it (its spectrum cut)."""
    n = volume.shape
    kz, ky, kx = np.meshgrid(
        fft.fftfreq(n[0]), fft.fftfreq(n[1]), fft.rfftfreq(n[2]), indexing="ij", sparse=True
    )
    across = np.abs(kx) if wedge.axis == "y" else np.abs(ky)
    keep = np.abs(kz) <= np.tan(np.radians(wedge.max_tilt)) * across + 1e-9
    return fft.irfftn(fft.rfftn(volume) * keep, s=n).astype(np.float32)


@pytest.mark.parametrize("wedge", [Wedge("y", 60.0), Wedge("y", 45.0), Wedge("x", 50.0)])
def test_estimate_wedge_reads_the_axis_and_the_largest_tilt(wedge):
    noise = np.random.default_rng(1).standard_normal((96, 112, 128)).astype(np.float32)
    found = estimate_wedge(wedge_filtered(noise, wedge))
    assert found is not None and found.axis == wedge.axis
    assert abs(found.max_tilt - wedge.max_tilt) <= 3.0


def test_estimate_wedge_finds_none_without_one():
    noise = np.random.default_rng(2).standard_normal((64, 64, 64)).astype(np.float32)
    assert estimate_wedge(noise) is None
    assert estimate_wedge(np.zeros((64, 64, 64), np.float32)) is None


def test_estimate_wedge_on_a_simulated_tilt_series():
    from tests.conftest import small_sim

    sim = small_sim((48, 96, 96), {"ribosome": 0.05}, snr=0.5, seed=3)
    found = estimate_wedge(sim.tomogram)
    assert found is not None and found.axis == "y"
    assert 55.0 <= found.max_tilt <= 66.0  # the simulator tilts -60..60 about y


def test_restrict_removes_the_unmeasured_components():
    box = np.random.default_rng(3).standard_normal((17, 17, 17)).astype(np.float32)
    w = Wedge("y", 45.0)
    out = w.restrict(box)
    assert out.shape == box.shape and out.dtype == np.float32
    inside = np.broadcast_to(~w.sampled(17), (17, 17, 9))
    before = np.abs(fft.rfftn(box - box.mean()))[inside] ** 2
    after = np.abs(fft.rfftn(out - out.mean()))[inside] ** 2
    assert after.sum() < 0.25 * before.sum()
    assert Wedge.parse(w.spec()) == w and Wedge.parse("off") is None


def test_narrow_minds_a_wedge_read_under_55_degrees_only():
    """The default minds a lamella's +-45° wedge and leaves a +-60° one alone; ``auto`` minds
    both; ``off`` neither; a given wedge is taken as given."""
    noise = np.random.default_rng(5).standard_normal((64, 96, 96)).astype(np.float32)
    narrow = wedge_filtered(noise, Wedge("y", 45.0))
    usual = wedge_filtered(noise, Wedge("y", 60.0))
    found = wedge_to_mind("narrow", narrow)
    assert found is not None and found.axis == "y" and found.max_tilt < NARROW_BELOW
    assert wedge_to_mind("narrow", usual) is None
    assert wedge_to_mind("auto", usual).max_tilt >= NARROW_BELOW
    assert wedge_to_mind("off", narrow) is None
    assert wedge_to_mind("x:50", usual) == Wedge("x", 50.0)


def test_a_default_pick_minds_a_narrow_wedge_and_records_it(tmp_path):
    """A scene tilted only +-45° is verified with its wedge minded, and ``run.json`` says so;
    the same scene tilted +-60° is verified as before."""
    import json

    from cryosam.app.pick import in_memory, pick
    from cryosam.io.prompts import Prompt
    from cryosam.simulate import Imaging, SimulationConfig, simulate

    read = {}
    for tilt in (45.0, 60.0):
        imaging = Imaging(snr=1.0, tilt_min=-tilt, tilt_max=tilt)
        shape, fractions = (48, 96, 96), {"ribosome": 0.05}
        sim = simulate(SimulationConfig(shape=shape, fractions=fractions, imaging=imaging, seed=3))
        p = sim.centres("ribosome")[0]
        out = tmp_path / f"tilt{tilt:g}"
        tomo = in_memory(sim.tomogram, 10.0)
        pick(tomo, [Prompt(tuple(p), "ribosome")], {"ribosome": 25.0}, out=out, cache=False)
        record = json.loads((out / "run.json").read_text())
        assert record["config"]["missing_wedge"] == "narrow"
        read[tilt] = record["input"]["missing_wedge"]
    axis, _, angle = read[45.0].partition(":")
    assert axis == "y" and 40.0 <= float(angle) < NARROW_BELOW
    assert read[60.0] == "off"


def test_config_checks_missing_wedge():
    assert Config().missing_wedge == "narrow"
    for ok in ("narrow", "auto", "off", "y:60", "x:42.5"):
        assert Config(missing_wedge=ok).missing_wedge == ok
    for bad in ("z:60", "y:95", "y:", "sixty"):
        with pytest.raises(CryosamError, match="missing_wedge"):
            Config(missing_wedge=bad)


def _l_shape(n: int) -> np.ndarray:
    """An asymmetric particle: three balls in an L, bright on zero."""
    g = np.indices((n, n, n)) - n // 2
    out = np.zeros((n, n, n), np.float32)
    for c in [(0, 0, 0), (0, 0, 5), (0, 5, 0), (4, 0, 0)]:
        out += np.exp(-((g - np.reshape(c, (3, 1, 1, 1))) ** 2).sum(0) / (2 * 1.6**2))
    return out


def test_verification_minding_the_wedge_raises_turned_particles_not_the_background():
    """One asymmetric particle in many orientations, seen through a 45° tilt series: turned
    by the rotation search, a reference made from one of them carries its smear turned off
    z unless it loses what the tomogram lost. Restricted, the other particles correlate
    better with it; the empty places between them do not."""
    rng = np.random.default_rng(5)
    n, size = 17, (64, 160, 160)
    shape = _l_shape(n)
    places = [(z, y, x) for z in (20, 44) for y in range(16, 150, 22) for x in range(16, 150, 22)]
    vol = np.zeros(size, np.float32)
    for k, (z, y, x) in enumerate(places):
        turn = np.eye(3) if k == 0 else Rotation.random(random_state=rng.integers(1 << 30))
        turned = rotate_box(shape, turn if k == 0 else turn.as_matrix())
        vol[z - 8 : z + 9, y - 8 : y + 9, x - 8 : x + 9] += turned
    w = Wedge("y", 45.0)
    vol = wedge_filtered(vol, w) + rng.normal(0, 0.3, size).astype(np.float32)
    zyx = np.array(places, float)
    empty = np.array([(32, y + 11, x + 11) for y in range(16, 140, 22) for x in range(16, 140, 22)])
    gaps = {}
    for spec in ("off", w.spec()):
        config = Config(missing_wedge=spec, verify_bin_px=n, verify_angle_step=20.0)
        v = ShapeVerifier(vol, n, config)
        assert (v.wedge is None) == (spec == "off")
        ref = v.reference(zyx[:1])
        particles, background = v.score(ref, zyx[1:])[0], v.score(ref, empty)[0]
        gaps[spec] = (float(particles.mean()), float(background.mean()))
    (p_off, b_off), (p_on, b_on) = gaps["off"], gaps[w.spec()]
    assert p_on - b_on > 1.15 * (p_off - b_off), gaps
    assert abs(b_on - b_off) < 0.01, gaps


def test_sampled_turned_follows_the_box():
    w = Wedge("y", 50.0)
    assert np.array_equal(
        np.broadcast_to(w.sampled(12), (12, 12, 7)), w.sampled_turned(12, np.eye(3))
    )
    # a box turned by 90° about z: its x is the original's y, so the wedge lies in y-z
    quarter = Rotation.from_euler("z", 90, degrees=True).as_matrix()[::-1, ::-1]
    assert np.array_equal(
        np.broadcast_to(Wedge("x", 50.0).sampled(12), (12, 12, 7)), w.sampled_turned(12, quarter)
    )


def test_correlations_without_equal_a_template_with_each_box_own_loss():
    """Each box's own restricted template, done by two products instead of a rotation set
    per box: at the unturned rotation the same correlation as the template itself."""
    from scipy import ndimage

    from cryosam.method.rotations import local_grid
    from cryosam.method.verify import Reference

    rng = np.random.default_rng(0)
    vol = rng.standard_normal((60, 80, 80)).astype(np.float32)
    deltas = local_grid(5.0)
    v = ShapeVerifier(vol, 14.0, Config(missing_wedge="off"), rotations=deltas)
    base = v.reference([(30, 40, 40)])
    t = ndimage.gaussian_filter(rng.standard_normal(base.template.shape), 1.5).astype(np.float32)
    ref = Reference(t, base.weight, base.bin)
    side = v.n + 2 * v.shift
    boxes = rng.standard_normal((4, side, side, side)).astype(np.float32)
    turns = Rotation.random(4, random_state=1).as_matrix()
    w = Wedge("y", 50.0)
    from cryosam.volume.wedge import PAD

    lost = np.stack([t - w.restrict(t, w.sampled_turned(PAD * v.n, m)) for m in turns])
    fast = v.correlations_without(ref, boxes, lost)
    still = int(np.argmin(np.linalg.norm(deltas - np.eye(3), axis=(1, 2))))
    for i in range(4):
        own = Reference(t - lost[i], ref.weight, ref.bin)
        exact = v.correlations(own, boxes[i : i + 1])[0]
        np.testing.assert_allclose(fast[i, still], exact[still], atol=1e-5)
        assert np.corrcoef(fast[i].ravel(), exact.ravel())[0, 1] > 0.8  # turned: close


def test_info_shows_the_missing_wedge(capsys, tmp_path):
    import re

    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    noise = np.random.default_rng(4).standard_normal((64, 96, 96)).astype(np.float32)
    path = write_mrc(tmp_path / "narrow.mrc", wedge_filtered(noise, Wedge("y", 45.0)))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    found = re.search(r"missing wedge: tilts about y up to \+-([\d.]+)°", out)
    assert found and abs(float(found.group(1)) - 45.0) <= 3.0, out
    path = write_mrc(tmp_path / "none.mrc", noise)
    assert main(["info", str(path)]) == 0
    assert "missing wedge: none seen" in capsys.readouterr().out
