"""The SAM backend's plumbing with a tiny random model: caching, mapping, mask prompts."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from cryosam.config import Config  # noqa: E402
from cryosam.method.propagate import propagate_instance  # noqa: E402
from cryosam.models.sam import SamSegmenter, tiny_sam_config  # noqa: E402
from cryosam.models.sam_geometry import points_to_sam  # noqa: E402
from tests.conftest import dark_patch_sam  # noqa: E402


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    path = tmp_path_factory.mktemp("sam") / "tiny"
    torch.manual_seed(0)
    transformers.SamModel(tiny_sam_config(image_size=128)).save_pretrained(path)
    seg = SamSegmenter(Config(), model=str(path), device="cpu")
    vol = np.random.default_rng(0).normal(size=(20, 40, 70)).astype(np.float32)
    seg.set_volume(vol, 8.0)
    return seg


def test_points_and_masks_reach_the_model_in_sam_coordinates(segmenter, monkeypatch):
    seen = {}
    forward = segmenter.model.forward

    def spy(**kwargs):
        seen.update(kwargs)
        return forward(**kwargs)

    monkeypatch.setattr(segmenter.model, "forward", spy)
    window = (slice(5, 35), slice(10, 60))
    res = segmenter.segment(0, 7, window, np.array([[12.0, 20.0]]), np.array([1]))
    assert res.mask.shape == (30, 50) and res.logits.shape == (30, 50)
    expected = points_to_sam(np.array([[17.0, 30.0]]), 40, 70, 128)  # window offset added
    got = seen["input_points"][0, 0].float().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert "input_masks" not in seen
    segmenter.segment(0, 8, window, np.array([[12.0, 20.0]]), np.array([1]), res.logits)
    assert tuple(seen["input_masks"].shape) == (1, 1, 32, 32)  # 4 x the 8x8 embedding grid


def test_embeddings_are_computed_once_per_slice(segmenter, monkeypatch):
    calls = []
    embed = segmenter.model.get_image_embeddings
    monkeypatch.setattr(
        segmenter.model, "get_image_embeddings", lambda x: calls.append(1) or embed(x)
    )
    segmenter.cache.clear()
    window = (slice(0, 40), slice(0, 70))
    for _ in range(3):
        segmenter.segment(1, 10, window, np.array([[5.0, 5.0]]), np.array([1]))
    assert len(calls) == 1


def test_propagation_runs_through_sam(segmenter):
    inst = propagate_instance(segmenter, (20, 40, 70), (10, 20, 35), 8.0, Config())
    assert set(inst.slices) == {"z", "y", "x"}
    assert inst.mask.shape == (13, 13, 13)  # box of +-ceil(0.75 * 8) voxels around the point


def test_intensity_mapping_shows_protein_dark_in_three_channels(segmenter):
    from cryosam.models.sam_geometry import to_sam_pixels

    vol = np.zeros((8, 40, 40), np.float32)
    vol[:, 15:25, 15:25] = 5.0  # prepared volumes have bright protein
    segmenter.set_volume(vol, 8.0)
    img = segmenter._shown[4]
    pixels = to_sam_pixels(img, segmenter.size, segmenter.window)
    assert pixels.shape == (3, segmenter.size, segmenter.size)
    inside = pixels[:, 64, 64]  # the blob's centre after resizing 40 -> 128
    outside = pixels[:, 10, 10]
    assert (inside < outside).all()  # dark protein, as in raw slices


def test_sam_hq_checkpoint_loads_and_propagates(tmp_path):
    from transformers.models.sam_hq.configuration_sam_hq import (
        SamHQMaskDecoderConfig,
        SamHQPromptEncoderConfig,
        SamHQVisionConfig,
    )

    vc = SamHQVisionConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        global_attn_indexes=[1],
        output_channels=32,
        window_size=4,
        mlp_dim=64,
        num_pos_feats=16,
        image_size=128,
    )
    pc = SamHQPromptEncoderConfig(hidden_size=32, image_size=128)
    mc = SamHQMaskDecoderConfig(
        hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32, vit_dim=32
    )
    cfg = transformers.SamHQConfig(
        vision_config=vc.to_dict(),
        prompt_encoder_config=pc.to_dict(),
        mask_decoder_config=mc.to_dict(),
    )
    torch.manual_seed(0)
    transformers.SamHQModel(cfg).save_pretrained(tmp_path / "tiny-hq")
    seg = SamSegmenter(model=str(tmp_path / "tiny-hq"), device="cpu")
    assert type(seg.model).__name__ == "SamHQModel"
    seg.set_volume(np.random.default_rng(1).normal(size=(16, 30, 40)).astype(np.float32), 6.0)
    inst = propagate_instance(seg, (16, 30, 40), (8, 15, 20), 6.0, Config(propagation_axes="z"))
    assert set(inst.slices) == {"z"}


def test_sam2_checkpoint_loads_with_square_geometry(tmp_path, monkeypatch):
    """A SAM 2.1 checkpoint (tiny, random) by path: Sam2Model, square resize, points scaled
    per axis, the previous slice's mask fed back at low resolution."""
    from cryosam.models.sam import tiny_sam2_config

    torch.manual_seed(0)
    transformers.Sam2Model(tiny_sam2_config(image_size=128)).save_pretrained(tmp_path / "tiny2")
    seg = SamSegmenter(model=str(tmp_path / "tiny2"), device="cpu")
    assert type(seg.model).__name__ == "Sam2Model" and seg.square and seg.size == 128
    vol = np.random.default_rng(1).normal(size=(16, 30, 60)).astype(np.float32)
    seg.set_volume(vol, 6.0)
    seen = []
    original = seg.model.forward

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(seg.model, "forward", spy)
    res = seg.segment(0, 8, (slice(0, 30), slice(0, 60)), [(15, 45)], [1])
    assert res.mask.shape == (30, 60)
    xy = seen[0]["input_points"][0, 0, 0].numpy()
    assert np.allclose(xy, [(45.5) * 128 / 60 - 0.5, (15.5) * 128 / 30 - 0.5], atol=1e-3)
    assert isinstance(seen[0]["image_embeddings"], list)
    seg.segment(0, 9, (slice(0, 30), slice(0, 60)), [(15, 45)], [1], mask_logits=res.logits)
    assert tuple(seen[1]["input_masks"].shape[-2:]) == (32, 32)
    inst = propagate_instance(seg, vol.shape, (8, 15, 30), 6.0, Config(propagation_axes="z"))
    assert set(inst.slices) == {"z"}


def test_sam2_points_and_pixels_geometry():
    from cryosam.models.sam_geometry import points_to_sam2, to_sam2_pixels

    # pixel centres map onto pixel centres on the square, independently per axis
    xy = points_to_sam2(np.array([[0, 0], [29, 59]]), 30, 60, 120)
    assert np.allclose(xy, [[0.5 * 2 - 0.5, 0.5 * 4 - 0.5], [59.5 * 2 - 0.5, 29.5 * 4 - 0.5]])
    img = np.zeros((30, 60), np.float32)
    img[:, 30:] = 1.0
    px = to_sam2_pixels(img, 120, (0.0, 1.0))
    assert px.shape == (3, 120, 120) and px[:, 60, 100].mean() > px[:, 60, 20].mean()


def test_slices_are_embedded_in_batches_of_neighbours(segmenter, monkeypatch):
    calls = []
    original = segmenter.model.get_image_embeddings

    def spy(pixels):
        calls.append(pixels.shape[0])
        return original(pixels)

    monkeypatch.setattr(segmenter.model, "get_image_embeddings", spy)
    monkeypatch.setattr(segmenter, "batch", 4)
    segmenter.set_volume(np.random.default_rng(2).normal(size=(20, 40, 70)).astype(np.float32), 8)
    segmenter.cache.clear()
    single = original(
        segmenter.torch.from_numpy(
            np.stack(
                [
                    __import__("cryosam.models.sam_geometry", fromlist=["x"]).to_sam_pixels(
                        segmenter._shown[7], segmenter.size, segmenter.window
                    )
                ]
            )
        )
    )
    emb7 = segmenter.embedding(0, 7)
    assert calls == [4]  # slices 5..8 in one encoder call
    for i in (5, 6, 8):
        segmenter.embedding(0, i)
    assert calls == [4]  # the neighbours were already there
    torch.testing.assert_close(emb7, single, atol=1e-4, rtol=1e-4)
    segmenter.embedding(0, 0)
    assert calls == [4, 4]  # 0..3 (clipped at the volume's start)


def test_a_sam_that_masks_dark_patches_segments_the_ball(tmp_path):
    # the model's output decides the masks: a geometry error between slice, SAM input and
    # low-res output (a transpose, a lost window offset, padding read as image) or an
    # ignored output moves or loses the ball
    dark_patch_sam(tmp_path / "dark")
    seg = SamSegmenter(Config(), model=str(tmp_path / "dark"), device="cpu")
    shape, centre, r = (48, 64, 80), np.array([22.0, 27.0, 45.0]), 9.0
    ball = np.sum((np.indices(shape) - centre[:, None, None, None]) ** 2, axis=0) <= r * r
    noise = np.random.default_rng(0).normal(0, 0.05, shape)
    seg.set_volume((ball + noise).astype(np.float32), 2 * r)  # prepared: bright protein
    window = (slice(10, 50), slice(25, 75))
    res = seg.segment(0, 22, window, np.array([[17.0, 20.0]]), np.array([1]))
    disk = ball[22][window]
    assert (res.mask & disk).sum() / (res.mask | disk).sum() > 0.55
    np.testing.assert_allclose(np.argwhere(res.mask).mean(0), [17.0, 20.0], atol=1.0)
    inst = propagate_instance(seg, shape, tuple(centre), 2 * r, Config())
    full = np.zeros(shape, np.uint8)
    inst.paste(full, 1)
    assert 2 * np.sum(full.astype(bool) & ball) / (full.sum() + ball.sum()) > 0.7
    np.testing.assert_allclose(np.argwhere(full).mean(0), centre, atol=1.0)
