"""SAM's resize-and-pad mapping, checked with shapes whose answer is known."""

import numpy as np
import pytest

from cryosam.models.sam_geometry import (
    image_to_lowres,
    lowres_to_image,
    points_to_sam,
    resized_shape,
    to_sam_pixels,
)


def disk(shape, centre, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r).astype(np.float32)


@pytest.mark.parametrize("h,w", [(100, 300), (300, 100), (200, 200), (57, 91)])
def test_resized_shape_keeps_aspect(h, w):
    nh, nw = resized_shape(h, w, 1024)
    assert max(nh, nw) == 1024
    assert abs(nh / nw - h / w) < 0.01


@pytest.mark.parametrize("h,w", [(100, 300), (300, 100), (57, 91)])
def test_point_lands_on_the_same_feature_in_sam_space(h, w):
    size = 1024
    centre = (0.3 * h, 0.7 * w)
    img = disk((h, w), centre, 0.1 * min(h, w))
    pixels = to_sam_pixels(img, size, (0.0, 1.0))[0]  # channel 0, normalised
    ((x, y),) = points_to_sam(np.array([centre]), h, w, size)
    bright = pixels > 1.0  # disk (1.0 -> 2.25); background (-2.1) and padding (0) are below
    cy, cx = np.argwhere(bright).mean(axis=0)
    assert abs(cx - x) < 3 and abs(cy - y) < 3
    # nothing leaks into the padding
    nh, nw = resized_shape(h, w, size)
    assert np.all(pixels[nh:, :] == pixels[nh:, :][0, 0]) if nh < size else True
    assert np.all(pixels[:, nw:] == pixels[:, nw:][0, 0]) if nw < size else True


@pytest.mark.parametrize("h,w", [(100, 300), (300, 100), (80, 80)])
def test_logits_round_trip_through_lowres(h, w):
    logits = disk((h, w), (0.4 * h, 0.6 * w), 0.2 * min(h, w)) * 20 - 10
    low = image_to_lowres(logits, h, w, 1024, 256)
    assert low.shape == (256, 256)
    back = lowres_to_image(low, h, w, 1024)
    assert back.shape == (h, w)
    a, b = logits > 0, back > 0
    assert (a & b).sum() / (a | b).sum() > 0.9
    # the padded part of the low-res grid is background
    nh, nw = resized_shape(h, w, 1024)
    if nw < 1024:
        assert (low[:, (nw // 4) + 2 :] < 0).all()
    if nh < 1024:
        assert (low[(nh // 4) + 2 :, :] < 0).all()
