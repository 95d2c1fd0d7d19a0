"""Random bytes into every reader: the only failure allowed is a CryosamError."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryosam.errors import CryosamError
from cryosam.io.copick_json import read_copick_json
from cryosam.io.prompts import read_prompt_csv
from cryosam.io.star import read_star
from cryosam.io.tomogram import read_tomogram

READERS = {
    "tomo.mrc": read_tomogram,
    "picks.star": read_star,
    "prompts.csv": read_prompt_csv,
    "picks.json": lambda p: read_copick_json(p, voxel_size=10.0),
}

MRC_LIKE = st.binary(min_size=0, max_size=2048) | st.builds(
    lambda head, tail: head + tail,
    st.binary(min_size=1024, max_size=1024),
    st.binary(max_size=512),
)


def _valid_mrc() -> bytes:
    import io
    import tempfile

    import mrcfile
    import numpy as np

    buf = io.BytesIO()
    with tempfile.NamedTemporaryFile(suffix=".mrc") as fh:
        with mrcfile.new(fh.name, overwrite=True) as mrc:
            mrc.set_data(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
            mrc.voxel_size = 10.0
        buf.write(open(fh.name, "rb").read())
    return buf.getvalue()


VALID_MRC = _valid_mrc()
MUTATED_MRC = st.lists(
    st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1, max_size=12
).map(lambda edits: _mutate(VALID_MRC, edits))


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for pos, val in edits:
        out[pos] = val
    return bytes(out)


MRC_LIKE = MRC_LIKE | MUTATED_MRC
TEXT_LIKE = st.text(max_size=400).map(str.encode) | st.binary(max_size=400)


@pytest.mark.parametrize("name", sorted(READERS))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_readers_only_raise_cryosam_errors(tmp_path, name, data):
    content = data.draw(MRC_LIKE if name.endswith(".mrc") else TEXT_LIKE)
    path = tmp_path / name
    path.write_bytes(content)
    try:
        READERS[name](path)
    except CryosamError:
        pass
