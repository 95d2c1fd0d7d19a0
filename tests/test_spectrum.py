"""A tomogram whose low frequencies were lifted (deconvolved) is balanced before picking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import fft, ndimage

from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.method.verify import ShapeVerifier
from cryosam.volume.prepare import lifted_warning, prepare_volume
from cryosam.volume.spectrum import (
    MAX_LOW_EXCESS,
    _band,
    _radius_bins,
    balance_spectrum,
    low_excess,
    radial_power,
)


def lifted(volume: np.ndarray, gain: float = 30.0) -> np.ndarray:
    """``volume`` with its lowest frequencies lifted as a deconvolution lifts them (up to
    ``1 + gain`` times in amplitude, falling off by 0.05 cycles per voxel)."""
    v = np.asarray(volume, np.float32)
    k = np.sqrt(
        sum(
            g**2
            for g in np.meshgrid(
                fft.fftfreq(v.shape[0]), fft.fftfreq(v.shape[1]), fft.rfftfreq(v.shape[2]),
                indexing="ij", sparse=True,
            )
        )
    )  # fmt: skip
    spec = fft.rfftn(v) * (1 + gain * np.exp(-((k / 0.05) ** 2)))
    return fft.irfftn(spec, s=v.shape).astype(np.float32)


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(4).standard_normal((64, 96, 96)).astype(np.float32)


def test_low_excess_tells_a_lifted_volume_from_a_raw_or_smoothed_one(noise):
    assert abs(low_excess(noise)) < 0.2  # white: flat
    assert low_excess(lifted(noise)) > MAX_LOW_EXCESS + 0.5
    # a smoothed (denoised, low-passed) volume lost its fine frequencies, not gained coarse ones
    assert low_excess(ndimage.gaussian_filter(noise, 1.0)) < MAX_LOW_EXCESS
    assert low_excess(np.zeros((8, 64, 64), np.float32)) is None  # too thin


def test_balance_spectrum_caps_the_low_band_and_keeps_the_rest(noise):
    v = lifted(noise) + 5.0
    out = balance_spectrum(v)
    assert out.shape == v.shape and out.dtype == np.float32
    assert abs(float(out.mean()) - float(v.mean())) < 1e-3
    bins = _radius_bins(v.shape)
    before = radial_power(fft.rfftn(v - v.mean()), bins)
    after = radial_power(fft.rfftn(out - out.mean()), bins)
    cap = 10 ** (np.log10(_band(before, (0.125, 0.25))).mean() + MAX_LOW_EXCESS)
    assert after[1:].max() <= 1.01 * cap  # nothing above the cap (the mean aside)
    lowered = before > cap
    assert lowered[1:20].any()
    # what stood under the cap is untouched
    np.testing.assert_allclose(after[~lowered][1:], before[~lowered][1:], rtol=1e-3)
    assert low_excess(out) < low_excess(v) - 0.5


@pytest.fixture(scope="module")
def ribosomes_and_proteasomes():
    from tests.conftest import small_sim

    return small_sim((64, 128, 128), {"ribosome": 0.04, "proteasome": 0.03}, snr=0.5, seed=5)


def _separation(volume, sim) -> float:
    """How often a true ribosome outscores a proteasome, against one ribosome's reference."""
    rib, prot = sim.centres("ribosome"), sim.centres("proteasome")
    v = ShapeVerifier(volume, 25.0, Config())
    ref = v.reference(rib[:1])
    a, _ = v.score(ref, rib[1:])
    b, _ = v.score(ref, prot)
    return float((a[:, None] > b[None, :]).mean())


def test_prepare_volume_balances_a_lifted_tomogram_and_verification_tells_shapes_again(
    ribosomes_and_proteasomes,
):
    sim = ribosomes_and_proteasomes
    raw = sim.tomogram
    view, _ = prepare_volume(raw, "yes", 25.0, balance="auto")
    assert not view.balanced  # a raw tomogram is read as it is
    np.testing.assert_array_equal(view[...], prepare_volume(raw, "yes", 25.0)[0][...])
    deconvolved = lifted(raw)
    as_is, _ = prepare_volume(deconvolved, "yes", 25.0, balance="no")
    balanced, _ = prepare_volume(deconvolved, "yes", 25.0, balance="auto")
    assert not as_is.balanced and balanced.balanced
    # left lifted, the pick says so and names the option; balanced, or raw, it says nothing
    assert "balance_spectrum=auto" in lifted_warning(as_is)
    assert lifted_warning(balanced) is None and lifted_warning(view) is None
    assert prepare_volume(raw, "yes", 25.0, balance="yes")[0].balanced
    # lifted, proteasomes in their broad halos correlate with a ribosome as ribosomes do
    assert _separation(as_is, sim) < 0.9
    assert _separation(balanced, sim) > 0.97


def test_balance_spectrum_is_validated():
    with pytest.raises(CryosamError, match="balance_spectrum"):
        Config(balance_spectrum="maybe")


def test_info_says_whether_the_spectrum_is_lifted(capsys, tmp_path, noise):
    from cryosam.cli.main import main
    from tests.conftest import write_mrc

    assert main(["info", str(write_mrc(tmp_path / "dec.mrc", lifted(noise)))]) == 0
    assert "(lifted, as a deconvolution leaves them" in capsys.readouterr().out
    assert main(["info", str(write_mrc(tmp_path / "raw.mrc", noise))]) == 0
    assert "(as in a raw reconstruction)" in capsys.readouterr().out
