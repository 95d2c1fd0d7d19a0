import pytest

from cryosam.errors import CryosamError
from cryosam.io.prompts import (
    parse_point,
    prompts_for_tomogram,
    read_prompt_csv,
    read_prompt_file,
    validate_prompts,
)


def test_parse_point_forms():
    p = parse_point("10,20.5,30")
    assert p.zyx == (10.0, 20.5, 30.0) and p.class_name == "particle" and not p.negative
    assert parse_point("1,2,3:ribosome").class_name == "ribosome"
    neg = parse_point("1,2,3", negative=True)
    assert neg.negative and neg.class_name is None  # applies to every class
    assert parse_point("1,2,3:ring", negative=True).class_name == "ring"
    for bad in ("1,2", "a,b,c", "1,2,3,4", "1,2,nan", "1,2,3:bad name"):
        with pytest.raises(CryosamError):
            parse_point(bad)


def test_prompt_csv_any_order_and_options(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text(
        "tomogram,x,y,z,class,negative\n"
        "TS_01.mrc,3,2,1,ribosome,0\n"
        "TS_02,6,5,4,,1\n"
        "TS_01.rec.gz,9,8,7,ring,1\n"
    )
    prompts = read_prompt_csv(path)
    assert [p.zyx for p in prompts] == [(1, 2, 3), (4, 5, 6), (7, 8, 9)]
    assert [p.class_name for p in prompts] == ["ribosome", None, "ring"]
    assert [p.negative for p in prompts] == [False, True, True]
    mine = prompts_for_tomogram(prompts, "/data/TS_01.mrc")
    assert [p.zyx for p in mine] == [(1, 2, 3), (7, 8, 9)]


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "not a readable CSV"),
        ("z,y,x\n", "no rows"),
        ("a,b,c\n1,2,3\n", "lacks column"),
        ("z,y,x\n1,2,three\n", "line 2"),
        ("z,y,x,negative\n1,2,3,maybe\n", "negative"),
    ],
)
def test_bad_prompt_csv(tmp_path, text, match):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(CryosamError, match=match):
        read_prompt_csv(path)


def test_prompt_file_types(tmp_path):
    with pytest.raises(CryosamError, match="unknown prompt file type"):
        (tmp_path / "p.xyz").write_text("1 2 3")
        read_prompt_file(tmp_path / "p.xyz")
    with pytest.raises(CryosamError, match="no such file"):
        read_prompt_file(tmp_path / "none.csv")
    (tmp_path / "cut.mod").write_bytes(b"IMODV1.2IMOD-NewModel" + bytes(40))
    with pytest.raises(CryosamError, match="cannot read as an IMOD model"):
        read_prompt_file(tmp_path / "cut.mod")


def test_validate_prompts():
    shape = (10, 20, 30)
    with pytest.raises(CryosamError, match="no prompts"):
        validate_prompts([], shape)
    with pytest.raises(CryosamError, match="only negative"):
        validate_prompts([parse_point("1,1,1", negative=True)], shape)
    with pytest.raises(CryosamError, match="outside the volume"):
        validate_prompts([parse_point("10,1,1")], shape)
    validate_prompts([parse_point("9,19,29"), parse_point("0,0,0", negative=True)], shape)


def test_tsv_prompts_are_tab_separated(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("z\ty\tx\tclass\n1\t2\t3\tribosome\n")
    [p] = read_prompt_file(path)
    assert p.zyx == (1, 2, 3) and p.class_name == "ribosome"


@pytest.mark.parametrize("row", ["5,1,2,3", "1,2,3,", "1,2"])
def test_rows_whose_field_count_differs_from_the_header_are_refused(tmp_path, row):
    path = tmp_path / "p.csv"
    path.write_text(f"z,y,x\n4,5,6\n{row}\n")
    with pytest.raises(CryosamError, match="line 3: . fields where the header"):
        read_prompt_csv(path)


def test_a_point_is_inside_where_it_rounds_to_a_voxel():
    shape = (10, 20, 30)
    validate_prompts([parse_point("9.49,19.49,29.49"), parse_point("-0.5,0,0")], shape)
    for bad in ("9.5,0,0", "0,19.5,0", "0,0,29.5", "-0.51,0,0"):
        with pytest.raises(CryosamError, match="outside the volume"):
            validate_prompts([parse_point(bad)], shape)


def test_duplicate_prompts_merge_into_one_with_a_warning():
    from cryosam.method.instances import merge_duplicate_prompts

    ps = [parse_point(t) for t in ("10,10,10", "10,10,10", "10,11,10", "10,10,30", "10,10,10:b")]
    kept, warnings = merge_duplicate_prompts(ps, {"particle": 20.0, "b": 20.0}, 0.5)
    assert [p.zyx for p in kept] == [(10, 10, 10), (10, 10, 30), (10, 10, 10)]
    assert [p.class_name for p in kept] == ["particle", "particle", "b"]  # classes apart
    assert len(warnings) == 1 and "2 prompt(s)" in warnings[0]
    assert merge_duplicate_prompts(kept, {"particle": 20.0, "b": 20.0}, 0.5) == (kept, [])


def test_thousands_of_prompts_merge_as_one_by_one_would():
    """Merging is a greedy pass in prompt order (a prompt joins an earlier kept one of its
    class closer than the radius); done with a tree it must keep exactly the same prompts."""
    import numpy as np

    from cryosam.io.prompts import Prompt
    from cryosam.method.instances import merge_duplicate_prompts

    rng = np.random.default_rng(0)
    ps = [
        Prompt(tuple(p), "a" if i % 3 else "b") for i, p in enumerate(rng.uniform(0, 40, (600, 3)))
    ]
    d = {"a": 8.0, "b": 6.0}
    kept, _ = merge_duplicate_prompts(ps, d, 0.5)
    slow = []
    for p in ps:
        r = 0.5 * d[p.class_name]
        if not any(
            q.class_name == p.class_name and np.linalg.norm(np.subtract(q.zyx, p.zyx)) < r
            for q in slow
        ):
            slow.append(p)
    assert kept == slow and 100 < len(kept) < 600


def test_thousands_of_prompts_vote_on_the_contrast_through_a_sample(monkeypatch):
    """Each voting prompt band-passes its own block: 10,000 prompts read a sample, not all."""
    import numpy as np

    from cryosam.volume import contrast

    rng = np.random.default_rng(1)
    vol = rng.normal(0, 1, (32, 48, 48)).astype(np.float32)
    zz, yy, xx = np.indices(vol.shape)
    pts = rng.uniform(4, [28, 44, 44], (10_000, 3))
    for c in pts[:: len(pts) // 40]:
        vol[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 4] -= 3.0
    calls = []
    real = contrast._bandpass
    monkeypatch.setattr(contrast, "_bandpass", lambda b, d, **k: calls.append(1) or real(b, d, **k))
    dark, _ = contrast.protein_is_dark(vol, 5.0, pts[:: len(pts) // 40])
    assert dark and len(calls) <= contrast.MAX_VOTERS
    calls.clear()
    contrast.protein_is_dark(vol, 5.0, pts)  # most of these are on noise: the skewness decides
    assert 0 < len(calls) <= contrast.MAX_VOTERS + 1
