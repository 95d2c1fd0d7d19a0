"""Runs are all-or-nothing, locked against each other, and deterministic."""

import hashlib
import os
import subprocess
import sys

import pytest

from cryosam.cli.main import main
from cryosam.errors import CryosamError
from cryosam.io.outputs import LOCK, MANIFEST, acquire_lock, output_set
from cryosam.simulate import write_simulation
from tests.conftest import small_sim


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    sim = small_sim((40, 80, 80), {"ribosome": 0.05}, seed=12)
    write_simulation(sim, folder)
    z, y, x = sim.centres("ribosome")[0]
    return folder, f"{z:g},{y:g},{x:g}"


def pick_args(sim_dir, out):
    folder, point = sim_dir
    return [
        "pick",
        str(folder / "tomogram.mrc"),
        "--point",
        point,
        "--diameter",
        "290",
        "--out",
        str(out),
    ]


def digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("run.json", "preview.png")
    }


def test_same_input_same_outputs(sim_dir, tmp_path):
    assert main(pick_args(sim_dir, tmp_path / "a")) == 0
    assert main(pick_args(sim_dir, tmp_path / "b")) == 0
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert a == b and "picks.csv" in a and "masks/instances.mrc" in a


def test_interrupted_run_leaves_nothing(sim_dir, tmp_path, monkeypatch):
    import cryosam.app.pick as preview

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(preview, "write_pick_preview", interrupt)
    out = tmp_path / "interrupted"
    assert main(pick_args(sim_dir, out)) == 130
    assert not out.exists()  # picks.csv and masks were staged, never moved in


def test_failure_keeps_the_previous_results(sim_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "kept"
    assert main(pick_args(sim_dir, out)) == 0
    before = digest(out)
    import cryosam.app.pick as preview

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preview, "write_pick_preview", disk_full)
    assert main(pick_args(sim_dir, out) + ["--overwrite"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert digest(out) == before
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".cryosam")]
    assert leftovers == [MANIFEST]  # no staging folder, no lock: only the old set's manifest


def test_lock_refuses_a_second_writer_and_takes_over_a_stale_one(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / LOCK).write_text(str(other.pid))
        with pytest.raises(CryosamError, match=f"pid {other.pid}"):
            acquire_lock(folder)
    finally:
        other.kill()
        other.wait()
    lock = acquire_lock(folder)  # the holder is gone: stale lock taken over
    assert lock.read_text() == str(os.getpid())


def test_output_set_commits_only_on_success(tmp_path):
    with output_set(tmp_path / "ok") as staging:
        (staging / "a.txt").write_text("x")
        assert not (tmp_path / "ok" / "a.txt").exists()
    assert (tmp_path / "ok" / "a.txt").read_text() == "x"
    with pytest.raises(RuntimeError), output_set(tmp_path / "bad") as staging:
        (staging / "a.txt").write_text("x")
        raise RuntimeError("boom")
    assert not (tmp_path / "bad").exists()


def test_abandoned_staging_is_cleared_only_when_its_writer_is_gone(tmp_path):
    from cryosam.io.outputs import STAGING_PREFIX, clear_abandoned

    (tmp_path / (STAGING_PREFIX + "x")).mkdir()
    (tmp_path / LOCK).write_text(str(os.getpid()))  # a live writer: nothing is touched
    clear_abandoned(tmp_path)
    assert (tmp_path / LOCK).exists() and (tmp_path / (STAGING_PREFIX + "x")).exists()
    (tmp_path / LOCK).write_text("999999999")  # no such process
    clear_abandoned(tmp_path)
    assert not (tmp_path / LOCK).exists() and not list(tmp_path.glob(STAGING_PREFIX + "*"))


def test_results_written_meanwhile_by_another_run_are_not_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "picks.csv").write_text("the first run's picks")  # committed while we computed
    with pytest.raises(CryosamError, match="another run"):
        with output_set(out, ["picks.csv"], overwrite=False) as staging:
            (staging / "picks.csv").write_text("ours")
    assert (out / "picks.csv").read_text() == "the first run's picks"
    assert not (out / LOCK).exists()
    with output_set(out, ["picks.csv"], overwrite=True) as staging:
        (staging / "picks.csv").write_text("ours")
    assert (out / "picks.csv").read_text() == "ours"


def test_overwrite_replaces_the_whole_set_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    with output_set(out) as staging:
        for name in ("picks.csv", "components.csv", "masks/semantic.mrc"):
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text("old")
    (out / "my_notes.txt").write_text("the user's own file")
    with output_set(out, ["picks.csv"], overwrite=True) as staging:
        (staging / "picks.csv").write_text("new")
        (staging / "masks").mkdir()
        (staging / "masks" / "instances.mrc").write_text("new")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [".cryosam-outputs", "masks/instances.mrc", "my_notes.txt", "picks.csv"]
    assert (out / "picks.csv").read_text() == "new"


KILLED_AMONG_THE_MOVES = """
import os, signal, sys
from pathlib import Path
from cryosam.io import outputs
out = Path(sys.argv[1])
moves, real = [0], os.replace
def replace(a, b):
    if Path(b).parent == out or out in Path(b).parents:
        moves[0] += 1
        if moves[0] == 4:  # the journal, then two files: killed before the third
            os.kill(os.getpid(), signal.SIGKILL)
    real(a, b)
outputs.os.replace = replace
with outputs.output_set(out, ["picks.csv"], overwrite=True) as staging:
    for name in ("candidates.csv", "picks.csv", "run.json", "masks/semantic.mrc"):
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text("new")
"""


def test_a_run_killed_among_its_final_moves_leaves_the_old_set_or_the_new(tmp_path):
    """SIGKILL between the renames of a commit: the folder is mixed for a moment, but the
    journal says what was decided, and the next cryosam to take the folder (a run, recut,
    a batch resuming) finishes the commit: the new set whole, the old set's extra file gone,
    the user's own file kept, no lock or staging left."""
    import subprocess
    import sys

    from cryosam.io.outputs import JOURNAL, STAGING_PREFIX, clear_abandoned

    out = tmp_path / "out"
    with output_set(out) as staging:
        for name in ("candidates.csv", "picks.csv", "run.json", "components.csv"):
            (staging / name).write_text("old")
    (out / "my_notes.txt").write_text("the user's own file")
    done = subprocess.run([sys.executable, "-c", KILLED_AMONG_THE_MOVES, str(out)])
    assert done.returncode == -9
    assert (out / JOURNAL).exists() and (out / LOCK).exists()
    texts = {p.name: p.read_text() for p in out.glob("*.csv")}
    assert set(texts.values()) == {"old", "new"}  # mixed, until someone takes the folder
    clear_abandoned(out)  # the writer is dead: its commit is finished
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        ".cryosam-outputs",
        "candidates.csv",
        "masks/semantic.mrc",
        "my_notes.txt",
        "picks.csv",
        "run.json",
    ]
    assert all((out / f).read_text() == "new" for f in files if f[0] != "." and "notes" not in f)
    assert not list(out.glob(STAGING_PREFIX + "*")) and not (out / LOCK).exists()
