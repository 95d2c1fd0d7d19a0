"""cryosam: training-free segmentation and particle picking in cryo-ET tomograms.

Arrays are ``(z, y, x)`` as :mod:`mrcfile` returns them; coordinates inside the
package are voxel indices ``(z, y, x)`` in float. File formats convert at the
boundary (see :mod:`cryosam.io`).

The entry points a Python user needs::

    import cryosam
    tomo = cryosam.read_tomogram("TS_01.mrc")
    run = cryosam.pick(tomo, [cryosam.Prompt((60, 210, 305), "ribosome")],
                       {"ribosome": 28.0}, out="picks/")
    run.outcome.picks            # z, y, x, score, class of every accepted pick

They are imported on first use, so ``import cryosam`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "cryosam.config",
    "CryosamError": "cryosam.errors",
    "Prompt": "cryosam.io.prompts",
    "read_tomogram": "cryosam.io.tomogram",
    "pick": "cryosam.app.pick",
    "segment": "cryosam.app.segment",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cryosam' has no attribute {name!r}")
