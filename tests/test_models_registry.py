"""Weight registry: cache, manifest, verification, offline errors, loading by short name."""

import pytest

from cryosam.cli.main import main
from cryosam.models import registry

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture
def tiny_cached(tmp_path, monkeypatch):
    """A tiny SAM registered as 'tiny-sam', saved in a temporary cache with its manifest."""
    from cryosam.models.sam import tiny_sam_config

    monkeypatch.setenv("CRYOSAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(
        registry.REGISTRY, "tiny-sam", registry.ModelSpec("tiny-sam", "sam", "none/tiny-sam")
    )
    folder = registry.model_dir("tiny-sam")
    torch.manual_seed(0)
    transformers.SamModel(tiny_sam_config(image_size=128)).save_pretrained(folder)
    registry.write_manifest(folder)
    return folder


def test_list_verify_path(tiny_cached, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "sam-vit-h" in out and "dinov2-vit-l14" in out
    row = next(line for line in out.splitlines() if "tiny-sam" in line)
    assert "| yes" in row  # cached and verified
    assert main(["models", "verify", "tiny-sam"]) == 0
    assert main(["models", "path", "tiny-sam"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(tiny_cached))


def test_corrupt_weights_are_refused(tiny_cached, capsys):
    weights = next(tiny_cached.glob("*.safetensors"))
    with open(weights, "ab") as fh:
        fh.write(b"\0")
    assert main(["models", "verify", "tiny-sam"]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    with pytest.raises(Exception, match="cannot be used"):
        registry.resolve("tiny-sam")


def test_short_name_loads_through_the_real_path(tiny_cached):
    from cryosam.models.sam import SamSegmenter

    seg = SamSegmenter(model="tiny-sam", device="cpu")
    assert seg.size == 128


def test_offline_download_is_one_clear_line(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.setenv("CRYOSAM_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise OSError("Connection refused")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert main(["models", "download", "sam-vit-b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cryosam models download sam-vit-b" in err[0]
    assert "Traceback" not in err[0]
    assert not registry.model_dir("sam-vit-b").exists()  # nothing half-made left


def test_unknown_and_missing_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRYOSAM_CACHE", str(tmp_path / "cache"))
    assert main(["models", "verify", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    with pytest.raises(Exception, match="models download sam-vit-h"):
        registry.resolve("sam-vit-h")
    assert registry.resolve("some-org/some-model") == "some-org/some-model"


def test_gpu_out_of_memory_becomes_one_line():
    from cryosam.errors import CryosamError
    from cryosam.models.loading import gpu_errors

    oom = getattr(torch, "OutOfMemoryError", RuntimeError)
    with pytest.raises(CryosamError, match="ran out of memory"):
        with gpu_errors("SAM image encoder"):
            raise oom("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(ValueError):  # other errors pass through untouched
        with gpu_errors("x"):
            raise ValueError("unrelated")


def test_pick_by_short_names(tiny_cached, tmp_path, monkeypatch, capsys):
    from cryosam.models.dino import tiny_dinov2_config
    from cryosam.simulate import write_simulation
    from tests.conftest import small_sim

    monkeypatch.setitem(
        registry.REGISTRY, "tiny-dino", registry.ModelSpec("tiny-dino", "dinov2", "none/tiny")
    )
    transformers.Dinov2Model(tiny_dinov2_config()).save_pretrained(registry.model_dir("tiny-dino"))
    registry.write_manifest(registry.model_dir("tiny-dino"))
    sim = small_sim((32, 64, 64), {"ribosome": 0.05}, snr=2.0, seed=3)
    write_simulation(sim, tmp_path / "sim")
    z, y, x = sim.centres("ribosome")[0]
    args = [
        "pick",
        str(tmp_path / "sim" / "tomogram.mrc"),
        "--point",
        f"{z:g},{y:g},{x:g}",
        "--diameter",
        "290",
        "--segmenter",
        "sam",
        "--model",
        "tiny-sam",
        "--encoder",
        "dinov2",
        "--encoder-model",
        "tiny-dino",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "pick"),
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "pick" / "picks.csv").exists()
