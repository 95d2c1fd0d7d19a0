"""cryosam: training-free segmentation and particle picking in cryo-ET tomograms.

Arrays are ``(z, y, x)`` as :mod:`mrcfile` returns them; coordinates inside the
package are voxel indices ``(z, y, x)`` in float. File formats convert at the
boundary (see :mod:`cryosam.io`).
"""

from cryosam.config import Config
from cryosam.errors import CryosamError

__version__ = "0.1.0"
__all__ = ["Config", "CryosamError", "__version__"]
