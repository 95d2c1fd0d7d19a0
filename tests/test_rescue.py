"""The pick's wiring of the rescue of rejected matches (``verify_rescue_from_blobs``)."""

from __future__ import annotations

import numpy as np

import cryosam.method.pick as pick_module
from cryosam.app.pick import pick
from cryosam.config import Config
from cryosam.method.candidates import Status
from tests.conftest import clicked_ribosomes


def test_a_rescued_match_reaching_the_cut_is_picked_and_the_cut_stays(monkeypatch):
    sim, tomo, prompts, diam = clicked_ribosomes("rescue")
    calls = []

    def lift_best_rejected(volume, zyx, corr, score, below, keep, d, config, ref):
        calls.append((np.array(score), np.array(below), np.array(keep)))
        score = np.array(score)
        best = np.flatnonzero(below)[np.argmax(score[below])]
        score[best] += 10.0
        return np.array(zyx), np.array(corr), score

    off = pick(tomo, prompts, diam, cache=False, config=Config(verify_rescue_from_blobs=False))
    assert not calls
    monkeypatch.setattr(pick_module, "rescue_from_blobs", lift_best_rejected)
    on = pick(tomo, prompts, diam, cache=False).outcome
    off = off.outcome
    ((score, below, keep),) = calls
    cut = on.reports[0].cut
    assert cut == off.reports[0].cut and below.any()
    assert np.all(score[below] < cut) and len(keep) >= 2  # the prompt and the accepted
    rescued = np.flatnonzero(below)[np.argmax(score[below])]
    assert on.candidate_status[rescued] != str(Status.BELOW_CUT)
    assert off.candidate_status[rescued] == str(Status.BELOW_CUT)
    assert len(on.picks) + np.sum(on.candidate_status == str(Status.STRAY)) >= len(off.picks)
