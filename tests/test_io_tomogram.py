import mrcfile
import numpy as np
import pytest

from cryosam.errors import CryosamError
from cryosam.io.tomogram import (
    read_header,
    read_tomogram,
    smallest_dtype,
    tomogram_stem,
    write_volume,
)
from tests.conftest import write_mrc


def test_read_float32_is_memory_mapped_and_keeps_header(mrc_path, blob_volume):
    tomo = read_tomogram(mrc_path)
    assert tomo.shape == (20, 32, 40)
    assert tomo.data.dtype == np.float32
    assert isinstance(tomo.data, np.memmap)
    np.testing.assert_array_equal(tomo.data, blob_volume)
    assert tomo.voxel_size == pytest.approx(10.0)
    assert tomo.origin == (7.0, 6.0, 5.0)  # header x, y, z = 5, 6, 7 -> (z, y, x)


@pytest.mark.parametrize(
    "dtype,mode", [(np.int8, 0), (np.int16, 1), (np.uint16, 6), (np.float16, 12)]
)
@pytest.mark.parametrize("compression", [None, "gzip", "bzip2"])
def test_read_every_mode_and_compression(tmp_path, dtype, mode, compression):
    data = (np.arange(2 * 3 * 4).reshape(2, 3, 4) - 5).astype(dtype)
    suffix = {None: ".mrc", "gzip": ".mrc.gz", "bzip2": ".rec.bz2"}[compression]
    path = write_mrc(tmp_path / f"t{suffix}", data, voxel_size=4.2, compression=compression)
    tomo = read_tomogram(path)
    assert tomo.mode == mode
    assert tomo.data.dtype == np.float32
    np.testing.assert_array_equal(tomo.data, data.astype(np.float32))
    assert tomo.voxel_size == pytest.approx(4.2)


@pytest.mark.parametrize("header_vs", [0.0, 1.0])
def test_unknown_voxel_size_needs_override(tmp_path, header_vs):
    path = write_mrc(tmp_path / "t.mrc", np.zeros((2, 2, 2), np.float32), voxel_size=header_vs)
    tomo = read_tomogram(path)
    assert tomo.voxel_size is None
    with pytest.raises(CryosamError, match="--voxel-size"):
        tomo.require_voxel_size()
    assert read_tomogram(path, voxel_size=7.5).require_voxel_size() == 7.5


def test_anisotropic_header_needs_and_takes_the_override(tmp_path):
    path = write_mrc(tmp_path / "a.mrc", np.zeros((2, 3, 4), np.float32), voxel_size=(10, 10, 12))
    with pytest.raises(CryosamError, match="anisotropic"):
        read_tomogram(path)
    assert read_tomogram(path, voxel_size=10.0).require_voxel_size() == 10.0
    assert read_header(path, voxel_size=10.0) == ((2, 3, 4), 10.0)
    with pytest.raises(CryosamError, match="anisotropic"):
        read_header(path)


def test_bad_voxel_size_override_refused(mrc_path):
    for bad in (0, -1, float("nan")):
        with pytest.raises(CryosamError, match="positive"):
            read_tomogram(mrc_path, voxel_size=bad)


def test_bad_files(tmp_path, blob_volume):
    with pytest.raises(CryosamError, match="no such file"):
        read_tomogram(tmp_path / "missing.mrc")
    text = tmp_path / "notes.mrc"
    text.write_text("hello, this is not a tomogram\n" * 100)
    with pytest.raises(CryosamError, match="not an MRC"):
        read_tomogram(text)
    good = write_mrc(tmp_path / "good.mrc", blob_volume)
    truncated = tmp_path / "truncated.mrc"
    truncated.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(CryosamError, match="truncated"):
        read_tomogram(truncated)
    nan = blob_volume.copy()
    nan[3, 4, 5] = np.nan
    with pytest.raises(CryosamError, match="NaN"):
        read_tomogram(write_mrc(tmp_path / "nan.mrc", nan))
    inf = blob_volume.copy()
    inf[-1, 0, 0] = np.inf
    with pytest.raises(CryosamError, match="infinite"):
        read_tomogram(write_mrc(tmp_path / "inf.mrc", inf))
    with pytest.raises(CryosamError, match="directory"):
        read_tomogram(tmp_path)


def test_header_data_size_mismatch(tmp_path, blob_volume):
    path = write_mrc(tmp_path / "m.mrc", blob_volume)
    with mrcfile.open(path, mode="r+", permissive=True) as mrc:
        mrc.header.nz = 40  # header claims twice the slices the file holds
    with pytest.raises(CryosamError, match="truncated|header"):
        read_tomogram(path)


def test_write_volume_modes_and_atomicity(tmp_path):
    labels = np.zeros((4, 5, 6), np.int64)
    labels[1, 2, 3] = 3
    out = write_volume(tmp_path / "sem.mrc", labels, 8.0, (1.0, 2.0, 3.0), kind="class")
    with mrcfile.open(out) as mrc:
        assert mrc.header.mode == 0
        assert float(mrc.voxel_size.x) == pytest.approx(8.0)
        assert (float(mrc.header.origin.z), float(mrc.header.origin.x)) == (1.0, 3.0)
        np.testing.assert_array_equal(mrc.data, labels)
    inst = labels * 1000
    out = write_volume(tmp_path / "inst.mrc", inst, 8.0, kind="instance")
    with mrcfile.open(out) as mrc:
        assert mrc.header.mode == 6
        assert int(mrc.data.max()) == 3000
    with pytest.raises(CryosamError, match="already exists"):
        write_volume(out, inst, 8.0, kind="instance")
    write_volume(out, inst * 0, 8.0, kind="instance", overwrite=True)
    with mrcfile.open(out) as mrc:
        assert int(mrc.data.max()) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inst.mrc", "sem.mrc"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import cryosam.io.tomogram as mod

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mod.mrcfile, "new", broken)
    with pytest.raises(CryosamError, match="No space left"):
        write_volume(tmp_path / "x.mrc", np.zeros((2, 2, 2)), 1.0)
    assert list(tmp_path.iterdir()) == []


def test_smallest_dtype():
    assert smallest_dtype(np.array([0, 127]), "class") == np.int8
    assert smallest_dtype(np.array([0, 128]), "class") == np.uint16
    assert smallest_dtype(np.array([0, 70000]), "instance") == np.float32
    with pytest.raises(CryosamError):
        smallest_dtype(np.array([-1]), "instance")


def test_tomogram_stem():
    assert tomogram_stem("/a/TS_01.rec.gz") == "TS_01"
    assert tomogram_stem("TS_01.mrc") == "TS_01"
    assert tomogram_stem("TS_01") == "TS_01"
    assert tomogram_stem("tomo.v2.mrc.bz2") == "tomo.v2"
