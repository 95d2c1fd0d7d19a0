import numpy as np
import pytest

from cryosam.errors import CryosamError
from cryosam.volume.contrast import protein_is_dark, resolve_invert


@pytest.mark.parametrize("sign", [-1, 1])
def test_auto_detects_polarity_without_and_with_points(blob_volume, sign):
    vol = blob_volume * sign  # fixture balls are dark; sign=-1 makes them bright
    dark, _ = protein_is_dark(vol, diameter_px=6)
    assert dark == (sign == 1)
    dark_p, _ = protein_is_dark(vol, diameter_px=6, points_zyx=[(10, 8, 10)])
    assert dark_p == (sign == 1)
    assert resolve_invert("auto", vol, 6) == (sign == 1)


def test_explicit_choice_wins(blob_volume):
    assert resolve_invert("yes", -blob_volume) is True
    assert resolve_invert("no", blob_volume) is False


def test_constant_volume_refused():
    with pytest.raises(CryosamError, match="constant"):
        protein_is_dark(np.ones((8, 8, 8), np.float32))


def _dark_shells(rng, n=12, shape=(64, 96, 96), d=16.0):
    """Noise with ``n`` hollow dark particles of diameter ``d`` (thin shells from 0.4 to 0.5
    of it, as a TRiC barrel or a proteasome's channel): their centres hold ice."""
    vol = rng.normal(0, 1, shape).astype(np.float32)
    g = np.indices(shape)
    centres = []
    while len(centres) < n:
        c = rng.uniform(d, np.asarray(shape) - d)
        if all(np.linalg.norm(c - o) > 1.2 * d for o in centres):
            centres.append(c)
    for c in centres:
        r = np.sqrt(((g - c.reshape(3, 1, 1, 1)) ** 2).sum(0))
        vol[(r > 0.4 * d) & (r <= 0.5 * d)] -= 2.0
    return vol, np.asarray(centres), d


@pytest.mark.parametrize("sign", [-1, 1])
def test_a_click_on_a_hollow_particles_centre_reads_its_wall(sign):
    """The voxel under the click is ice here; the particle's scale around it is protein (the
    single-voxel test read these as the other polarity)."""
    vol, centres, d = _dark_shells(np.random.default_rng(3))
    for c in centres[:4]:
        dark, evidence = protein_is_dark(sign * vol, d, [c])
        assert dark == (sign == 1)
        assert abs(evidence) >= 0.5  # the click decided, not the volume


def test_a_click_that_says_little_leaves_the_contrast_to_the_volume(blob_volume):
    flat = blob_volume.copy()
    flat[2:9, 10:20, 28:38] = 0.0  # an empty patch away from the balls: no evidence there
    dark, evidence = protein_is_dark(flat, 6, [(5, 15, 33)])
    assert dark
    assert evidence == pytest.approx(protein_is_dark(flat, 6)[1])


def _bright_blob(vol):
    """``vol`` with one bright ball at (5, 15, 33), where a click reads bright protein."""
    out = vol.copy()
    zz, yy, xx = np.mgrid[: vol.shape[0], : vol.shape[1], : vol.shape[2]]
    out[(zz - 5) ** 2 + (yy - 15) ** 2 + (xx - 33) ** 2 <= 9] += 2.0
    return out


def test_prompts_that_read_against_the_volume_are_doubted(blob_volume):
    from cryosam.volume.contrast import contrast_doubt, read_contrast

    agreed = read_contrast(blob_volume, 6, [(10, 8, 10)], skewness=True)
    assert agreed.dark and agreed.by_prompts and agreed.skewness < 0
    assert contrast_doubt(agreed) is None  # the balls are dark: agreed
    against = read_contrast(_bright_blob(blob_volume), 6, [(5, 15, 33)], skewness=True)
    assert not against.dark and against.by_prompts
    said = contrast_doubt(against)
    assert said and "--invert" in said and "bright protein" in said
    assert contrast_doubt(read_contrast(-_bright_blob(blob_volume), 6, [(5, 15, 33)], True))
    unread = read_contrast(_bright_blob(blob_volume), 6, [(5, 15, 33)])
    assert unread.skewness is None and contrast_doubt(unread) is None  # not asked: no doubt
    noise = np.random.default_rng(5).normal(0, 1, blob_volume.shape).astype(np.float32)
    noisy = read_contrast(_bright_blob(noise), 6, [(5, 15, 33)], skewness=True)
    assert contrast_doubt(noisy) is None  # no clear skew: nothing to say


def test_the_volume_is_read_once_when_the_clicks_say_little(blob_volume, monkeypatch):
    from cryosam.volume import contrast

    calls = []
    skew = contrast._skewness
    monkeypatch.setattr(contrast, "_skewness", lambda *a: calls.append(1) or skew(*a))
    flat = blob_volume.copy()
    flat[2:9, 10:20, 28:38] = 0.0
    reading = contrast.read_contrast(flat, 6, [(5, 15, 33)], skewness=True)
    assert reading.dark and not reading.by_prompts and len(calls) == 1
    assert contrast.contrast_doubt(reading) is None  # the skewness decided: nothing to doubt


def test_a_pick_warns_when_its_click_reads_the_contrast_against_the_volume(blob_volume):
    from cryosam.config import Config
    from cryosam.io.prompts import Prompt
    from cryosam.method.pick import setup

    s = setup(_bright_blob(blob_volume), [Prompt((5.0, 15.0, 33.0), "x")], {"x": 6.0}, Config())
    assert not s.inverted
    assert any("--invert" in w for w in s.seg.warnings), s.seg.warnings
    fine = setup(blob_volume, [Prompt((10.0, 8.0, 10.0), "x")], {"x": 6.0}, Config())
    assert fine.inverted and not any("--invert" in w for w in fine.seg.warnings)
