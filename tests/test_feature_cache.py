"""Feature cache: hit on a rerun with new prompts, miss on a changed input or backend,
rebuild of an incomplete store, `cryosam cache ls|clear`."""

import numpy as np
import pytest

from cryosam.cli.main import main
from cryosam.config import Config
from cryosam.io.prompts import Prompt
from cryosam.method.pick import pick_particles
from cryosam.models.cache import FeatureCache, cache_key
from cryosam.models.classical_encoder import ClassicalEncoder
from cryosam.models.features import FeatureVolume
from tests.conftest import small_sim

FEATURES_ONLY = Config(verify=False)
"""The cache holds features: the picks that read them need no verification (a third of the time)."""


@pytest.fixture(scope="module")
def sim():
    return small_sim((40, 80, 80), {"ribosome": 0.05}, seed=17)


def counting_encoder(monkeypatch):
    calls = []
    original = ClassicalEncoder.encode

    def encode(self, volume, diameter_px, progress=None):
        calls.append(diameter_px)
        return original(self, volume, diameter_px, progress)

    monkeypatch.setattr(ClassicalEncoder, "encode", encode)
    return calls


def test_rerun_with_new_prompts_reuses_features(sim, tmp_path, monkeypatch):
    calls = counting_encoder(monkeypatch)
    cache = FeatureCache(tmp_path)
    ribos = sim.centres("ribosome")
    first = pick_particles(
        sim.tomogram,
        [Prompt(tuple(ribos[0]), "ribosome")],
        {"ribosome": 29.0},
        config=FEATURES_ONLY,
        cache=cache,
        input_sha256="abc",
    )
    second = pick_particles(
        sim.tomogram,
        [Prompt(tuple(ribos[1]), "ribosome")],
        {"ribosome": 29.0},
        config=FEATURES_ONLY,
        cache=cache,
        input_sha256="abc",
    )
    assert len(calls) == 1
    assert first.reports[0].feature_cache == "miss" and second.reports[0].feature_cache == "hit"
    # another input (checksum) or another size is a miss, never a stale hit
    pick_particles(
        sim.tomogram,
        [Prompt(tuple(ribos[1]), "ribosome")],
        {"ribosome": 29.0},
        config=FEATURES_ONLY,
        cache=cache,
        input_sha256="other",
    )
    pick_particles(
        sim.tomogram,
        [Prompt(tuple(ribos[1]), "ribosome")],
        {"ribosome": 35.0},
        config=FEATURES_ONLY,
        cache=cache,
        input_sha256="abc",
    )
    assert len(calls) == 3


def test_keys_depend_on_everything_that_shapes_features():
    base = cache_key("sha", {"name": "classical", "version": 1}, 29.0, True)
    assert base == cache_key("sha", {"name": "classical", "version": 1}, 29.0, True)
    assert base != cache_key("sha2", {"name": "classical", "version": 1}, 29.0, True)
    assert base != cache_key("sha", {"name": "classical", "version": 2}, 29.0, True)
    assert base != cache_key("sha", {"name": "classical", "version": 1}, 31.0, True)
    assert base != cache_key("sha", {"name": "classical", "version": 1}, 29.0, False)


def test_incomplete_store_is_rebuilt(tmp_path):
    import zarr

    cache = FeatureCache(tmp_path)
    feats = FeatureVolume(np.ones((2, 4, 5, 6), np.float16), 2, ["a", "b"], (8, 10, 12))
    path = cache.save("k", feats, {"encoder": "classical"})
    zarr.open_group(str(path), mode="r+").attrs["complete"] = False  # as if interrupted
    assert cache.load("k") is None
    rebuilt, hit = cache.get_or_compute("k", lambda: feats, {"encoder": "classical"})
    assert not hit and cache.load("k") is not None
    np.testing.assert_array_equal(cache.load("k").data, feats.data)


def test_cli_cache_ls_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRYOSAM_CACHE", str(tmp_path))
    feats = FeatureVolume(np.zeros((1, 2, 2, 2), np.float16), 1, ["a"], (2, 2, 2))
    FeatureCache().save("k1", feats, {"encoder": "classical", "input_sha256": "f" * 64})
    assert main(["cache", "ls"]) == 0
    assert "k1" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert FeatureCache().entries() == []


def test_concurrent_writers_never_expose_a_partial_store(tmp_path):
    """Eight threads save the same key at once while readers look: every read is either
    absent or the complete, correct store; no private folder is left behind."""
    import threading

    cache = FeatureCache(tmp_path)
    data = np.random.default_rng(0).normal(size=(3, 20, 40, 40)).astype(np.float16)
    feats = FeatureVolume(data, 2, ["a", "b", "c"], (40, 80, 80))
    seen, errors = [], []

    def write():
        try:
            cache.save("same", feats, {"encoder": "classical"})
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    def read():
        for _ in range(20):
            got = cache.load("same")
            seen.append(None if got is None else bool(np.array_equal(got.data, data)))

    threads = [threading.Thread(target=write) for _ in range(8)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(s in (None, True) for s in seen)
    np.testing.assert_array_equal(cache.load("same").data, data)
    assert [p.name for p in tmp_path.iterdir()] == ["same.zarr"]


def test_damaged_store_is_recomputed_with_a_warning_and_listed_as_such(tmp_path):
    cache = FeatureCache(tmp_path)
    rng = np.random.default_rng(0)
    feats = FeatureVolume(
        rng.normal(size=(2, 40, 70, 70)).astype(np.float16), 2, ["a", "b"], (80,) * 3
    )
    path = cache.save("k", feats, {"encoder": "classical"})
    chunks = sorted(f for f in (path / "data").rglob("*") if f.is_file() and f.name != "zarr.json")
    assert len(chunks) > 1
    chunks[-1].unlink()  # zarr would read the lost chunk back as zeros
    assert cache.load("k") is None
    assert [r["complete"] for r in cache.entries()] == [False]
    heard = []
    again, hit = cache.get_or_compute("k", lambda: feats, {"encoder": "classical"}, heard.append)
    assert not hit and len(heard) == 1 and "checksum" in heard[0] and "recomputing" in heard[0]
    np.testing.assert_array_equal(cache.load("k").data, feats.data)
    assert [r["complete"] for r in cache.entries()] == [True]


def test_a_cache_that_cannot_be_written_warns_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    cache = FeatureCache(blocker / "features")
    feats = FeatureVolume(np.ones((1, 2, 2, 2), np.float16), 1, ["a"], (2, 2, 2))
    heard = []
    got, hit = cache.get_or_compute("k", lambda: feats, {"encoder": "classical"}, heard.append)
    assert got is feats and not hit
    assert len(heard) == 1 and "not written" in heard[0] and "--no-cache" in heard[0]
