"""File formats: tomograms (MRC), picks (CSV, RELION 3/5 STAR, copick JSON) and prompts.

All conversions between cryosam's voxel ``(z, y, x)`` and file conventions live in
:mod:`cryosam.io.coords`.
"""

from cryosam.io.copick_json import read_copick_json, write_copick_json
from cryosam.io.picks import Picks, read_picks_csv, write_picks_csv
from cryosam.io.prompts import Prompt, parse_point, read_prompt_file
from cryosam.io.star import read_star, write_star
from cryosam.io.tomogram import Tomogram, read_tomogram, tomogram_stem, write_volume

__all__ = [
    "Picks",
    "Prompt",
    "Tomogram",
    "parse_point",
    "read_copick_json",
    "read_picks_csv",
    "read_prompt_file",
    "read_star",
    "read_tomogram",
    "tomogram_stem",
    "write_copick_json",
    "write_picks_csv",
    "write_star",
    "write_volume",
]
