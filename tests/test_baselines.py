import numpy as np
import pytest

from cryosam.eval.baselines import exemplar_template_match, log_blob_pick, null_cutoff
from cryosam.eval.metrics import score_picks
from cryosam.method.rotations import rotation_grid
from tests.conftest import small_sim


@pytest.fixture(scope="module")
def sparse_sim():
    return small_sim((48, 96, 96), {"ribosome": 0.03, "ball": 0.01}, snr=2.0, seed=4)


def test_log_picker_finds_ribosomes_on_easy_data(sparse_sim):
    true = sparse_sim.centres("ribosome")
    zyx, scores, cutoff = log_blob_pick(sparse_sim.tomogram, 27.0, dark=True)
    s = score_picks(zyx, true, 13.0, scores)
    assert s.best_f1 > 0.8
    # the wrong contrast finds little
    zyx_w, scores_w, _ = log_blob_pick(sparse_sim.tomogram, 27.0, dark=False)
    assert score_picks(zyx_w, true, 13.0, scores_w).best_f1 < s.best_f1


def test_template_matching_from_one_exemplar(sparse_sim):
    true = sparse_sim.centres("ribosome")
    shape = np.asarray(sparse_sim.tomogram.shape)
    prompt = true[np.argmin(np.linalg.norm(true - shape / 2, axis=1))]
    zyx, scores, cutoff = exemplar_template_match(
        sparse_sim.tomogram, [prompt], 27.0, angular_step=60.0
    )
    s = score_picks(zyx, true, 13.0, scores)
    assert s.average_precision > 0.7
    # the prompted particle itself is the best match
    top = zyx[np.argmax(scores)]
    assert np.linalg.norm(top - prompt) < 4


def test_rotation_grid_and_null_cutoff():
    assert len(rotation_grid(30)) > len(rotation_grid(60)) > 1
    rng = np.random.default_rng(0)
    noise = rng.normal(size=100_000)
    cut = null_cutoff(noise, 1.0)
    assert 3.5 < cut < 5.0  # ~ isf(1e-5) = 4.26 sigma
    assert (noise > cut).sum() <= 5
