"""A small simulated tomogram as napari sample data."""

from __future__ import annotations

from cryosam.simulate import Imaging, SimulationConfig, simulate


def simulated_tomogram():
    """64 x 128 x 128 voxels at 10 Å with ribosomes and other particles (SNR 0.5)."""
    sim = simulate(SimulationConfig(shape=(64, 128, 128), imaging=Imaging(snr=0.5), seed=0))
    meta = {"voxel_size": 10.0, "path": None, "origin": (0.0, 0.0, 0.0)}
    return [
        (
            sim.tomogram,
            {"name": "simulated", "scale": (10.0, 10.0, 10.0), "metadata": meta},
            "image",
        )
    ]
