"""Does the default carry to other imaging? One click, the dev tomograms changed as another
microscope or another reconstruction would change them, beside the LoG blob picker.

    python benchmarks/imaging_transfer.py --tomograms dev1 --targets ribosome proteasome
    python benchmarks/imaging_transfer.py --conditions as-given 13.3A noisier --clicks 0 1

The held-out tomograms this project is judged on differ from ``../shared/data/dev`` in how
they were imaged, not only in what they hold. Each condition is made from a dev tomogram
(200 x 400 x 400 at 10 Å, protein dark) with its truth carried along:

- ``as-given``: unchanged;
- ``13.3A`` / ``8A``: resampled to 13.3 Å (150 x 300 x 300) or 8 Å (250 x 500 x 500) voxels
  by Fourier cropping or padding (a coarser or finer binning of the same tilt series); the
  particle list and the click are scaled with it, the typed diameter stays in Å;
- ``9.1A``: resampled to 9.1 Å (220 x 440 x 440): a 160 Å proteasome then spans 17.6
  voxels, unbinned by the integer bin as the ribosome at 14.3 Å;
- ``14.3A``: resampled to 14.3 Å (140 x 280 x 280), as ``13.3A``: a 250 Å ribosome then
  spans 17.5 voxels, under the 18 at which verification bins by 2, so it correlates at
  14.3 Å where at 10 and 13.3 Å it correlates at 20 and 26.6 Å;
- ``14.3A-back``: the ``14.3A`` tomogram resampled back onto the 10 Å grid (no information
  finer than 28.6 Å, sampled as ``as-given``): what 14.3 Å data give when verification
  samples them as it does at 10 Å;
- ``half-dose``: noise as weighted back-projection makes it from a tilt series with half
  the dose: white in each projection, so in the tomogram its power grows with the frequency's
  distance from the tilt axis (y) and is zero in the missing wedge (tilts +-60°); added
  at the tomogram's own noise variance (``snr_tomogram_central80`` of ``devN_imaging.json``),
  so the signal-to-noise ratio halves (dev1 0.20 -> 0.10);
- ``clutter``: a phase-randomised copy of the tomogram added at its standard deviation (the
  same power spectrum, so blobs of the particles' own size with no particle in them): a
  harsher background than noise, closer to a crowded cell's unlabelled density;
- ``wedge45``: the tilt range narrowed from +-60° to +-45° (a stage that tilts less, or a
  thick lamella): every Fourier component of the tomogram between 45° and 60° from the x
  axis in the x-z plane (tilt axis y) set to zero, signal and noise alike, so the missing
  wedge widens from 60° to 90° and particles smear further along z;
- ``wedge50``: the same at +-50° (a wedge of 80°), the range of many lamella series;
- ``deconvolved``: the contrast transfer deconvolved as Warp and IsoNet do before picking
  (a Wiener filter built from the tomogram's own defocus, spherical aberration and amplitude
  contrast in ``devN_imaging.json``, with a signal-to-noise ratio falling exponentially with
  frequency and a high-pass below 1/50 of Nyquist): low frequencies boosted, the fringes of
  the band past the first zero of the contrast transfer turned back, the finest ones damped;
  protein stays dark (``--set balance_spectrum=auto`` turns the lifted low band down);
- ``smoothed``: a Gaussian of 1 voxel's sigma (a denoised or low-passed tomogram: the fine
  frequencies cut, the low band as it was);
- ``bright``: the values negated (a tomogram already inverted, protein bright): the
  automatic contrast must find it, and the picks should equal ``as-given``'s (the blob
  picker, told the contrast, is not run again).

Clicks are ``benchmarks/external.py``'s (same seed, the listed centre). Scores: F1 within half
the typed diameter, precision, recall, best-threshold F1 and AP of the ranked candidates, the
number of picks and the seconds; the LoG row is the blob picker at the typed diameter with
its own cut. Nothing is cached: every row is computed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import fft, ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.external import DATA, TARGETS, clicks, load, run_cryosam, run_log  # noqa: E402
from cryosam.config import Config  # noqa: E402
from cryosam.eval.tables import format_table  # noqa: E402

CONDITIONS = (
    "as-given",
    "13.3A",
    "8A",
    "9.1A",
    "14.3A",
    "14.3A-back",
    "half-dose",
    "clutter",
    "bright",
    "wedge45",
    "wedge50",
    "deconvolved",
    "smoothed",
)
RESAMPLED = {"13.3A": 0.75, "8A": 1.25, "9.1A": 1.1, "14.3A": 0.7, "14.3A-back": 0.7}
"""Resampling conditions: the factor from the 10 Å grid (``14.3A-back`` goes back onto it)."""
TILT_MAX = 60.0
NOISE_SEED = 20261205


def fourier_resample(volume: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``volume`` on a grid of ``shape`` covering the same box (sample ``j`` of an axis of
    ``m`` lies where sample ``j * n / m`` of the original's ``n`` did), by cropping or
    zero-padding its centred spectrum. ``float32``."""
    spec = fft.fftshift(fft.fftn(np.asarray(volume, np.float32), workers=-1))
    out = np.zeros(shape, np.complex64)
    src, dst = [], []
    for n, m in zip(volume.shape, shape):
        k = min(n, m)
        src.append(slice(n // 2 - k // 2, n // 2 - k // 2 + k))
        dst.append(slice(m // 2 - k // 2, m // 2 - k // 2 + k))
    out[tuple(dst)] = spec[tuple(src)]
    scale = np.prod(shape) / np.prod(volume.shape)
    return (fft.ifftn(fft.ifftshift(out), workers=-1).real * scale).astype(np.float32)


def same_spectrum_noise(volume: np.ndarray, seed: int) -> np.ndarray:
    """Noise with ``volume``'s amplitude spectrum and random phases, at its standard
    deviation: every structure of the tomogram scrambled away, its colour kept."""
    v = np.asarray(volume, np.float32)
    white = np.random.default_rng(seed).standard_normal(v.shape).astype(np.float32)
    phase = fft.rfftn(white, workers=-1)
    phase /= np.maximum(np.abs(phase), 1e-12)
    amp = np.abs(fft.rfftn(v - v.mean(), workers=-1))
    noise = fft.irfftn(amp * phase, s=v.shape, workers=-1).astype(np.float32)
    return noise * (v.std() / max(float(noise.std()), 1e-12))


def narrower_wedge(volume: np.ndarray, tilt_max: float) -> np.ndarray:
    """``volume`` without the Fourier components a tilt series of +-``tilt_max`` degrees about
    y would not have sampled (those more than ``tilt_max`` from the x axis in the x-z plane)."""
    v = np.asarray(volume, np.float32)
    kz, _, kx = np.meshgrid(fft.fftfreq(v.shape[0]), [0.0], fft.rfftfreq(v.shape[2]),
                            indexing="ij", sparse=True)  # fmt: skip
    sampled = np.abs(kz) <= np.tan(np.radians(tilt_max)) * np.abs(kx) + 1e-9
    spec = fft.rfftn(v, workers=-1) * sampled
    return fft.irfftn(spec, s=v.shape, workers=-1).astype(np.float32)


def half_dose_noise(volume: np.ndarray, snr: float, seed: int) -> np.ndarray:
    """Back-projected noise (power proportional to the frequency's distance from the y tilt
    axis, none in the missing wedge beyond :data:`TILT_MAX`) with the variance of the noise
    already in ``volume`` (``var / (1 + snr)``)."""
    v = np.asarray(volume, np.float32)
    kz, ky, kx = np.meshgrid(*(fft.fftfreq(n) for n in v.shape[:2]), fft.rfftfreq(v.shape[2]),
                             indexing="ij", sparse=True)  # fmt: skip
    rho = np.sqrt(kz**2 + kx**2)
    sampled = np.abs(kz) <= np.tan(np.radians(TILT_MAX)) * np.abs(kx) + 1e-9
    white = np.random.default_rng(seed).standard_normal(v.shape).astype(np.float32)
    shaped = fft.rfftn(white, workers=-1) * (np.sqrt(rho) * sampled).astype(np.float32)
    noise = fft.irfftn(shaped, s=v.shape, workers=-1).astype(np.float32)
    target = float(v.var()) / (1.0 + snr)
    return noise * np.float32(np.sqrt(target) / max(float(noise.std()), 1e-12))


def ctf_deconvolved(
    volume: np.ndarray,
    vs: float,
    imaging: dict,
    strength: float = 1.0,
    falloff: float = 1.0,
    highpass: float = 0.02,
) -> np.ndarray:
    """``volume`` through a Wiener filter of its contrast transfer (Tegunov's deconvolution as
    Warp and IsoNet apply it): ``ctf / (ctf^2 + 1 / snr)`` with ``snr = 10^(3 strength)
    exp(-100 falloff f / vs) hp(f)``, ``f`` the frequency as a fraction of Nyquist and ``hp``
    a cosine ramp to 1 at ``highpass``. The transfer's sign is taken so that it is positive at
    low frequencies: the contrast keeps its polarity."""
    v = np.asarray(volume, np.float32)
    k = np.sqrt(sum(g**2 for g in np.meshgrid(*(fft.fftfreq(n) for n in v.shape[:2]),
                                                fft.rfftfreq(v.shape[2]), indexing="ij",
                                                sparse=True))) / vs  # 1/Å  # fmt: skip
    lam, dz = float(imaging["wavelength_A"]), float(imaging["defocus_um"]) * 1e4
    cs, amp = float(imaging["cs_A"]), float(imaging["amp_contrast"])
    chi = np.pi * lam * dz * k**2 - 0.5 * np.pi * cs * lam**3 * k**4
    ctf = np.sqrt(1 - amp**2) * np.sin(chi) + amp * np.cos(chi)
    f = np.minimum(k * 2 * vs, 1.0)
    hp = 1 - np.cos(np.minimum(1.0, f / highpass) * np.pi)
    snr = 10 ** (3 * strength) * np.exp(-100 * falloff * f / vs) * hp
    wiener = ctf / (ctf**2 + 1 / np.maximum(snr, 1e-12))
    out = fft.irfftn(fft.rfftn(v, workers=-1) * wiener.astype(np.float32), s=v.shape, workers=-1)
    return (out / max(float(out.std()), 1e-12)).astype(np.float32)


def condition(name: str, volume: np.ndarray, vs: float, tomo: str = "dev1"):
    """``(volume, voxel size, factor)``: the changed tomogram, its voxel size, and the factor
    that takes a voxel index of the original to one of it."""
    volume = np.asarray(volume, np.float32)
    if name == "as-given":
        return volume, vs, 1.0
    if name in RESAMPLED:
        f = RESAMPLED[name]
        shape = tuple(int(round(s * f)) for s in volume.shape)
        resampled = fourier_resample(volume, shape)
        if name == "14.3A-back":
            return fourier_resample(resampled, volume.shape), vs, 1.0
        return resampled, vs / f, f
    if name == "half-dose":
        info = json.loads((DATA / f"{tomo}_imaging.json").read_text())
        snr = float(info["snr_tomogram_central80"])
        return volume + half_dose_noise(volume, snr, NOISE_SEED), vs, 1.0
    if name == "clutter":
        return volume + same_spectrum_noise(volume, NOISE_SEED), vs, 1.0
    if name == "bright":
        return -volume, vs, 1.0
    if name == "wedge45":
        return narrower_wedge(volume, 45.0), vs, 1.0
    if name == "wedge50":
        return narrower_wedge(volume, 50.0), vs, 1.0
    if name == "deconvolved":
        info = json.loads((DATA / f"{tomo}_imaging.json").read_text())
        return ctf_deconvolved(volume, vs, info), vs, 1.0
    if name == "smoothed":
        return ndimage.gaussian_filter(volume, 1.0), vs, 1.0
    raise SystemExit(f"unknown condition {name!r}; choose from {', '.join(CONDITIONS)}")


def score_columns(r: dict) -> dict:
    """The table's columns of one run's scores."""
    keys = {"F1": 3, "P": 2, "R": 2, "best F1": 3, "AP": 3}
    return {**{k: round(r[k], n) for k, n in keys.items()}, "picks": r["n_picked"],
            "seconds": round(r["seconds"])}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tomograms", nargs="+", default=["dev1"])
    ap.add_argument("--targets", nargs="+", default=["ribosome"])
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS))
    ap.add_argument("--clicks", nargs="+", type=int, default=[0], help="which of the five")
    ap.add_argument("--methods", nargs="+", default=["cryosam", "log"])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    config = Config().with_overrides(args.set)
    rows = []
    for tomo in args.tomograms:
        original, vs0, particles = load(tomo)
        for cond in args.conditions:
            volume, vs, f = condition(cond, original, vs0, tomo)
            for target in args.targets:
                label, typed = TARGETS[target]
                true = particles.loc[particles.label == label, ["z", "y", "x"]].to_numpy(float)
                chosen = clicks(particles, label, typed / vs0, original.shape, 5)
                runs = [("cryosam", k) for k in args.clicks if "cryosam" in args.methods]
                if "log" in args.methods and cond != "bright":  # no click; told the contrast
                    runs.append(("log", "-"))
                for method, k in runs:
                    if method == "cryosam":
                        r = run_cryosam(volume, vs, chosen[k] * f, typed / vs, true * f, config,
                                        name=f"{tomo}-{cond}")  # fmt: skip
                    else:
                        r = run_log(volume, vs, None, typed / vs, true * f)
                    where = {"tomogram": tomo, "imaging": cond, "voxel Å": round(vs, 1)}
                    rows.append({**where, "target": target, "method": method, "click": k,
                                 **score_columns(r)})  # fmt: skip
                    print(format_table(rows[-1:], list(rows[-1])), flush=True)
    print("\n" + format_table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
