"""Breaks the code on purpose and reports which tests catch each break (#17: a test that
cannot fail is no test).

    python benchmarks/break_check.py              # every break (a few minutes)
    python benchmarks/break_check.py --only copick-translation

Each break is one textual change to one source file (applied to the working tree, and always
restored, also on Ctrl-C); the tests named with it run with ``pytest -x -q``. A break that no
test catches is printed as MISSED and the script exits 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "cryosam"


@dataclass(frozen=True)
class Break:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


BREAKS = (
    Break(
        "drifted-reference-not-refined-again",
        "method/verify.py",
        "    if kept < DRIFT_MIN:\n",
        "    if False:\n",
        ("tests/test_verify.py::test_only_matches_as_dense_as_the_prompts_refine_the_reference",),
    ),
    Break(
        "dense-floor-ignored",
        "method/verify.py",
        "            among = (v.mass(zc) >= dense) & (True if among is None else among)\n",
        "            pass\n",
        ("tests/test_verify.py::test_only_matches_as_dense_as_the_prompts_refine_the_reference",),
    ),
    Break(
        "strays-the-high-mode",
        "method/cut.py",
        "    out[np.flatnonzero(ok)[z < gap]] = True",
        "    out[np.flatnonzero(ok)[z >= gap]] = True",
        ("tests/test_strays.py",),
    ),
    Break(
        "strays-left-in-the-picks",
        "method/pick.py",
        "    keep = ~(stray | gone)\n",
        "    keep = np.ones(len(picks), bool)\n",
        ("tests/test_strays.py",),
    ),
    Break(
        "envelope-turned-the-wrong-way",
        "method/envelope.py",
        "        M.T,\n",
        "        M,\n",
        ("tests/test_envelope.py",),
    ),
    Break(
        "masks-never-cut-back",
        "method/pick.py",
        "    if not s.config.mask_envelope:\n",
        "    if True:\n",
        ("tests/test_pick.py::test_masks_are_trimmed_to_the_class_envelope_and_the_picks_stay",),
    ),
    Break(
        "orient-composition-reversed",
        "method/orient.py",
        "    return M @ deltas[align[:, 0]], corr",
        "    return deltas[align[:, 0]] @ M, corr",
        ("tests/test_orient.py",),
    ),
    Break(
        "orient-angles-transposed",
        "method/orient.py",
        "    return relion_angles_of_matrices(zyx_to_xyz_matrices(M))",
        "    return relion_angles_of_matrices(zyx_to_xyz_matrices(M).transpose(0, 2, 1))",
        ("tests/test_orient.py",),
    ),
    Break(
        "orient-half-sphere-only",
        "method/orient.py",
        "    grid = rotation_grid(config.orient_angle_step, full=True).as_matrix()",
        "    grid = rotation_grid(config.orient_angle_step, full=False).as_matrix()",
        ("tests/test_orient.py",),
    ),
    Break(
        "orient-average-of-all-picks",
        "method/pick.py",
        "    best = np.argsort(-np.asarray(corr))[:n]",
        "    best = np.arange(len(zyx))",
        ("tests/test_orient.py",),
    ),
    Break(
        "map-decimated-without-low-pass",
        "volume/resample.py",
        "        m = ndimage.gaussian_filter(m, 0.5 / factor)",
        "        m = m",
        ("tests/test_verify.py",),
    ),
    Break(
        "simulate-map-not-centred",
        "simulate/species.py",
        "    box = ndimage.shift(box, shift, order=1)",
        "    box = box",
        ("tests/test_simulate.py",),
    ),
    Break(
        "batch-map-classes-dropped",
        "app/batch.py",
        "            job.map_classes = list(map_classes)",
        "            job.map_classes = []",
        ("tests/test_seeds.py",),
    ),
    Break(
        "symmetry-canonical-skipped",
        "method/pick.py",
        "        M = canonical(M, ops)  # of the equivalent",
        "        M = M  # of the equivalent",
        ("tests/test_orient.py",),
    ),
    Break(
        "rerank-order-ignored",
        "method/pick.py",
        "    cands.score[group[np.argsort(-key)]] = scores",
        "    cands.score[group] = scores",
        ("tests/test_orient.py",),
    ),
    Break(
        "dynamo-angles-not-inverted",
        "io/dynamo.py",
        '    return Rotation.from_matrix(A).inv().as_euler("zxz", degrees=True)',
        '    return Rotation.from_matrix(A).as_euler("zxz", degrees=True)',
        ("tests/test_orient.py",),
    ),
    Break(
        "copick-rotation-dropped",
        "io/copick_json.py",
        "        out[:, :3, :3] = coords.relion_euler_matrices(picks.angles)",
        "        pass",
        ("tests/test_orient.py",),
    ),
    Break(
        "external-reference-refined-with-noise",
        "method/verify.py",
        "        best = _known_matches(score, st, top, with_prompts=False, among=recognised)",
        "        best = _known_matches(score, st, top, with_prompts=False)",
        ("tests/test_batch.py::test_query_from_one_tomogram_picks_another",),
    ),
    Break(
        "caller-query-mutated",
        "method/pick.py",
        "            rep.query = replace(ext)",
        "            rep.query = ext",
        ("tests/test_batch.py::test_query_from_one_tomogram_picks_another",),
    ),
    Break(
        "sam-output-ignored",
        "models/sam.py",
        "        masks = out.pred_masks[0, 0].float().cpu().numpy()",
        "        masks = 0 * out.pred_masks[0, 0].float().cpu().numpy() - 1",
        (
            "tests/test_sam_backend.py::test_a_sam_that_masks_dark_patches_segments_the_ball",
            "tests/test_extended.py::test_segment_extended_with_a_sam_checkpoint",
        ),
    ),
    Break(
        "sam-padding-read-as-image",
        "models/sam_geometry.py",
        "    return resize_2d(full[:nh, :nw], (h, w))",
        "    return resize_2d(full, (h, w))",
        ("tests/test_sam_backend.py::test_a_sam_that_masks_dark_patches_segments_the_ball",),
    ),
    Break(
        "sam-slice-transposed",
        "models/sam.py",
        "[to_pixels(take_slice(self._shown, axis, i), self.size",
        "[to_pixels(take_slice(self._shown, axis, i).T, self.size",
        ("tests/test_sam_backend.py::test_a_sam_that_masks_dark_patches_segments_the_ball",),
    ),
    Break(
        "imod-pixel-corner-ignored",
        "io/imod.py",
        "IMOD_XY_SHIFT = 0.5",
        "IMOD_XY_SHIFT = 0.0",
        ("tests/test_golden_files.py",),
    ),
    Break(
        "star-prompts-all-to-first-tomogram",
        "io/star.py",
        "    if name_col is None:\n        return [_picks(",
        "    if True:\n        return [_picks(",
        ("tests/test_golden_files.py",),
    ),
    Break(
        "prompt-snap-skipped",
        "method/pick.py",
        "        if own and config.prompt_snap:  # clicks to their particles' centres",
        "        if False:  # clicks to their particles' centres",
        ("tests/test_centre.py",),
    ),
    Break(
        "seeds-by-blob-strength",
        "method/seeds.py",
        "    return centred[chosen], fine[chosen]",
        "    return blobs[:n], fine[:n]",
        ("tests/test_seeds.py",),
    ),
    Break(
        "symmetry-axis-not-searched",
        "method/pick.py",
        "            Q = symmetry_frame(best, group, dv / 2)",
        "            Q = np.eye(3)",
        ("tests/test_orient.py::test_symmetry_from_a_click_finds_the_axis",),
    ),
    Break(
        "symmetry-axis-sign-ignored",
        "method/orient.py",
        '        if kind == "C" and float(np.clip(inside, 0, None) @ (u @ offsets) ** 3) < 0:',
        "        if False:",
        ("tests/test_orient.py::test_symmetry_from_a_click_finds_the_axis",),
    ),
    Break(
        "dynamo-shifts-ignored",
        "io/dynamo.py",
        'xyz = df[["x", "y", "z"]].to_numpy(np.float64) + df[',
        'xyz = df[["x", "y", "z"]].to_numpy(np.float64) + 0 * df[',
        ("tests/test_golden_files.py",),
    ),
    Break(
        "average-reference-ignored",
        "method/orient.py",
        "    template = block_mean(box, v.bin)",
        "    template = ref.template",
        ("tests/test_orient.py::test_a_second_round_against_the_average_aligns_better",),
    ),
    Break(
        "mrc-axis-order-ignored",
        "io/tomogram.py",
        "        if order != (0, 1, 2):  # columns/rows/sections",
        "        if False:  # columns/rows/sections",
        ("tests/test_golden_files.py",),
    ),
    Break(
        "relion-origin-shift-ignored",
        "io/star.py",
        "        return shift[:, ::-1]",
        "        return np.zeros((n, 3))",
        ("tests/test_golden_files.py",),
    ),
    Break(
        "relion-euler-not-transposed",
        "io/coords.py",
        "degrees=True).as_matrix().transpose(0, 2, 1)",
        "degrees=True).as_matrix()",
        ("tests/test_golden_files.py",),
    ),
    Break(
        "segmenter-returns-nothing",
        "models/classical.py",
        "        return SliceResult(mask, logits, float(np.clip(contrast * 2, 0, 1)))",
        "        return SliceResult(np.zeros_like(mask), np.full_like(logits, -1.0), 0.0)",
        ("tests/test_propagate.py",),
    ),
    Break(
        "relion3-axes-swapped",
        "io/coords.py",
        "    return _zyx(zyx)[:, ::-1].copy()",
        "    return _zyx(zyx).copy()",
        ("tests/test_io_picks.py",),
    ),
    Break(
        "relion5-centre-sign",
        "io/coords.py",
        "    return ((_zyx(zyx) - centre) * vs)[:, ::-1].copy()",
        "    return ((_zyx(zyx) + centre) * vs)[:, ::-1].copy()",
        ("tests/test_io_picks.py",),
    ),
    Break(
        "copick-translation-ignored",
        "io/copick_json.py",
        "    arr = (np.asarray(xyz, dtype=np.float64) + T[:, :3, 3]).reshape(-1, 3)",
        "    arr = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)",
        ("tests/test_io_picks.py",),
    ),
    Break(
        "dino-output-ignored",
        "models/dino.py",
        "        patches = tokens[:, n_extra:, :].float().cpu().numpy()",
        "        patches = np.zeros(tokens[:, n_extra:, :].shape, np.float32)",
        ("tests/test_foundation_path.py",),
    ),
    Break(
        "encoder-identity-by-name",
        "method/queries.py",
        '    return f"{encoder.name}@{hashlib.sha256(sig.encode()).hexdigest()[:12]}"',
        '    return f"{encoder.name}@0"',
        ("tests/test_foundation_path.py",),
    ),
    Break(
        "mass-count-off",
        "method/cut.py",
        "    if weak_cut(sep, nearest):\n        return Cut(by_mass, CutRule.SHAPE_MASS_COUNT)\n",
        "    if False:\n        return Cut(by_mass, CutRule.SHAPE_MASS_COUNT)\n",
        ("tests/test_stages.py",),
    ),
    Break(
        "knee-of-few-of-many-kept",
        "method/cut.py",
        "    if cut.rule is CutRule.SHAPE_KNEE and many_of_class_mass(scores, cut.value, by_mass):",
        "    if False:",
        ("tests/test_stages.py",),
    ),
    Break(
        "fiducials-kept",
        "method/pick.py",
        "        cands.status[cands.free & near_gold(cands.zyx, s.gold, reach)]"
        " = Status.NEAR_FIDUCIAL",
        "        pass",
        ("tests/test_fiducials.py",),
    ),
    Break(
        "membranes-kept",
        "method/pick.py",
        "        cands.status[cands.free & in_zone(zone, cands.zyx)] = Status.ON_MEMBRANE",
        "        pass",
        ("tests/test_extended.py",),
    ),
    Break(
        "fiducials-not-erased",
        "volume/prepare.py",
        "            out[erased] = 0.0",
        "            pass",
        ("tests/test_fiducials.py",),
    ),
)


def run(b: Break) -> tuple[bool, str]:
    """Apply ``b``, run its tests, restore; ``(caught, last line of pytest)``."""
    path = SRC / b.path
    text = path.read_text()
    if b.old not in text:
        return False, f"the text to break is gone from {b.path}: update this script"
    try:
        path.write_text(text.replace(b.old, b.new, 1))
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *b.tests],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(text)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return proc.returncode != 0, lines[-1] if lines else proc.stderr.strip()[-200:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", default=[], help="a break's name (repeatable)")
    args = ap.parse_args(argv)
    chosen = [b for b in BREAKS if not args.only or b.name in args.only]
    missed = 0
    print("| break | tests run | caught | pytest says |\n|---|---|---|---|")
    for b in chosen:
        caught, said = run(b)
        missed += not caught
        print(f"| {b.name} | {' '.join(b.tests)} | {'yes' if caught else 'MISSED'} | {said} |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
