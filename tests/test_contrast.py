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
