"""`cryosam batch`: inputs, prompt routing, pooled queries, dask, resume, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryosam.app.batch import BatchSettings, Job, batch_keys, collect_inputs, plan_jobs
from cryosam.app.pick import PICK_OUTPUTS
from cryosam.cli.main import main
from cryosam.config import Config
from cryosam.errors import CryosamError
from cryosam.eval.metrics import score_picks
from cryosam.io.prompts import Prompt
from cryosam.method.pick import ClassQuery, pick_particles
from cryosam.simulate import write_simulation
from tests.conftest import small_sim, write_mrc

SHAPE = (48, 112, 112)


@pytest.fixture(scope="module")
def tomos(tmp_path_factory):
    """Three small simulated tomograms with ribosomes, and their truth."""
    root = tmp_path_factory.mktemp("batch")
    sims = {}
    for k, seed in enumerate((41, 42, 43), start=1):
        sim = small_sim(SHAPE, {"ribosome": 0.05, "ball": 0.01}, seed=seed)
        write_simulation(sim, root / f"sim{k}", overwrite=True)
        (root / "tomos").mkdir(exist_ok=True)
        os.replace(root / f"sim{k}" / "tomogram.mrc", root / "tomos" / f"t{k}.mrc")
        sims[f"t{k}"] = sim
    return root, sims


def _central(sim) -> str:
    ribos = sim.centres("ribosome")
    c = ribos[np.argmin(np.linalg.norm(ribos - np.asarray(SHAPE) / 2, axis=1))]
    return ",".join(f"{v:g}" for v in c) + ":ribosome"


def _outputs_state(folder: Path) -> str:
    present = [(folder / n).exists() for n in PICK_OUTPUTS]
    return "all" if all(present) else ("none" if not any(present) else "partial")


def test_collect_inputs_folders_globs_lists(tmp_path, blob_volume):
    for name in ("a.mrc", "b.rec", "c.mrc.gz"):
        write_mrc(tmp_path / name, blob_volume, compression="gzip" if name.endswith("gz") else None)
    (tmp_path / "notes.txt").write_text("x")
    names = [p.name for p in collect_inputs([str(tmp_path)])]
    assert names == ["a.mrc", "b.rec", "c.mrc.gz"]
    assert [p.name for p in collect_inputs([str(tmp_path / "*.mrc")])] == ["a.mrc"]
    lst = tmp_path / "list.txt"
    lst.write_text("# two of them\nb.rec\n\na.mrc  # first\n")
    assert [p.name for p in collect_inputs([str(lst)])] == ["b.rec", "a.mrc"]
    lst.write_text("a.mrc\nmissing.mrc\n")
    with pytest.raises(CryosamError, match="names .*missing.mrc, which is not a file"):
        collect_inputs([str(lst)])
    (tmp_path / "sub").mkdir()
    write_mrc(tmp_path / "sub" / "a.map", blob_volume)
    with pytest.raises(CryosamError, match="share the output folder"):
        collect_inputs([str(tmp_path / "a.mrc"), str(tmp_path / "sub" / "a.map")])
    with pytest.raises(CryosamError, match="no such file"):
        collect_inputs([str(tmp_path / "missing.mrc")])
    with pytest.raises(CryosamError, match="matches no file"):
        collect_inputs([str(tmp_path / "*.st")])
    (tmp_path / "config.json").write_text('{"pickable_objects": []}')
    with pytest.raises(CryosamError, match="cryosam copick"):
        collect_inputs([str(tmp_path / "config.json")])


def test_prompt_rows_go_to_their_tomogram(tmp_path, blob_volume):
    paths = [write_mrc(tmp_path / f"{n}.mrc", blob_volume) for n in ("a", "b", "c")]
    csv = tmp_path / "prompts.csv"
    csv.write_text("z,y,x,class,tomogram\n10,8,10,ball,b.mrc\n10,20,28,ball,b\n6,24,10,ring,\n")
    jobs = plan_jobs(paths, ["1,2,3:ball"], [], csv, tmp_path / "out", reference="c.mrc")
    by = {j.name: j for j in jobs}
    assert [p.zyx for p in by["b"].prompts] == [(10, 8, 10), (10, 20, 28)]
    # --point and rows naming no tomogram belong to the reference
    assert [(p.zyx, p.class_name) for p in by["c"].prompts] == [
        ((1, 2, 3), "ball"),
        ((6, 24, 10), "ring"),
    ]
    assert by["a"].prompts == [] and by["a"].out == tmp_path / "out" / "a"
    csv.write_text("z,y,x,tomogram\n10,8,10,elsewhere.mrc\n")
    with pytest.raises(CryosamError, match="elsewhere.mrc"):
        plan_jobs(paths, [], [], csv, tmp_path / "out")
    with pytest.raises(CryosamError, match="--reference d"):
        plan_jobs(paths, ["1,2,3"], [], None, tmp_path / "out", reference="d")
    with pytest.raises(CryosamError, match="no positive prompts"):
        plan_jobs(paths, [], ["1,2,3"], None, tmp_path / "out")


def test_a_corrected_prompt_redoes_every_tomogram_its_query_reaches(tmp_path, blob_volume):
    paths = [write_mrc(tmp_path / f"{n}.mrc", blob_volume) for n in ("a", "b")]
    settings = BatchSettings(["100"], Config())

    def keys(point):
        a = Job(paths[0], "a", tmp_path / "a", [Prompt(point, "ball")])
        return batch_keys([a, Job(paths[1], "b", tmp_path / "b")], settings)

    first, corrected = keys((10, 8, 10)), keys((10, 20, 28))
    assert first["a"] != corrected["a"]
    assert first["b"] != corrected["b"]  # b searches with a's query: it must be redone too
    assert keys((10, 8, 10)) == first


def test_pooled_query_round_trip_and_weights():
    a = ClassQuery(np.array([1.0, 0.0], np.float32), 20.0, 100.0, 3, True, "classical")
    b = ClassQuery(np.array([0.0, 1.0], np.float32), 24.0, 300.0, 1, True, "classical")
    back = ClassQuery.from_dict(json.loads(json.dumps(a.to_dict())))
    assert np.allclose(back.vector, a.vector) and back.n_prompts == 3 and back.inverted
    pooled = ClassQuery.pool([a, b])
    assert np.allclose(pooled.vector, [0.75, 0.25]) and pooled.n_prompts == 4
    assert pooled.diameter_px == pytest.approx(21.0) and pooled.ref_voxels == 200.0
    with pytest.raises(CryosamError, match="different encoders"):
        ClassQuery.pool([a, ClassQuery(b.vector, 24.0, 300.0, 1, True, "dinov2")])


def test_query_from_one_tomogram_picks_another(tomos):
    _, sims = tomos
    a, b = sims["t1"], sims["t2"]
    zyx = tuple(float(v) for v in _central(a).split(":")[0].split(","))
    ref = pick_particles(a.tomogram, [Prompt(zyx, "ribosome")], {"ribosome": 29.0})
    given = ref.queries["ribosome"].reference
    template = given.template.copy()
    out = pick_particles(b.tomogram, [], {}, queries=ref.queries)
    s = score_picks(out.picks.of_class("ribosome").zyx, b.centres("ribosome"), 14.0)
    assert s.f1 > 0.8, s.as_row()
    assert out.reports[0].n_prompts == 0 and out.inverted == ref.inverted
    # the query's reference is the caller's: refining it on b did not change it
    assert ref.queries["ribosome"].reference is given
    assert np.array_equal(given.template, template)
    assert out.queries["ribosome"].reference is not given
    # a tomogram without any particle: no picks, no error
    for seed in (0, 1):
        empty = np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)
        none = pick_particles(empty, [], {}, queries=ref.queries)
        assert len(none.picks) == 0, none.reports[0]


def test_batch_on_a_local_cluster_with_a_broken_input(tomos, capsys, monkeypatch):
    root, sims = tomos
    (root / "tomos" / "broken.mrc").write_bytes(b"not a tomogram at all")
    out = root / "out"
    argv = [
        "batch",
        str(root / "tomos"),
        "--point",
        _central(sims["t1"]),
        "--reference",
        "t1",
        "--diameter",
        "290",
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    try:
        assert main(argv) == 2  # one input failed: the others still finished
    finally:
        (root / "tomos" / "broken.mrc").unlink()
    summary = pd.read_csv(out / "summary.csv").set_index("tomogram")
    assert summary.loc["broken.mrc", "status"] == "failed"
    assert "cannot read as MRC" in summary.loc["broken.mrc", "message"]
    for name in ("t1", "t2", "t3"):
        assert summary.loc[f"{name}.mrc", "status"] == "done"
        picks = pd.read_csv(out / name / "picks.csv")
        assert summary.loc[f"{name}.mrc", "n_ribosome"] == len(picks)
        truth = sims[name].centres("ribosome")
        s = score_picks(picks[["z", "y", "x"]].to_numpy(), truth, 14.0)
        assert s.f1 > 0.8, (name, s.as_row())
        run = json.loads((out / name / "run.json").read_text())
        assert run["batch"]["pooled_classes"] == ([] if name == "t1" else ["ribosome"])
    assert "1 failed" in capsys.readouterr().out
    # every finished tomogram's picks in one STAR file and one Dynamo table
    import dynamotable
    import starfile

    merged = starfile.read(out / "particles.star")["particles"]
    counts = merged["rlnMicrographName"].value_counts()
    for name in ("t1", "t2", "t3"):
        assert counts[f"{name}.mrc"] == len(pd.read_csv(out / name / "picks.csv"))
    tbl = dynamotable.read(str(out / "particles.tbl"))
    assert sorted(set(tbl["tomo"])) == [1, 2, 3] and len(tbl) == len(merged)
    doc = (out / "particles.doc").read_text().splitlines()
    assert [line.split()[1].rsplit("/", 1)[-1] for line in doc] == ["t1.mrc", "t2.mrc", "t3.mrc"]
    assert not (out / "relion5_import.star").exists()  # RELION 3 files: no RELION 5 index
    # rerun: everything finished is skipped, nothing is recomputed
    mtime = (out / "t2" / "picks.csv").stat().st_mtime_ns
    argv_ok = argv[:-1] + ["0"]  # in this process this time
    assert main(argv_ok) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.status) == {"skipped"} and len(summary) == 3
    assert (out / "t2" / "picks.csv").stat().st_mtime_ns == mtime
    # all finished: skipped without starting a cluster, even when workers are asked for
    import dask.distributed

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started to skip finished tomograms")

    monkeypatch.setattr(dask.distributed, "LocalCluster", no_cluster)
    assert main(argv) == 0
    assert set(pd.read_csv(out / "summary.csv").status) == {"skipped"}
    monkeypatch.undo()
    # other settings over finished outputs: refused up front, unless --overwrite
    changed = [a if a != "290" else "250" for a in argv_ok]
    assert main(changed) == 2
    assert "holds outputs of a different run" in capsys.readouterr().err
    assert set(pd.read_csv(out / "summary.csv").status) == {"skipped"}


def test_interrupted_batch_keeps_finished_tomograms_and_resumes(tomos, tmp_path):
    root, sims = tomos
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "cryosam",
        "batch",
        str(root / "tomos"),
        "--point",
        _central(sims["t1"]),
        "-r",
        "t1",
        "--diameter",
        "290",
        "--out",
        str(out),
        "--workers",
        "0",
        "--no-cache",
    ]
    # Ctrl-C as a terminal delivers it: the child starts with SIGINT's default action, not
    # with whatever this test process inherited or was left with (an ignored SIGINT is
    # inherited across exec, and Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 400  # a loaded machine takes minutes over the first tomogram
    while not (out / "t1" / "run.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-500:]
    assert b"interrupted" in err
    states = {n: _outputs_state(out / n) for n in ("t1", "t2", "t3")}
    assert states["t1"] == "all" and "partial" not in states.values(), states
    assert not list(out.rglob(".cryosam-staging-*")) and not list(out.rglob(".cryosam.lock"))
    finished = [n for n, s in states.items() if s == "all"]
    done = subprocess.run(cmd, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    summary = pd.read_csv(out / "summary.csv").set_index("tomogram")
    for n in ("t1", "t2", "t3"):
        want = "skipped" if n in finished else "done"
        assert summary.loc[f"{n}.mrc", "status"] == want


def test_two_rounds_pick_prompted_first_then_search_the_rest_with_pooled_queries():
    from cryosam.app.runner import Runner, pick_in_two_rounds

    items = {"a": ["ribo", "ball"], "b": ["ribo"], "c": [], "d": ["ball"]}
    calls = []
    q = ClassQuery(np.ones(2, np.float32), 10.0, 100.0, 1, True, "classical").to_dict()

    def work(name, queries, query_only):
        calls.append((name, sorted(queries), query_only))
        if name == "d":
            return {"name": name, "status": "failed"}
        status = "queried" if query_only else "done"
        return {"name": name, "status": status, "queries": {c: q for c in items[name]}}

    def call(name, queries, query_only):
        return work, (name, queries, query_only)

    crashed = lambda args, msg: {"name": args[0], "status": "failed"}  # noqa: E731
    rows = list(
        pick_in_two_rounds(
            Runner(None, 0, 1),
            list(items),
            items.get,
            str,
            lambda r: r["name"],
            call,
            lambda n: {"name": n, "status": "failed"},
            crashed,
        )
    )
    # a: every class prompted -> picked at once; b, d: only queried first; d failed: not rerun
    assert calls[:3] == [("a", [], False), ("b", [], True), ("d", [], True)]
    assert calls[3:] == [("b", ["ball", "ribo"], False), ("c", ["ball", "ribo"], False)]
    assert [n for n, r in rows if r["status"] != "queried"] == ["a", "d", "b", "c"]
    # nothing prompted could be read: the unprompted get the no-query row, nothing runs
    calls.clear()
    items["a"], items["b"] = [], []
    rows = list(
        pick_in_two_rounds(
            Runner(None, 0, 1),
            ["c", "d"],
            items.get,
            str,
            lambda r: r["name"],
            call,
            lambda n: {"name": n, "status": "no query"},
            crashed,
        )
    )
    assert [r["status"] for _, r in rows] == ["failed", "no query"] and len(calls) == 1


def test_an_unreachable_scheduler_leaves_no_lock(tmp_path, blob_volume, capsys, monkeypatch):
    import cryosam.app.batch as batch
    from cryosam.io.outputs import LOCK

    def unreachable(scheduler, workers, threads):  # as Runner says after its 20 s timeout
        raise CryosamError(f"cannot reach the dask scheduler {scheduler}: timed out")

    monkeypatch.setattr(batch, "Runner", unreachable)
    path = write_mrc(tmp_path / "a.mrc", blob_volume)
    out = tmp_path / "out"
    argv = ["batch", str(path), "--point", "10,8,10", "-d", "60", "--out", str(out)]
    assert main([*argv, "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the dask scheduler" in capsys.readouterr().err
    assert not (out / LOCK).exists()
