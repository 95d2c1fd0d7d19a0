import numpy as np
import pytest

from cryosam.eval.metrics import (
    dice_iou,
    f_beta,
    match_points,
    pr_curve,
    score_instances,
    score_pick_classes,
    score_picks,
)
from cryosam.io.picks import Picks


def line(*xs):
    return np.array([[0.0, 0.0, x] for x in xs])


def test_hungarian_beats_greedy_nearest():
    # greedy nearest-first would pair 1.1 with 2.0 and leave 3.0 without a partner
    pi, ti = match_points(line(1.1, 3.0), line(0.0, 2.0), radius=1.5)
    assert sorted(zip(pi.tolist(), ti.tolist())) == [(0, 0), (1, 1)]


def test_match_radius_and_one_to_one():
    pi, ti = match_points(line(0, 0.5, 10), line(0.2, 30), radius=2)
    assert len(pi) == 1 and ti.tolist() == [0]
    assert len(match_points(line(), line(1), 1)[0]) == 0
    assert len(match_points(line(1), line(), 1)[0]) == 0


def test_score_picks_counts_and_f_scores():
    true = line(0, 10, 20, 30)
    pred = line(0.5, 10.5, 50, 60, 70)
    s = score_picks(pred, true, radius=2)
    assert (s.tp, s.fp, s.fn) == (2, 3, 2)
    assert s.precision == pytest.approx(0.4) and s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert s.fbeta == pytest.approx(17 * 0.4 * 0.5 / (16 * 0.4 + 0.5))
    assert s.mean_distance == pytest.approx(0.5)
    assert f_beta(0, 0, 1) == 0


def test_pr_curve_ap_and_best_threshold():
    true = line(0, 10, 20)
    pred = line(0, 10, 100, 20)
    perfect = pr_curve(pred, np.array([4, 3, 1, 2]), true, radius=1)
    assert perfect["ap"] == pytest.approx(1.0)
    assert perfect["best_f1"] == pytest.approx(1.0) and perfect["best_threshold"] == 2
    worst = pr_curve(pred, np.array([4, 3, 9, 2]), true, radius=1)
    # ranks: miss, hit, hit, hit -> precision 0, 1/2, 2/3, 3/4 at recall 0, 1/3, 2/3, 1
    assert worst["ap"] == pytest.approx((0.75 + 0.75 + 0.75) / 3)
    assert worst["best_f1"] == pytest.approx(2 * 0.75 / 1.75)
    s = score_picks(pred, true, 1, scores=[4, 3, 9, 2])
    assert s.average_precision == pytest.approx(worst["ap"])


def test_ties_in_scores_are_cut_together():
    true = line(0)
    pred = line(0, 50)
    curve = pr_curve(pred, np.array([1.0, 1.0]), true, radius=1)
    # both picks share the score: the only honest cut keeps both (P=0.5, R=1)
    assert curve["best_f1"] == pytest.approx(2 / 3)


def test_score_pick_classes_uses_class_names_and_map():
    truth = Picks(line(0, 10, 20), class_name=["ribo", "ribo", "prot"])
    pred = Picks(line(0, 10, 20), class_name=["R", "R", "R"], score=[3, 2, 1])
    scores = score_pick_classes(pred, truth, {"ribo": 2, "prot": 2}, class_map={"R": "ribo"})
    assert (scores["ribo"].tp, scores["ribo"].fp) == (2, 1)
    assert scores["prot"].n_pred == 0 and scores["prot"].fn == 1


def test_dice_iou():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros_like(a)
    a[:2] = True  # 32 voxels
    b[1:3] = True  # 32 voxels, 16 shared
    d, i = dice_iou(a, b)
    assert d == pytest.approx(0.5) and i == pytest.approx(16 / 48)
    assert dice_iou(np.zeros(3, bool), np.zeros(3, bool)) == (1.0, 1.0)


def test_score_instances():
    true = np.zeros((10, 10, 10), np.uint16)
    pred = np.zeros_like(true)
    true[0:4, 0:4, 0:4] = 1
    true[6:9, 6:9, 6:9] = 2
    pred[0:4, 0:4, 0:3] = 7  # IoU 0.75 with 1
    pred[6:9, 6:9, 6:7] = 8  # IoU 1/3 with 2: not a match
    pred[5, 0, 0] = 9  # nothing
    s = score_instances(pred, true)
    assert (s["tp"], s["n_pred"], s["n_true"]) == (1, 3, 2)
    assert s["mean_iou"] == pytest.approx(0.75)


def test_evaluate_reads_relion5_truth_given_the_tomogram(tmp_path, capsys, mrc_path):
    """RELION 5 coordinates are centred: the tomogram's header gives the centre."""
    from cryosam.cli.main import main

    # mrc_path: 20 x 32 x 40 voxels at 10 Å; centre (x, y, z) = (20, 16, 10) voxels
    (tmp_path / "truth.star").write_text(
        "data_particles\nloop_\n_rlnTomoName #1\n_rlnCenteredCoordinateXAngst #2\n"
        "_rlnCenteredCoordinateYAngst #3\n_rlnCenteredCoordinateZAngst #4\n"
        "tomo -100 -80 0\ntomo 80 40 -40\n"
    )
    # the same particles as voxel z,y,x: x = 20 + X/10, y = 16 + Y/10, z = 10 + Z/10
    (tmp_path / "picks.csv").write_text("z,y,x,class\n10,8,10,particle\n6,20,28,particle\n")
    args = ["evaluate", str(tmp_path / "picks.csv"), "--truth", str(tmp_path / "truth.star")]
    assert main([*args, "--diameter", "60"]) == 2
    assert "--tomogram" in capsys.readouterr().err
    assert main([*args, "--diameter", "60", "--tomogram", str(mrc_path)]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if "particle" in ln)
    assert "| 1.000" in row  # both found: precision, recall and F1 of 1
