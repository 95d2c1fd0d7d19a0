"""The command line: `cryosam info` and the bad-input contract (one line, exit 2)."""

import subprocess
import sys

import numpy as np

from cryosam.cli.main import main
from tests.conftest import write_mrc


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_prints_shape_and_voxel_size(capsys, mrc_path):
    code, out, err = run(capsys, "info", mrc_path)
    assert code == 0, err
    assert "shape (z, y, x): 20 x 32 x 40" in out
    assert "voxel size: 10 Å" in out
    assert "estimated memory for a run:" in out
    assert "dark protein" in out  # the fixture has dark balls


def test_info_on_gzip_int8(capsys, tmp_path):
    data = np.random.default_rng(1).integers(-100, 100, (6, 7, 8)).astype(np.int8)
    path = write_mrc(tmp_path / "tomo.mrc.gz", data, voxel_size=13.48, compression="gzip")
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    assert "shape (z, y, x): 6 x 7 x 8" in out
    assert "voxel size: 13.48 Å" in out
    assert "int8 (MRC mode 0)" in out


def test_info_unknown_voxel_size_and_override(capsys, tmp_path):
    path = write_mrc(tmp_path / "t.mrc", np.random.rand(4, 5, 6).astype(np.float32), 1.0)
    code, out, _ = run(capsys, "info", path)
    assert code == 0 and "voxel size: unknown" in out
    code, out, _ = run(capsys, "info", path, "--voxel-size", "6.5", "--diameter", "130")
    assert code == 0 and "voxel size: 6.5 Å" in out and "= 20.0 voxels" in out


def _bad_inputs(tmp_path, blob_volume):
    good = write_mrc(tmp_path / "good.mrc", blob_volume)
    trunc = tmp_path / "trunc.mrc"
    trunc.write_bytes(good.read_bytes()[:2000])
    text = tmp_path / "text.mrc"
    text.write_text("not a tomogram\n" * 200)
    nan = blob_volume.copy()
    nan[0, 0, 0] = np.nan
    return [
        (["info", tmp_path / "missing.mrc"], "no such file"),
        (["info", text], "not an MRC"),
        (["info", trunc], "truncated"),
        (["info", write_mrc(tmp_path / "nan.mrc", nan)], "NaN"),
        (["info", good, "--voxel-size", "0"], "positive"),
        (["info", good, "--diameter", "-5"], "--diameter"),
    ]


def test_bad_input_table_one_line_exit_2(capsys, tmp_path, blob_volume):
    for args, match in _bad_inputs(tmp_path, blob_volume):
        code, out, err = run(capsys, *args)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("cryosam: error:") and match in lines[0], lines[0]
        assert "Traceback" not in err


def test_debug_shows_traceback(capsys, tmp_path):
    code, _, err = run(capsys, "--debug", "info", tmp_path / "missing.mrc")
    assert code == 2 and "Traceback" in err


def test_usage_errors_exit_2(capsys):
    code, _, _ = run(capsys, "info")
    assert code == 2
    code, _, _ = run(capsys, "no-such-command")
    assert code == 2


def test_console_script_help_and_subcommands():
    proc = subprocess.run(
        [sys.executable, "-m", "cryosam", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for cmd in ("info", "segment", "pick", "evaluate", "simulate", "demo", "models", "batch"):
        assert cmd in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-c", "import cryosam.cli, sys; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
    )
    for heavy in ("scipy", "pandas", "torch", "dask", "matplotlib"):
        assert f"'{heavy}'" not in proc.stdout, f"{heavy} imported at CLI start-up"


def test_a_huge_header_is_reported_and_refused_before_the_data_is_read(capsys, tmp_path):
    import mrcfile

    path = write_mrc(tmp_path / "huge.mrc", np.zeros((4, 5, 6), np.float32))
    with mrcfile.open(path, "r+", permissive=True) as m:
        m.header.nz, m.header.ny, m.header.nx = 2000, 4000, 4000  # 128 GB claimed
    code, out, err = run(capsys, "info", path)
    assert "shape (z, y, x): 2000 x 4000 x 4000" in out and "estimated memory" in out
    assert code == 2 and "truncated" in err  # the data pass comes after
    code, _, err = run(capsys, "pick", path, "--point", "1,1,1", "-d", "100", "-o", tmp_path / "o")
    assert code == 2 and "needs about" in err  # memory refused from the header alone


def test_help_shows_value_forms_not_python_types(capsys):
    for command in ("pick", "segment", "copick", "simulate", "evaluate"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        assert "<bool>" not in out and "<list[" not in out, command
    _, out, _ = run(capsys, "pick", "--help")
    assert "Z,Y,X[:CLASS]" in out and "NAME=VALUE" in out


def test_copick_takes_its_config_as_copick_does(capsys, tmp_path):
    code, _, err = run(capsys, "copick")
    assert code == 2 and "-c/--config" in err
    code, _, err = run(capsys, "copick", tmp_path / "a.json", "-c", tmp_path / "b.json")
    assert code == 2 and "once" in err


def test_many_prompts_are_warned_about_before_the_work_and_stages_say_their_time(
    capsys, tmp_path, mrc_path, monkeypatch
):
    import cryosam.cli.app as cli_app

    monkeypatch.setattr(cli_app, "MANY_PROMPTS", 2)
    pts = ["10,8,10", "10,20,28", "6,24,10"]
    args = ["pick", mrc_path, *[a for p in pts for a in ("--point", p)], "-d", "60"]
    code, _, err = run(capsys, *args, "-o", tmp_path / "o")
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("warning: 3 prompts")  # first, before any stage
    stages = [ln for ln in lines if ln.startswith("  ")]
    assert stages and all(ln.rstrip().endswith(" s)") for ln in stages)
