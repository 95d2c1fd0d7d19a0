import numpy as np

from cryosam.method.matching import (
    find_peaks,
    hierarchical_match,
    level_factors,
    naive_match,
    nms,
    pool,
    similarity,
)


def planted(shape=(16, 24, 24), c=32, spots=((4, 5, 6), (10, 18, 12), (12, 6, 20)), seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(c,) + shape).astype(np.float32)
    q = rng.normal(size=c).astype(np.float32)
    grid = np.indices(shape)
    for s in spots:
        bump = np.exp(-sum((g - a) ** 2 for g, a in zip(grid, s)) / 2.0)
        feats += 4 * q[:, None, None, None] * bump[None]
    return feats, q, np.array(spots)


def test_similarity_kinds():
    q = np.array([[1.0, 0.0]])
    f = np.array([[2.0, 0.0], [0.0, 1.0]]).T  # columns: parallel (longer), orthogonal
    np.testing.assert_allclose(similarity(f, q, "cosine"), [1.0, 0.0], atol=1e-6)
    dice = similarity(f, q, "dice")
    assert dice[0] < 1.0 and abs(dice[1]) < 1e-6  # magnitude mismatch costs


def test_level_factors_and_pool():
    assert level_factors((16, 8, 4), 4) == [4, 2, 1]
    assert level_factors((16, 8, 4), 8) == [2, 1]
    x = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4)
    p = pool(x, 2)
    assert p.shape == (2, 2, 2, 2) and p[0, 0, 0, 0] == x[0, :2, :2, :2].mean()


def test_hierarchical_finds_planted_matches_with_fewer_comparisons():
    feats, q, spots = planted()
    stride = 2
    hier = hierarchical_match(feats, stride, q[None], (8, 4, 2), tau_sim=0.5)
    zyx, scores = find_peaks(hier, radius_px=4, top_k=10, min_score=0.9)
    expected = spots * stride + (stride - 1) / 2
    assert len(zyx) == 3
    d = np.linalg.norm(zyx[:, None] - expected[None], axis=2).min(axis=1)
    assert (d <= stride).all()
    naive = naive_match(feats, stride, q[None], tuple(s * stride for s in feats.shape[1:]))
    assert naive.cell == 1 and sum(naive.evaluated) > 4 * sum(hier.evaluated)
    zyx_n, _ = find_peaks(naive, radius_px=4, top_k=10, min_score=0.9)
    assert len(zyx_n) == 3


def test_nms_is_euclidean():
    pts = np.array([[0, 0, 0], [3, 3, 3], [0, 0, 6.5]], dtype=float)  # 5.2 and 6.5 away
    keep = nms(pts, np.array([3.0, 2.0, 1.0]), radius=6.0, top_k=10)
    # a cube footprint of half-width 6 would suppress both; Euclidean keeps the far one
    assert keep.tolist() == [0, 2]
    assert nms(pts, np.array([3.0, 2.0, 1.0]), radius=6.0, top_k=1).tolist() == [0]


def test_closed_form_eigenvalues_match_lapack():
    from cryosam.volume.hessian import sym_eigvalsh

    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 3, 500))
    sym = (a + a.transpose(1, 0, 2)) / 2
    sym[:, :, :50] = np.eye(3)[:, :, None] * rng.normal(size=50)  # degenerate: multiples of I
    sym[:, :, 50:100] = 0.0
    sym[0, 0, 100:150] = 5.0  # two equal eigenvalues
    comp = [sym[0, 0], sym[0, 1], sym[0, 2], sym[1, 1], sym[1, 2], sym[2, 2]]
    ours = sym_eigvalsh(comp)
    ref = np.linalg.eigvalsh(np.moveaxis(sym, 2, 0))
    assert ours.shape == (500, 3)
    np.testing.assert_allclose(ours, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))
