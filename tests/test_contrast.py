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
