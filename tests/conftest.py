"""Shared fixtures: small MRC files written the way other programs write them."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest


def write_mrc(path, data, voxel_size=10.0, origin=(0.0, 0.0, 0.0), compression=None):
    """Write ``data`` as MRC with mrcfile directly (not through cryosam)."""
    with mrcfile.new(path, overwrite=True, compression=compression) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size
        mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = origin
    return path


@pytest.fixture
def blob_volume():
    """(20, 32, 40) float32 volume: noise with three dark (protein-like) balls."""
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 0.3, (20, 32, 40)).astype(np.float32)
    zz, yy, xx = np.mgrid[:20, :32, :40]
    for c in [(10, 8, 10), (10, 20, 28), (6, 24, 10)]:
        r2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        vol[r2 <= 9] -= 2.0
    return vol


@pytest.fixture
def mrc_path(tmp_path, blob_volume):
    return write_mrc(tmp_path / "tomo.mrc", blob_volume, voxel_size=10.0, origin=(5.0, 6.0, 7.0))


def small_sim(shape, fractions, snr=1.0, seed=0, vesicles=0, filaments=0):
    """A small simulated tomogram with only the given species (fractions of the volume)."""
    from cryosam.simulate import Imaging, SimulationConfig, simulate

    cfg = SimulationConfig(
        shape=shape,
        fractions=fractions,
        vesicles=vesicles,
        filaments=filaments,
        imaging=Imaging(snr=snr),
        seed=seed,
    )
    return simulate(cfg)


def clicked_ribosomes(name: str):
    """A thick scene of ribosomes (8 % of the volume, SNR 1) with one click near its middle:
    ``(sim, tomogram, prompts, diameters)`` for a whole pick."""
    from cryosam.app.pick import in_memory
    from cryosam.io.prompts import Prompt

    sim = small_sim((56, 128, 128), {"ribosome": 0.08}, snr=1.0, seed=21)
    c = sim.centres("ribosome")
    p = c[np.argmin(np.linalg.norm(c - np.array([28, 64, 64]), axis=1))]
    return (
        sim,
        in_memory(sim.tomogram, 10.0, name),
        [Prompt(tuple(p), "ribosome")],
        {"ribosome": 25.0},
    )


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests never write into the user's cryosam cache."""
    monkeypatch.setenv("CRYOSAM_CACHE", str(tmp_path_factory.getbasetemp() / "cryosam-cache"))


def dark_patch_sam(path, size: int = 256, threshold: float = 0.5) -> None:
    """A tiny SAM whose weights are set by hand (not random): it masks the image patches
    darker than ``-threshold`` (SAM's normalised units) and ignores its prompts. Channel 0
    of the patch embedding is minus the patch's mean less the threshold; every transformer
    branch is zeroed (the residuals carry it through), the neck and the upscaling pass
    channel 0 on (layer norms keep its sign), and every mask token's hypernetwork is a
    constant: ``4 * dark - 6 * 0.84``, positive on dark patches, -5 elsewhere."""
    import torch
    import transformers

    from cryosam.models.sam import tiny_sam_config

    torch.manual_seed(0)
    model = transformers.SamModel(tiny_sam_config(image_size=size))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if "layer_norm" in name and name.endswith("weight") else 0.0)
        embed = model.vision_encoder.patch_embed.projection
        embed.weight[0] = -1.0 / embed.weight[0].numel()
        embed.bias[0] = -threshold
        model.vision_encoder.neck.conv1.weight[0, 0] = 1.0
        model.vision_encoder.neck.conv2.weight[0, 0, 1, 1] = 1.0
        dec = model.mask_decoder
        dec.upscale_conv1.weight[0, 0] = 1.0
        dec.upscale_conv2.weight[0, 0] = 1.0
        dec.upscale_conv2.bias[1] = 1.0  # a constant channel (GELU(1) = 0.84) for the offset
        for mlp in dec.output_hypernetworks_mlps:
            mlp.proj_out.bias[0], mlp.proj_out.bias[1] = 4.0, -6.0
    model.save_pretrained(path)
