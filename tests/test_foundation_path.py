"""The foundation path end to end with tiny random models saved and loaded by path."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from cryosam.cli.main import main  # noqa: E402
from cryosam.models.dino import DinoSliceEncoder, tiny_dinov2_config  # noqa: E402
from cryosam.models.features import feature_stride  # noqa: E402
from cryosam.models.sam import tiny_sam2_config, tiny_sam_config  # noqa: E402
from cryosam.simulate import Imaging, SimulationConfig, simulate, write_simulation  # noqa: E402


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    transformers.Dinov2Model(tiny_dinov2_config()).save_pretrained(root / "dino")
    transformers.SamModel(tiny_sam_config(image_size=128)).save_pretrained(root / "sam")
    transformers.Sam2Model(tiny_sam2_config(image_size=128)).save_pretrained(root / "sam2")
    return root


def assert_output_reaches_its_cell(enc, s: int) -> None:
    """The model's output reaches each cell of the grid where its patch lies: a model whose
    token is its patch's mean darkness gives, in every view, features that follow the
    darkness of the volume block by block (a swapped axis or an ignored output breaks it)."""
    from types import SimpleNamespace

    from scipy import ndimage

    from cryosam.volume.binning import block_mean

    def darkness_tokens(pixel_values, **_):
        x = pixel_values[:, 0]
        n, hp, wp = x.shape
        p = enc.patch
        patches = x.reshape(n, hp // p, p, wp // p, p).mean(dim=(2, 4)).reshape(n, -1)
        tokens = torch.zeros(n, 1 + patches.shape[1], enc.hidden)
        tokens[:, 1:, 0] = patches
        return SimpleNamespace(last_hidden_state=tokens)

    enc.model.forward = darkness_tokens
    rng = np.random.default_rng(1)
    blobs = ndimage.gaussian_filter(rng.normal(size=(24, 40, 48)), 3).astype(np.float32)
    feats = enc.encode(blobs, diameter_px=16.0)
    dark = -block_mean(blobs[: feats.shape[0] * s, : feats.shape[1] * s, : feats.shape[2] * s], s)
    for view in range(3):
        channel = feats.data[view * enc.k].astype(np.float64)
        r = np.corrcoef(channel.ravel(), dark.ravel())[0, 1]
        assert abs(r) > 0.8, ("zyx"[view], r)


def test_dino_encoder_grid_matches_the_feature_grid(tiny_models):
    enc = DinoSliceEncoder(model=str(tiny_models / "dino"), device="cpu", channels_per_view=8)
    vol = np.random.default_rng(0).normal(size=(24, 40, 48)).astype(np.float32)
    vol[8:16, 16:24, 20:28] += 5.0
    feats = enc.encode(vol, diameter_px=16.0)
    s = feature_stride(16.0)
    assert feats.stride == s and feats.shape == (24 // s, 40 // s, 48 // s)
    assert feats.data.shape[0] == 3 * 8 and feats.data.dtype == np.float16
    assert_output_reaches_its_cell(enc, s)


def ribosome_tomogram(folder, seed: int) -> tuple[str, str]:
    """A small simulated tomogram with ribosomes: its path and one ribosome as ``z,y,x``."""
    sim = simulate(
        SimulationConfig(
            shape=(32, 64, 64),
            fractions={"ribosome": 0.05},
            vesicles=0,
            filaments=0,
            imaging=Imaging(snr=2.0),
            seed=seed,
        )
    )
    write_simulation(sim, folder)
    o = next(o for o in sim.particles if o["class"] == "ribosome")
    return str(folder / "tomogram.mrc"), f"{o['z']:g},{o['y']:g},{o['x']:g}"


def test_pick_with_sam_and_dinov2(tiny_models, tmp_path, capsys):
    tomogram, point = ribosome_tomogram(tmp_path / "sim", seed=3)
    out = tmp_path / "pick"
    args = [
        "pick",
        tomogram,
        "--point",
        point,
        "--diameter",
        "290",
        "--segmenter",
        "sam",
        "--model",
        str(tiny_models / "sam"),
        "--encoder",
        "dinov2",
        "--encoder-model",
        str(tiny_models / "dino"),
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["encoder"] == "dinov2" and run["config"]["segmenter"] == "sam"
    assert (out / "picks.csv").read_text().startswith("z,y,x,score,class,instance")


def test_missing_weights_give_one_clear_line(tmp_path, capsys, monkeypatch):
    """A model that was never downloaded, or a folder without a checkpoint, stops the pick
    with one line that says what to do, before any output is written."""
    monkeypatch.setenv("CRYOSAM_CACHE", str(tmp_path / "cache"))  # nothing downloaded
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tomogram, point = ribosome_tomogram(tmp_path / "sim", seed=3)
    base = ["pick", tomogram, "--point", point, "--diameter", "290", "--segmenter", "sam"]
    for model, expected in (("sam-vit-b", "cryosam models download sam-vit-b"),
                            (str(tmp_path), "no config.json")):  # fmt: skip
        out = tmp_path / f"out-{len(model)}"
        assert main(base + ["--model", model, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
        assert not out.exists()


def test_dino_v1_vit_checkpoint_works_as_encoder(tmp_path):
    # facebook/dino-vitb16 is a plain ViT with 16-pixel patches; the same encoder serves it
    cfg = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=16,
        image_size=64,
    )
    torch.manual_seed(0)
    transformers.ViTModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path / "dino-v1")
    enc = DinoSliceEncoder(model=str(tmp_path / "dino-v1"), device="cpu", channels_per_view=4)
    assert enc.patch == 16
    feats = enc.encode(np.random.default_rng(0).normal(size=(16, 24, 32)).astype(np.float32), 16.0)
    assert feats.data.shape == (12,) + feats.shape and np.isfinite(feats.data).all()


def test_segment_and_pick_with_a_sam2_checkpoint(tiny_models, tmp_path, capsys):
    tomogram, point = ribosome_tomogram(tmp_path / "sim", seed=4)
    model = str(tiny_models / "sam2")
    common = [tomogram, "--point", point, "--diameter", "290"]
    common += ["--segmenter", "sam", "--model", model, "--device", "cpu"]
    assert main(["segment", *common, "--out", str(tmp_path / "seg")]) == 0
    assert main(["pick", *common, "--out", str(tmp_path / "pick")]) == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "pick" / "run.json").read_text())
    assert run["config"]["model"] == str(tiny_models / "sam2")


def test_dinov3_checkpoint_works_as_encoder(tmp_path):
    cfg = transformers.DINOv3ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=16,
        image_size=64,
        num_register_tokens=4,
    )
    torch.manual_seed(0)
    transformers.DINOv3ViTModel(cfg).save_pretrained(tmp_path / "dinov3")
    enc = DinoSliceEncoder(model=str(tmp_path / "dinov3"), device="cpu", channels_per_view=8)
    assert type(enc.model).__name__ == "DINOv3ViTModel" and enc.patch == 16
    vol = np.random.default_rng(0).normal(size=(24, 40, 48)).astype(np.float32)
    vol[8:16, 16:24, 20:28] += 5.0
    feats = enc.encode(vol, diameter_px=16.0)
    s = feature_stride(16.0)
    assert feats.shape == (24 // s, 40 // s, 48 // s) and feats.data.shape[0] == 24
    assert_output_reaches_its_cell(enc, s)


def test_encoder_identity_follows_the_weights_not_their_file_stamps(tmp_path):
    """Two checkpoints of one family whose weight files have the same name, size and time:
    the features' cache key and the queries' identity still tell them apart, and queries
    of two sizes of one encoder name are never pooled."""
    import os

    from cryosam.errors import CryosamError
    from cryosam.method.queries import ClassQuery, encoder_identity

    cfg = tiny_dinov2_config()
    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        transformers.Dinov2Model(cfg).save_pretrained(tmp_path / name)
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if p.suffix == ".safetensors")
    for f in files:
        pa, pb = tmp_path / "a" / f, tmp_path / "b" / f
        assert pa.stat().st_size == pb.stat().st_size
        os.utime(pb, ns=(pa.stat().st_atime_ns, pa.stat().st_mtime_ns))
    a = DinoSliceEncoder(model=str(tmp_path / "a"), device="cpu", channels_per_view=4)
    b = DinoSliceEncoder(model=str(tmp_path / "b"), device="cpu", channels_per_view=4)
    a.model_id = a.model_id.replace(str(tmp_path / "a"), "m")
    b.model_id = b.model_id.replace(str(tmp_path / "b"), "m")  # the same name, too
    assert a.signature() != b.signature()
    ida, idb = encoder_identity(a), encoder_identity(b)
    assert ida != idb and ida.startswith("dinov2@")
    qa = ClassQuery(np.ones(12, np.float32), 20.0, 100.0, 1, True, ida)
    qb = ClassQuery(np.ones(12, np.float32), 20.0, 100.0, 1, True, idb)
    with pytest.raises(CryosamError, match="different encoders"):
        ClassQuery.pool([qa, qb])
    assert ClassQuery.pool([qa, qa]).encoder == ida
    # a query saved before identities carried a digest is compared by name
    assert ClassQuery.pool([qa, ClassQuery(qa.vector, 20.0, 100.0, 1, True, "dinov2")])
