"""Accuracy study for a "fused" engine: SFace (YuNet box) + dlib ResNet on the same YuNet box.

    /work/main/.venv/bin/python bench/accuracy_study.py [--calib DIR] [--dev DIR] [--cache DIR] [--out DIR]

Run from the repository root. Step 1 embeds every identity photo of the calibration set (LFW deep-funneled, used
for fitting) and the dev set (report only, never fitted) once with facegate's own engines and caches the
descriptors under --cache (default /tmp/acc). Step 2 is pure numpy: impostor statistics and thresholds per engine,
identity-disjoint 5-fold cross-validation, score fusion (z-score mean and logistic regression), a "only when unsure"
band on the SFace distance, person templates (best face / mean embedding / mean of two smallest), flip TTA, and
gallery-size reasoning. Writes accuracy-study.json and accuracy-study.md to --out (default bench/results).

Descriptor pair of a photo: YuNet detects, the largest detection is kept; SFace embeds YuNet's aligned crop;
dlib's 5-point shape predictor runs inside YuNet's box and the ResNet embeds the 150 px chip. The flip-TTA variants
embed the horizontally flipped crop / chip. Photos where YuNet finds no face are recorded and skipped.

A side check re-embeds a third of the calib identities and all of dev with dlib inside its own HOG box, and inside
YuNet's box mapped to HOG's median geometry, to see whether the YuNet box costs dlib accuracy (cached too).

On the shared 2-core VM: ~15 min of embedding (once, ~340 ms a photo for both descriptors and their flips), ~4 min
for the box check (once), then ~1 min of numpy per run. `--embed-only` fills the caches and stops.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

SKIP_DIRS = {"multi", "noface", "video"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
SEED = 20240607
N_FOLDS = 5
N_BOOT = 1000
ND = NormalDist()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Step 1: descriptors (cached)


def list_photos(root: Path) -> list[tuple[str, str]]:
    """(identity, relative path) for every identity photo, sorted."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
        for f in sorted(d.iterdir(), key=lambda p: (len(p.stem), p.stem)):
            if f.suffix.lower() in IMAGE_EXTS:
                out.append((d.name, f"{d.name}/{f.name}"))
    return out


def embed_set(root: Path, cache_file: Path) -> dict[str, np.ndarray]:
    """Embed every photo of `root` once; reuse the cache when it holds exactly the same file list."""
    photos = list_photos(root)
    paths = [p for _, p in photos]
    if cache_file.exists():
        data = dict(np.load(cache_file, allow_pickle=False))
        if list(data["paths"]) == paths:
            log(f"{root.name}: {len(paths)} photos, descriptors from cache {cache_file}")
            return data
        log(f"{root.name}: cache {cache_file} is for another file list; recomputing")

    import cv2

    from facegate.config import DlibEngineSettings, OpenCVEngineSettings
    from facegate.vision.dlib_engine import DlibEngine
    from facegate.vision.engine import Detection
    from facegate.vision.images import decode
    from facegate.vision.opencv_engine import OpenCVEngine

    cv2.setNumThreads(1)
    opencv = OpenCVEngine(OpenCVEngineSettings())
    dlib_engine = DlibEngine(DlibEngineSettings())
    opencv.open()
    dlib_engine.open()

    n = len(paths)
    sface = np.zeros((n, 128), np.float32)
    sface_flip = np.zeros((n, 128), np.float32)
    dlibv = np.zeros((n, 128), np.float32)
    dlib_flip = np.zeros((n, 128), np.float32)
    ok = np.zeros(n, bool)
    n_det = np.zeros(n, np.int32)
    box = np.zeros((n, 4), np.int32)
    score = np.zeros(n, np.float32)
    # seconds: decode, YuNet detect, SFace align+embed, dlib align (shape+chip) + embed, flips (SFace, dlib)
    timing = np.full((n, 6), np.nan, np.float64)
    t_start = time.perf_counter()
    for i, rel in enumerate(paths):
        t0 = time.perf_counter()
        img = decode((root / rel).read_bytes(), max_pixels=40_000_000)
        t1 = time.perf_counter()
        dets = opencv.detect(img)
        t2 = time.perf_counter()
        n_det[i] = len(dets)
        timing[i, 0:2] = (t1 - t0, t2 - t1)
        if dets:
            det = max(dets, key=lambda d: d.box.area)
            crop = opencv.align(img, det)
            sface[i] = opencv.embed(crop)
            t3 = time.perf_counter()
            left, top, w, h = det.box.left, det.box.top, det.box.width, det.box.height
            ddet = Detection(
                box=det.box,
                score=det.score,
                landmarks=det.landmarks,
                raw=np.array([left, top, left + w, top + h], dtype=np.float32),
            )
            chip = dlib_engine.align(img, ddet)
            dlibv[i] = dlib_engine.embed(chip)
            t4 = time.perf_counter()
            sface_flip[i] = opencv.embed(np.ascontiguousarray(cv2.flip(crop, 1)))
            t5 = time.perf_counter()
            dlib_flip[i] = dlib_engine.embed(np.ascontiguousarray(cv2.flip(chip, 1)))
            t6 = time.perf_counter()
            timing[i, 2:6] = (t3 - t2, t4 - t3, t5 - t4, t6 - t5)
            ok[i] = True
            box[i] = (left, top, w, h)
            score[i] = det.score
        if (i + 1) % 100 == 0 or i + 1 == n:
            el = time.perf_counter() - t_start
            log(f"{root.name}: {i + 1}/{n} photos embedded ({el:.0f} s, {el / (i + 1) * 1000:.0f} ms/photo)")
    data = {
        "paths": np.array(paths),
        "identity": np.array([ident for ident, _ in photos]),
        "ok": ok,
        "n_det": n_det,
        "box": box,
        "score": score,
        "sface": sface,
        "sface_flip": sface_flip,
        "dlib": dlibv,
        "dlib_flip": dlib_flip,
        "timing": timing,
    }
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(cache_file)
    return data


# ----------------------------------------------------------------------------------------------------------------
# Step 2: analysis (pure numpy)

TARGETS = (1e-3, 1e-4, 1e-5)
ENGINES = ("sface", "dlib")
FUSIONS = ("fused_z", "fused_lr")


def prepare(data: dict[str, np.ndarray], tta: bool) -> dict[str, Any]:
    """Descriptors of the photos with a face, as used for distances (TTA: normalised mean / mean)."""
    ok = data["ok"]
    s = data["sface"][ok].astype(np.float64)
    d = data["dlib"][ok].astype(np.float64)
    if tta:
        s = s + data["sface_flip"][ok]
        d = (d + data["dlib_flip"][ok]) / 2.0
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    names = sorted(set(data["identity"][ok].tolist()))
    idx = {n: i for i, n in enumerate(names)}
    return {
        "S": s,
        "L": d,
        "pid": np.array([idx[n] for n in data["identity"][ok]], np.int32),
        "names": names,
        "paths": data["paths"][ok],
    }


def cos_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.clip(1.0 - an @ bn.T, 0.0, 2.0)


def euc_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


# --- thresholds -------------------------------------------------------------------------------------------------


def emp_threshold(imp: np.ndarray, q: float) -> float:
    """Largest threshold t (accept d <= t) whose empirical false-match rate on `imp` is <= q (ties aside)."""
    k = math.floor(q * len(imp))
    if k == 0:
        return float(imp.min()) - 1e-9
    part = np.partition(imp, k - 1)[:k]
    return float(part.max())


def normal_threshold(mean: float, std: float, q: float) -> float:
    return mean + ND.inv_cdf(q) * std


# --- logistic regression (numpy IRLS) --------------------------------------------------------------------------


def logistic_irls(x: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-6, iters: int = 50) -> np.ndarray:
    """Weighted logistic regression by Newton/IRLS; x without intercept column. Returns [b0, b1, ...]."""
    xa = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(xa.shape[1])
    for _ in range(iters):
        eta = xa @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        r = w * mu * (1.0 - mu)
        h = xa.T @ (xa * r[:, None]) + ridge * np.eye(len(beta))
        g = xa.T @ (w * (y - mu)) - ridge * beta
        step = np.linalg.solve(h, g)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


# --- fitting: normalisation, fusion, thresholds, band ----------------------------------------------------------


def fuse(params: dict[str, Any], kind: str, ds: np.ndarray, dd: np.ndarray) -> np.ndarray:
    """Fused distance on SFace's scale: mean_s + std_s * (standardised fused score)."""
    f = params[kind]
    raw = f["a_s"] * ds + f["a_d"] * dd
    return params["sface"]["mean"] + params["sface"]["std"] * (raw - f["mean"]) / f["std"]


def fit(pairs: dict[str, np.ndarray], mask: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """Everything fitted on one training set of pairs (mask): impostor stats, fusions, thresholds, band."""
    gen = pairs["gen"] & mask
    imp = ~pairs["gen"] & mask
    out: dict[str, Any] = {"n_genuine": int(gen.sum()), "n_impostor": int(imp.sum())}
    for e in ENGINES:
        d = pairs[e][imp].astype(np.float64)
        out[e] = {"mean": float(d.mean()), "std": float(d.std())}
    ms, ss = out["sface"]["mean"], out["sface"]["std"]
    md, sd = out["dlib"]["mean"], out["dlib"]["std"]
    # (a) z-score mean
    out["fused_z"] = {"a_s": 0.5 / ss, "a_d": 0.5 / sd}
    # (b) logistic regression on the two standardised distances, classes balanced, impostors subsampled
    gi = np.flatnonzero(gen)
    ii = np.flatnonzero(imp)
    ii = rng.choice(ii, size=min(len(ii), 200_000), replace=False)
    sel = np.concatenate([gi, ii])
    x = np.column_stack([(pairs["sface"][sel] - ms) / ss, (pairs["dlib"][sel] - md) / sd])
    y = np.concatenate([np.ones(len(gi)), np.zeros(len(ii))])
    w = np.concatenate([np.full(len(gi), 0.5 / len(gi)), np.full(len(ii), 0.5 / len(ii))]) * len(sel)
    beta = logistic_irls(x, y, w)
    # fused "distance" = -logit (bigger = less likely same); the intercept drops out after standardising
    out["fused_lr"] = {"a_s": -beta[1] / ss, "a_d": -beta[2] / sd, "beta": beta.tolist()}
    ds_imp = pairs["sface"][imp].astype(np.float64)
    dd_imp = pairs["dlib"][imp].astype(np.float64)
    for k in FUSIONS:
        raw = out[k]["a_s"] * ds_imp + out[k]["a_d"] * dd_imp
        out[k]["mean"], out[k]["std"] = float(raw.mean()), float(raw.std())
        # weights of the two standardised distances, normalised to sum 1 (z-score: 0.5/0.5)
        ws, wd = out[k]["a_s"] * ss, out[k]["a_d"] * sd
        out[k]["weight_sface"], out[k]["weight_dlib"] = ws / (ws + wd), wd / (ws + wd)
    scores = score_arrays(out, pairs, imp)
    out["thresholds"] = {}
    for name, d in scores.items():
        m, s = float(d.mean()), float(d.std())
        out["thresholds"][name] = {
            "mean": m,
            "std": s,
            **{f"emp_{q:g}": emp_threshold(d, q) for q in TARGETS},
            **{f"normal_{q:g}": normal_threshold(m, s, q) for q in TARGETS},
        }
    return out


def score_arrays(params: dict[str, Any], pairs: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    ds = pairs["sface"][mask].astype(np.float64)
    dd = pairs["dlib"][mask].astype(np.float64)
    return {"sface": ds, "dlib": dd, **{k: fuse(params, k, ds, dd) for k in FUSIONS}}


def fit_band(
    params: dict[str, Any], pairs: dict[str, np.ndarray], mask: np.ndarray, kind: str, q: float
) -> dict[str, float]:
    """Narrowest [lo, hi] on the SFace distance such that "fused inside, SFace alone outside" decides as full
    fusion does on >= 99.9% of genuine pairs, and adds or loses at most 0.1 x q x impostor pairs of false
    matches (i.e. its false-match rate stays within 10% of the target). Half of each budget goes to each side."""
    ds = pairs["sface"][mask].astype(np.float64)
    fd = fuse(params, kind, ds, pairs["dlib"][mask].astype(np.float64))
    gen = pairs["gen"][mask]
    ts = params["thresholds"]["sface"][f"emp_{q:g}"]
    tf = params["thresholds"][kind][f"emp_{q:g}"]
    fa = fd <= tf
    budget_g = 0.0005 * gen.sum()
    budget_i = 0.05 * q * (~gen).sum()
    # above hi SFace rejects: disagreement = pairs fused accepts with ds > hi
    up = fa & (ds > ts)  # above hi SFace alone rejects: these are the pairs fused would accept
    down = ~fa & (ds <= ts)  # below lo SFace alone accepts: these are the pairs fused would reject
    hi = _side_limit(ds[up], gen[up], budget_g, budget_i, descending=True, default=ts)
    lo = _side_limit(ds[down], gen[down], budget_g, budget_i, descending=False, default=ts)
    return {"lo": lo, "hi": hi, "t_sface": ts, "t_fused": tf}


def _side_limit(vals: np.ndarray, gen: np.ndarray, bg: float, bi: float, *, descending: bool, default: float) -> float:
    """Walk the disagreeing pairs from the far end inward, leaving them to SFace alone while both budgets hold;
    the band edge is the first pair that can no longer be left out."""
    if len(vals) == 0:
        return default
    order = np.argsort(-vals if descending else vals, kind="stable")
    v, g = vals[order], gen[order]
    ok = (np.cumsum(g) <= bg) & (np.cumsum(~g) <= bi)
    m = len(ok) if ok.all() else int(np.argmin(ok))
    return default if m == len(v) else float(v[m])


# --- evaluation of pair decisions --------------------------------------------------------------------------------


def decisions(
    params: dict[str, Any], pairs: dict[str, np.ndarray], mask: np.ndarray, bands: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Accept/reject of every pair in mask for every score x target x threshold method, and the band rules."""
    sc = score_arrays(params, pairs, mask)
    out: dict[str, np.ndarray] = {}
    for name, d in sc.items():
        for q in TARGETS:
            for meth in ("emp", "normal"):
                out[f"{name}|{meth}|{q:g}"] = d <= params["thresholds"][name][f"{meth}_{q:g}"]
    for kind in FUSIONS:
        for q in BAND_TARGETS:
            for bname, b in band_set(params, bands, kind, q).items():
                acc, inband = band_decide(sc["sface"], sc[kind], b)
                out[f"band:{kind}:{bname}|emp|{q:g}"] = acc
                out[f"needs_dlib:{kind}:{bname}|emp|{q:g}"] = inband
    return out


BAND_TARGETS = (1e-3, 1e-4)
BAND_WIDTHS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # half-width in units of SFace's impostor std


def band_set(params: dict[str, Any], bands: dict[str, Any], kind: str, q: float) -> dict[str, dict[str, float]]:
    ts = params["thresholds"]["sface"][f"emp_{q:g}"]
    tf = params["thresholds"][kind][f"emp_{q:g}"]
    s = params["sface"]["std"]
    out = {"principled": bands[f"{kind}|{q:g}"], "matched": bands[f"{kind}|{q:g}|matched"]}
    for w in BAND_WIDTHS:
        out[f"pm{w:g}sd"] = {"lo": ts - w * s, "hi": ts + w * s, "t_sface": ts, "t_fused": tf}
    return out


def band_decide(ds: np.ndarray, fd: np.ndarray, b: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    inband = (ds >= b["lo"]) & (ds <= b["hi"])
    acc = np.where(inband, fd <= b["t_fused"], ds <= b["t_sface"])
    return acc, inband


def fit_band_matched(
    params: dict[str, Any], pairs: dict[str, np.ndarray], mask: np.ndarray, kind: str, q: float
) -> dict[str, float]:
    """Narrowest symmetric band threshold +- w x SFace impostor std (w on a 0.05 grid) whose TAR and FMR on the
    training pairs are both at least as good as full fusion's."""
    ds = pairs["sface"][mask].astype(np.float64)
    fd = fuse(params, kind, ds, pairs["dlib"][mask].astype(np.float64))
    gen = pairs["gen"][mask]
    ts = params["thresholds"]["sface"][f"emp_{q:g}"]
    tf = params["thresholds"][kind][f"emp_{q:g}"]
    s = params["sface"]["std"]
    full = fd <= tf
    tar_full, fa_full = full[gen].sum(), full[~gen].sum()
    for w in np.arange(0.05, 3.0001, 0.05):
        b = {"lo": ts - w * s, "hi": ts + w * s, "t_sface": ts, "t_fused": tf}
        acc, _ = band_decide(ds, fd, b)
        if acc[gen].sum() >= tar_full and acc[~gen].sum() <= fa_full:
            return {**b, "w_sd": float(w)}
    return {"lo": ts - 3 * s, "hi": ts + 3 * s, "t_sface": ts, "t_fused": tf, "w_sd": 3.0}


def fit_bands(params: dict[str, Any], pairs: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, Any]:
    out = {f"{k}|{q:g}": fit_band(params, pairs, mask, k, q) for k in FUSIONS for q in BAND_TARGETS}
    out.update(
        {f"{k}|{q:g}|matched": fit_band_matched(params, pairs, mask, k, q) for k in FUSIONS for q in BAND_TARGETS}
    )
    return out


def rates(acc: np.ndarray, gen: np.ndarray) -> dict[str, float]:
    ng, ni = int(gen.sum()), int((~gen).sum())
    ta, fa = int(acc[gen].sum()), int(acc[~gen].sum())
    return {
        "tar": ta / ng if ng else float("nan"),
        "fmr": fa / ni if ni else float("nan"),
        "true_accepts": ta,
        "genuine": ng,
        "false_matches": fa,
        "impostor": ni,
    }


# --- bootstrap over identities -----------------------------------------------------------------------------------


def boot_weights(nid: int, rng: np.random.Generator, n_boot: int = N_BOOT) -> np.ndarray:
    return rng.multinomial(nid, np.full(nid, 1.0 / nid), size=n_boot).astype(np.float64)


def pair_tables(
    val: np.ndarray, ia: np.ndarray, ib: np.ndarray, gen: np.ndarray, nid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-identity genuine sums/counts and per-identity-pair impostor sums/counts (symmetric, zero diagonal)."""
    g_sum = np.bincount(ia[gen], weights=val[gen].astype(np.float64), minlength=nid)
    g_cnt = np.bincount(ia[gen], minlength=nid).astype(np.float64)
    key = ia[~gen].astype(np.int64) * nid + ib[~gen]
    i_sum = np.bincount(key, weights=val[~gen].astype(np.float64), minlength=nid * nid).reshape(nid, nid)
    i_cnt = np.bincount(key, minlength=nid * nid).astype(np.float64).reshape(nid, nid)
    return g_sum, g_cnt, i_sum + i_sum.T, i_cnt + i_cnt.T


def boot_pair_rates(tables: tuple[np.ndarray, ...], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g_sum, g_cnt, i_sum, i_cnt = tables
    tar = (w @ g_sum) / np.maximum(w @ g_cnt, 1e-12)
    fmr = ((w @ i_sum) * w).sum(1) / np.maximum(((w @ i_cnt) * w).sum(1), 1e-12)
    return tar, fmr


def ci(samples: np.ndarray) -> list[float]:
    s = samples[np.isfinite(samples)]
    if len(s) == 0:
        return [float("nan"), float("nan")]
    return [float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))]


# --- cross-validation ----------------------------------------------------------------------------------------------


def identity_folds(nid: int, rng: np.random.Generator) -> np.ndarray:
    fold = np.empty(nid, np.int32)
    fold[rng.permutation(nid)] = np.arange(nid) % N_FOLDS
    return fold


def cross_validate(
    pairs: dict[str, np.ndarray],
    nid: int,
    fold_of_id: np.ndarray,
    seed: int,
    pooled_scores: dict[str, np.ndarray] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], np.ndarray]:
    """Fit on 4 folds of identities, decide the pairs within the held-out fold. Returns per-fold params and the
    pooled held-out decisions (over all pairs; only `tested` pairs are meaningful)."""
    fa, fb = fold_of_id[pairs["ia"]], fold_of_id[pairs["ib"]]
    pooled: dict[str, np.ndarray] = {}
    held_scores: dict[str, np.ndarray] = {}
    tested = np.zeros(len(fa), bool)
    fold_params = []
    for k in range(N_FOLDS):
        train = (fa != k) & (fb != k)
        test = (fa == k) & (fb == k)
        p = fit(pairs, train, np.random.default_rng(seed + k))
        p["bands"] = fit_bands(p, pairs, train)
        fold_params.append(p)
        dec = decisions(p, pairs, test, p["bands"])
        for key, v in dec.items():
            if key not in pooled:
                pooled[key] = np.zeros(len(fa), bool)
            pooled[key][test] = v
        for name, d in score_arrays(p, pairs, test).items():
            if name not in held_scores:
                held_scores[name] = np.full(len(fa), np.nan, np.float32)
            held_scores[name][test] = d
        tested |= test
        log(f"  fold {k + 1}/{N_FOLDS}: {int(train.sum())} training pairs, {int(test.sum())} held-out pairs")
    if pooled_scores is not None:
        pooled_scores.update(held_scores)
    return fold_params, pooled, tested


def summarise_decisions(
    dec: dict[str, np.ndarray],
    pairs: dict[str, np.ndarray],
    mask: np.ndarray,
    nid: int,
    w: np.ndarray | None,
    full_key_for_band: bool = True,
) -> dict[str, Any]:
    """Rates (with identity-bootstrap CIs when w is given) for every decision vector restricted to mask."""
    gen = pairs["gen"][mask]
    ia, ib = pairs["ia"][mask], pairs["ib"][mask]
    out: dict[str, Any] = {}
    for key, v in dec.items():
        vm = v[mask] if len(v) == len(mask) else v
        if key.startswith("needs_dlib"):
            out[key] = {
                "share_all_pairs": float(vm.mean()),
                "share_genuine": float(vm[gen].mean()),
                "share_impostor": float(vm[~gen].mean()),
            }
            continue
        r = rates(vm, gen)
        if w is not None and "|emp|" in key:
            tar_b, fmr_b = boot_pair_rates(pair_tables(vm, ia, ib, gen, nid), w)
            r["tar_ci95"], r["fmr_ci95"] = ci(tar_b), ci(fmr_b)
        if key.startswith("band:") and full_key_for_band:
            kind = key.split(":")[1]
            q = key.split("|")[-1]
            full = dec[f"{kind}|emp|{q}"]
            fm = full[mask] if len(full) == len(mask) else full
            r["agree_with_full_fusion_genuine"] = float((vm == fm)[gen].mean())
            r["agree_with_full_fusion_impostor"] = float((vm == fm)[~gen].mean())
            r["extra_false_matches_vs_full"] = int((vm & ~fm)[~gen].sum())
            r["fewer_false_matches_vs_full"] = int((~vm & fm)[~gen].sum())
        out[key] = r
    return out


# --- person templates / identification ----------------------------------------------------------------------------

RULES = ("best", "mean", "two_smallest")
GAPS = (0.02, 0.05, 0.1)  # top-2 "close" triggers on the SFace distance


def person_scores(
    params: dict[str, Any], p: dict[str, Any], probes: np.ndarray, gal: np.ndarray, k: int, rule: str
) -> dict[str, np.ndarray]:
    """probe x person distance matrices for sface, dlib and both fusions. gal: (G, k) photo indices."""
    g_flat = gal.reshape(-1)
    n_p, n_g = len(probes), gal.shape[0]
    if rule == "mean":
        ts = p["S"][gal].mean(1)
        td = p["L"][gal].mean(1)
        ds = cos_dist(p["S"][probes], ts)
        dd = euc_dist(p["L"][probes], td)
        return {"sface": ds, "dlib": dd, **{f: fuse(params, f, ds, dd) for f in FUSIONS}}
    ds = p["DS"][np.ix_(probes, g_flat)]
    dd = p["DD"][np.ix_(probes, g_flat)]
    photo = {"sface": ds, "dlib": dd, **{f: fuse(params, f, ds, dd) for f in FUSIONS}}
    out = {}
    for name, m in photo.items():
        m3 = m.reshape(n_p, n_g, k)
        if rule == "best":
            out[name] = m3.min(2)
        else:  # mean of the two smallest (k == 1: the one distance)
            out[name] = np.sort(m3, axis=2)[:, :, : min(2, k)].mean(2)
    return out


def id_outcomes(score: np.ndarray, thr: float, truth: np.ndarray) -> dict[str, np.ndarray]:
    """truth: index of the true person among the gallery columns, -1 for unknown probes."""
    best = score.argmin(1)
    dmin = score[np.arange(len(score)), best]
    known = truth >= 0
    return {
        "closed_ok": known & (best == truth),
        "open_ok": known & (best == truth) & (dmin <= thr),
        "accepted": dmin <= thr,
    }


def band_id(
    sc: dict[str, np.ndarray], kind: str, b: dict[str, float] | None, gap: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Margins (score - own threshold; accept if the best is <= 0) under an "only when unsure" policy, and which
    probes needed the dlib descriptor. A probe is unsure when its best SFace distance lies in the band [lo, hi]
    (b) or its two best people are closer than `gap` on SFace; only then is its dlib descriptor computed, and the
    fused score replaces SFace's for the people inside the band (and the top two when the gap triggered)."""
    s, f = sc["sface"], sc[kind]
    ts = b["t_sface"] if b is not None else sc["_t_sface"]
    tf = b["t_fused"] if b is not None else sc["_t_fused"]
    rows = np.arange(len(s))
    trig = np.zeros(len(s), bool)
    use = np.zeros(s.shape, bool)
    if b is not None:
        best = s.min(1)
        trig |= (best >= b["lo"]) & (best <= b["hi"])
    if gap is not None and s.shape[1] >= 2:
        top2 = np.argsort(s, axis=1)[:, :2]
        close = (s[rows, top2[:, 1]] - s[rows, top2[:, 0]]) < gap
        trig |= close
        use[rows[close], top2[close, 0]] = True
        use[rows[close], top2[close, 1]] = True
    if b is not None:
        use |= (s >= b["lo"]) & (s <= b["hi"]) & trig[:, None]
    margin = np.where(use, f - tf, s - ts)
    return margin, trig


def template_study(
    params: dict[str, Any],
    p: dict[str, Any],
    ks: tuple[int, ...],
    n_splits: int,
    seed: int,
    extra_q: tuple[float, ...],
    rec_kind: str,
    rules: tuple[str, ...] = RULES,
) -> dict[str, Any]:
    """Enroll k photos of about half the identities that have max(ks)+1 photos or more; known probes are those
    people's remaining photos (the same probes for every k), unknown probes every photo of everyone else."""
    rng = np.random.default_rng(seed)
    pid = p["pid"]
    nid = len(p["names"])
    counts = np.bincount(pid, minlength=nid)
    kmax = max(ks)
    eligible = np.flatnonzero(counts >= kmax + 1)
    n_enroll = min(nid // 2, round(0.75 * len(eligible)))  # about half of everyone, never all of the eligible
    qs = (1e-4, 1e-5, *extra_q)
    scores_names = (*ENGINES, *FUSIONS)
    # per (k, rule, score, q): per-identity sums over splits
    acc: dict[str, dict[str, np.ndarray]] = {}

    def add(key: str, out: dict[str, np.ndarray], who: np.ndarray, known: np.ndarray) -> None:
        a = acc.setdefault(
            key,
            {
                "n_known": np.zeros(nid),
                "closed_ok": np.zeros(nid),
                "open_ok": np.zeros(nid),
                "n_unknown": np.zeros(nid),
                "unknown_accepted": np.zeros(nid),
                "known_needs_dlib": np.zeros(nid),
                "unknown_needs_dlib": np.zeros(nid),
            },
        )
        a["n_known"] += np.bincount(who[known], minlength=nid)
        a["n_unknown"] += np.bincount(who[~known], minlength=nid)
        a["closed_ok"] += np.bincount(who, weights=out["closed_ok"], minlength=nid)
        a["open_ok"] += np.bincount(who, weights=out["open_ok"], minlength=nid)
        a["unknown_accepted"] += np.bincount(who[~known], weights=out["accepted"][~known], minlength=nid)
        if "needs_dlib" in out:
            nd = out["needs_dlib"]
            a["known_needs_dlib"] += np.bincount(who[known], weights=nd[known], minlength=nid)
            a["unknown_needs_dlib"] += np.bincount(who[~known], weights=nd[~known], minlength=nid)

    gallery_faces: dict[str, int] = {}
    for split in range(n_splits):
        enrolled = np.sort(rng.choice(eligible, size=n_enroll, replace=False))
        pool = np.zeros((n_enroll, kmax), np.int64)
        known_probes = []
        for j, person in enumerate(enrolled):
            photos = rng.permutation(np.flatnonzero(pid == person))
            pool[j] = photos[:kmax]
            known_probes.append(photos[kmax:])
        is_enrolled = np.zeros(nid, bool)
        is_enrolled[enrolled] = True
        unknown_probes = np.flatnonzero(~is_enrolled[pid])
        probes = np.concatenate([*known_probes, unknown_probes])
        col = np.full(nid, -1)
        col[enrolled] = np.arange(n_enroll)
        truth = col[pid[probes]]
        who = pid[probes]
        known = truth >= 0
        for k in ks:
            for rule in rules:
                if rule == "two_smallest" and k < 2:
                    continue
                sc = person_scores(params, p, probes, pool[:, :k], k, rule)
                gallery_faces[f"k{k}|{rule}"] = n_enroll * (1 if rule == "mean" else k)
                for name in scores_names:
                    for q in qs:
                        thr = params["thresholds"][name].get(f"emp_{q:g}")
                        if thr is None:
                            thr = threshold_at(params, name, q)
                        add(f"k{k}|{rule}|{name}|{q:g}", id_outcomes(sc[name], thr, truth), who, known)
                # "only when unsure" policies with the recommended fusion, at the 1e-4 thresholds
                q = 1e-4
                sc["_t_sface"] = params["thresholds"]["sface"][f"emp_{q:g}"]
                sc["_t_fused"] = params["thresholds"][rec_kind][f"emp_{q:g}"]
                policies: dict[str, tuple[dict[str, float] | None, float | None]] = {}
                for bname, b in band_set(params, params["bands"], rec_kind, q).items():
                    policies[f"band:{bname}"] = (b, None)
                for g in GAPS:
                    policies[f"gap<{g:g}"] = (None, g)
                    policies[f"band:principled+gap<{g:g}"] = (params["bands"][f"{rec_kind}|{q:g}"], g)
                for pname, (b, g) in policies.items():
                    margin, nd = band_id(sc, rec_kind, b, g)
                    o = id_outcomes(margin, 0.0, truth)
                    o["needs_dlib"] = nd
                    add(f"k{k}|{rule}|policy:{pname}|{q:g}", o, who, known)
        log(
            f"  split {split + 1}/{n_splits}: {n_enroll} people enrolled, {int(known.sum())} known probes, "
            f"{int((~known).sum())} unknown probes"
        )
    return {
        "acc": acc,
        "n_enroll": n_enroll,
        "eligible": len(eligible),
        "gallery_faces": gallery_faces,
        "n_splits": n_splits,
        "ks": list(ks),
    }


def threshold_at(params: dict[str, Any], name: str, q: float) -> float:
    """Empirical threshold at any q, from the stored impostor scores of the fit (set by attach_impostors)."""
    return emp_threshold(params["_imp"][name], q)


def summarise_ids(study: dict[str, Any], w: np.ndarray | None) -> dict[str, Any]:
    out = {}
    for key, a in study["acc"].items():
        nk, nu = a["n_known"].sum(), a["n_unknown"].sum()
        r: dict[str, Any] = {
            "closed_rank1": a["closed_ok"].sum() / nk,
            "open_rank1": a["open_ok"].sum() / nk,
            "unknown_false_accept": a["unknown_accepted"].sum() / nu,
            "known_probes": int(nk),
            "unknown_probes": int(nu),
        }
        if "policy:" in key:
            r["known_needs_dlib"] = a["known_needs_dlib"].sum() / nk
            r["unknown_needs_dlib"] = a["unknown_needs_dlib"].sum() / nu
            r["all_needs_dlib"] = (a["known_needs_dlib"].sum() + a["unknown_needs_dlib"].sum()) / (nk + nu)
        if w is not None:
            r["closed_rank1_ci95"] = ci((w @ a["closed_ok"]) / np.maximum(w @ a["n_known"], 1e-12))
            r["open_rank1_ci95"] = ci((w @ a["open_ok"]) / np.maximum(w @ a["n_known"], 1e-12))
            r["unknown_false_accept_ci95"] = ci((w @ a["unknown_accepted"]) / np.maximum(w @ a["n_unknown"], 1e-12))
        out[key] = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in r.items()}
    return out


# --- the study ------------------------------------------------------------------------------------------------------

OP_PEOPLE, OP_PHOTOS, OP_FALSE_ACCEPT = 100, 3, 0.01
Q_OP = 1.0 - (1.0 - OP_FALSE_ACCEPT) ** (1.0 / (OP_PEOPLE * OP_PHOTOS))


def with_matrices(p: dict[str, Any]) -> dict[str, Any]:
    p["DS"] = cos_dist(p["S"], p["S"])
    p["DD"] = euc_dist(p["L"], p["L"])
    return p


def pairs_of(p: dict[str, Any]) -> dict[str, np.ndarray]:
    n = len(p["pid"])
    iu, ju = np.triu_indices(n, 1)
    ia, ib = p["pid"][iu], p["pid"][ju]
    return {
        "sface": p["DS"][iu, ju].astype(np.float32),
        "dlib": p["DD"][iu, ju].astype(np.float32),
        "ia": ia,
        "ib": ib,
        "gen": ia == ib,
    }


def fit_full(pairs: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    mask = np.ones(len(pairs["gen"]), bool)
    params = fit(pairs, mask, np.random.default_rng(seed))
    params["bands"] = fit_bands(params, pairs, mask)
    params["_imp"] = score_arrays(params, pairs, ~pairs["gen"])
    for name, d in params["_imp"].items():
        t = params["thresholds"][name]
        t[f"emp_{Q_OP:g}"] = emp_threshold(d, Q_OP)
        t[f"normal_{Q_OP:g}"] = normal_threshold(t["mean"], t["std"], Q_OP)
    return params


def paired_diff(
    a: np.ndarray, b: np.ndarray, pairs: dict[str, np.ndarray], mask: np.ndarray, nid: int, w: np.ndarray
) -> dict[str, Any]:
    """TAR(b) - TAR(a) with a paired identity bootstrap CI."""
    gen = pairs["gen"][mask]
    ia, ib = pairs["ia"][mask], pairs["ib"][mask]
    ta, _ = boot_pair_rates(pair_tables(a[mask], ia, ib, gen, nid), w)
    tb, _ = boot_pair_rates(pair_tables(b[mask], ia, ib, gen, nid), w)
    point = float(b[mask][gen].mean() - a[mask][gen].mean())
    return {"tar_diff": point, "tar_diff_ci95": ci(tb - ta)}


def strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list | tuple):
        return [strip(v) for v in obj]
    if isinstance(obj, np.generic):
        return strip(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def hog_study(calib: dict[str, np.ndarray], dev: dict[str, np.ndarray], hog: dict[str, Any]) -> dict[str, Any]:
    """dlib on YuNet's box vs on its own HOG box vs on YuNet's box mapped to HOG geometry, alone and fused (z-score),
    on the same photos: identity-disjoint CV on the calib subset, dev with parameters from the calib subset."""

    def variants(data: dict[str, np.ndarray], pair: tuple[dict[str, np.ndarray], ...]) -> dict[str, dict[str, Any]]:
        hc, mc = pair
        both = hc["ok"] & mc["ok"]
        sel = hc["idx"][both]
        names = sorted(set(data["identity"][sel].tolist()))
        pos = {n: i for i, n in enumerate(names)}
        base = {
            "S": data["sface"][sel].astype(np.float64),
            "pid": np.array([pos[n] for n in data["identity"][sel]], np.int32),
            "names": names,
        }
        base["S"] /= np.linalg.norm(base["S"], axis=1, keepdims=True)
        out = {}
        for vname, vec in (
            ("yunet_box", data["dlib"][sel]),
            ("hog_box", hc["dlib"][both]),
            ("mapped_box", mc["dlib"][both]),
        ):
            out[vname] = pairs_of(with_matrices({**base, "L": vec.astype(np.float64)}))
            out[vname]["_nid"] = len(names)  # type: ignore[assignment]
            out[vname]["_n_photos"] = len(sel)  # type: ignore[assignment]
        return out

    vc, vd = variants(calib, hog["calib"]), variants(dev, hog["dev"])
    res: dict[str, Any] = {"mapping": hog["mapping"]}
    keys = [f"{n}|emp|{q:g}" for n in ("dlib", "fused_z") for q in (1e-3, 1e-4)]
    rng = np.random.default_rng(SEED + 11)
    first = next(iter(vc.values()))
    nid = int(first["_nid"])
    w = boot_weights(nid, rng)
    fold_of_id = identity_folds(nid, np.random.default_rng(SEED + 12))
    for vname in vc:
        pc, pd_ = vc[vname], vd[vname]
        log(f"  box check: {vname}")
        _, pooled, tested = cross_validate(pc, nid, fold_of_id, SEED + 200)
        params = fit_full(pc, SEED)
        dec_d = decisions(params, pd_, np.ones(len(pd_["gen"]), bool), params["bands"])
        res[vname] = {
            "calib_cv": summarise_decisions({k: pooled[k] for k in keys}, pc, tested, nid, w, False),
            "dev": summarise_decisions(
                {k: dec_d[k] for k in keys}, pd_, np.ones(len(pd_["gen"]), bool), 0, None, False
            ),
            "dlib_impostor_mean": params["dlib"]["mean"],
            "dlib_impostor_std": params["dlib"]["std"],
            "dlib_threshold_1e-4": params["thresholds"]["dlib"]["emp_0.0001"],
        }
    res["calib_photos"] = int(first["_n_photos"])
    res["calib_identities"] = nid
    res["dev_photos"] = int(next(iter(vd.values()))["_n_photos"])
    return res


def recommendations(res: dict[str, Any]) -> dict[str, Any]:
    """Choices made from the numbers by stated rules (the Markdown explains them)."""
    rec = res["fusion_choice"]["recommended"]
    cv = res["calib_cv"]
    out: dict[str, Any] = {"fusion": rec}
    # band: the principled one (decides as full fusion on >= 99.9% of same-person pairs); the cheaper bands
    # are reported next to it
    q = "0.0001"
    name = "principled"
    b = res["fit_all_calib"]["bands"][f"{rec}|{q}" + ("|matched" if name == "matched" else "")]
    tc = res["templates_calib"]["results"]
    out["band"] = {
        "name": name,
        "lo": b["lo"],
        "hi": b["hi"],
        "t_sface": b["t_sface"],
        "t_fused": b["t_fused"],
        "cv_pairs_needing_dlib": cv[f"needs_dlib:{rec}:{name}|emp|{q}"]["share_all_pairs"],
        "cv_same_person_pairs_needing_dlib": cv[f"needs_dlib:{rec}:{name}|emp|{q}"]["share_genuine"],
        "calib_probes_needing_dlib_k1": tc[f"k1|best|policy:band:{name}|{q}"]["all_needs_dlib"],
        "calib_probes_needing_dlib_k3": tc[f"k3|best|policy:band:{name}|{q}"]["all_needs_dlib"],
        "dev_pairs_needing_dlib": res["dev"][f"needs_dlib:{rec}:{name}|emp|{q}"]["share_all_pairs"],
    }
    # template rule: among rules within 0.3 points of the best open-set rank-1 (k = 3 and 5, mean), fewest
    # unknown false accepts; judged for the recommended fusion and for SFace at FMR 1e-4 on calib
    rules = {}
    for score in ("sface", rec):
        stats = {}
        for rule in RULES:
            xs = [tc[f"k{k}|{rule}|{score}|{q}"] for k in (3, 5)]
            stats[rule] = (
                float(np.mean([x["open_rank1"] for x in xs])),
                float(np.mean([x["unknown_false_accept"] for x in xs])),
            )
        best_open = max(v[0] for v in stats.values())
        ok = [r for r, v in stats.items() if v[0] >= best_open - 0.003]
        rules[score] = {"pick": min(ok, key=lambda r: stats[r][1]), "open_rank1_and_fa_k3_k5": stats}
    out["template_rule"] = rules
    tta = res["tta"]["calib_cv"]
    out["tta"] = {
        k: {"diff": v["tar_diff"], "ci95": v["tar_diff_ci95"], "helps": v["tar_diff_ci95"][0] > 0}
        for k, v in tta.items()
    }
    return out


def run_study(
    calib: dict[str, np.ndarray], dev: dict[str, np.ndarray], args: argparse.Namespace, hog: dict[str, Any]
) -> None:
    t_start = time.perf_counter()
    res: dict[str, Any] = {"seed": SEED, "n_folds": N_FOLDS, "n_boot": N_BOOT}
    res["data"] = {}
    for name, d in (("calib", calib), ("dev", dev)):
        res["data"][name] = {
            "photos": len(d["paths"]),
            "photos_with_face": int(d["ok"].sum()),
            "no_face": [str(x) for x in d["paths"][~d["ok"]]],
            "multiple_detections": int((d["n_det"] > 1).sum()),
            "identities": len(set(d["identity"][d["ok"]].tolist())),
        }
    log("distance matrices")
    pc = with_matrices(prepare(calib, tta=False))
    pd_ = with_matrices(prepare(dev, tta=False))
    pairs_c, pairs_d = pairs_of(pc), pairs_of(pd_)
    nid_c, nid_d = len(pc["names"]), len(pd_["names"])
    rng = np.random.default_rng(SEED)
    w_c, w_d = boot_weights(nid_c, rng), boot_weights(nid_d, rng)
    for name, pr in (("calib", pairs_c), ("dev", pairs_d)):
        res["data"][name]["genuine_pairs"] = int(pr["gen"].sum())
        res["data"][name]["impostor_pairs"] = int((~pr["gen"]).sum())

    # 1 + 2: fit on all calib; cross-validate by identity; apply to dev
    log("fit on all calib")
    params = fit_full(pairs_c, SEED)
    all_c = np.ones(len(pairs_c["gen"]), bool)
    all_d = np.ones(len(pairs_d["gen"]), bool)
    dec_c_in = decisions(params, pairs_c, all_c, params["bands"])
    res["fit_all_calib"] = strip({k: v for k, v in params.items()})
    res["calib_in_sample"] = summarise_decisions(dec_c_in, pairs_c, all_c, nid_c, None)
    log("5-fold identity-disjoint cross-validation on calib")
    fold_of_id = identity_folds(nid_c, np.random.default_rng(SEED + 1))
    held: dict[str, np.ndarray] = {}
    fold_params, pooled, tested = cross_validate(pairs_c, nid_c, fold_of_id, SEED + 100, held)
    # discriminative power without threshold transfer: TAR where the pooled held-out FMR equals the target
    # (fused scores of all folds are on SFace's scale)
    oracle = {}
    for name, d in held.items():
        imp = d[tested & ~pairs_c["gen"]]
        gen_d = d[tested & pairs_c["gen"]]
        oracle[name] = {f"{q:g}": float((gen_d <= emp_threshold(imp, q)).mean()) for q in (1e-3, 1e-4, 1e-5)}
    res["calib_cv_tar_at_heldout_fmr"] = oracle
    log("bootstrap CIs (calib CV)")
    res["calib_cv"] = summarise_decisions(pooled, pairs_c, tested, nid_c, w_c)
    res["calib_cv_fold_params"] = strip(
        [
            {
                "sface": fp["sface"],
                "dlib": fp["dlib"],
                "fused_z": fp["fused_z"],
                "fused_lr": fp["fused_lr"],
                "thresholds": fp["thresholds"],
                "bands": fp["bands"],
            }
            for fp in fold_params
        ]
    )
    log("dev (parameters from all calib)")
    dec_d = decisions(params, pairs_d, all_d, params["bands"])
    res["dev"] = summarise_decisions(dec_d, pairs_d, all_d, nid_d, w_d)

    # fusion choice: paired bootstrap of held-out TAR, logistic minus z-score
    choice = {}
    for q in (1e-3, 1e-4):
        choice[f"{q:g}"] = paired_diff(
            pooled[f"fused_z|emp|{q:g}"], pooled[f"fused_lr|emp|{q:g}"], pairs_c, tested, nid_c, w_c
        )
    lr_better = all(c["tar_diff_ci95"][0] > 0 for c in choice.values())
    rec = "fused_lr" if lr_better else "fused_z"
    fused_vs_sface = {
        f"{q:g}": paired_diff(pooled[f"sface|emp|{q:g}"], pooled[f"{rec}|emp|{q:g}"], pairs_c, tested, nid_c, w_c)
        for q in (1e-3, 1e-4)
    }
    res["fusion_choice"] = {
        "lr_minus_z_cv": choice,
        "recommended": rec,
        "rule": "logistic only if its held-out TAR beats z-score's with a CI excluding 0 at both FAR 1e-3 and "
        "1e-4; otherwise z-score (fewer parameters, no class balance to choose)",
        "recommended_minus_sface_cv": fused_vs_sface,
    }
    log(f"recommended fusion: {rec}")

    # 4 (+ 2 identification, + 3 policies): templates
    log("person templates on calib (parameters from all calib)")
    study_c = template_study(params, pc, (1, 3, 5), 10, SEED + 7, (Q_OP,), rec)
    res["templates_calib"] = {
        **{k: v for k, v in study_c.items() if k != "acc"},
        "results": summarise_ids(study_c, w_c),
    }
    log("person templates on dev")
    study_d = template_study(params, pd_, (1, 3, 5), 10, SEED + 8, (Q_OP,), rec)
    res["templates_dev"] = {
        **{k: v for k, v in study_d.items() if k != "acc"},
        "results": summarise_ids(study_d, w_d),
    }
    study_d1 = template_study(params, pd_, (1,), 10, SEED + 9, (Q_OP,), rec)
    res["templates_dev_k1_all"] = {
        **{k: v for k, v in study_d1.items() if k != "acc"},
        "results": summarise_ids(study_d1, w_d),
    }

    # 5: flip TTA
    log("flip TTA: cross-validation and dev with TTA descriptors")
    pct = with_matrices(prepare(calib, tta=True))
    pdt = with_matrices(prepare(dev, tta=True))
    pairs_ct, pairs_dt = pairs_of(pct), pairs_of(pdt)
    assert np.array_equal(pairs_ct["gen"], pairs_c["gen"])
    _, pooled_t, tested_t = cross_validate(pairs_ct, nid_c, fold_of_id, SEED + 100)
    params_t = fit_full(pairs_ct, SEED)
    dec_dt = decisions(params_t, pairs_dt, all_d, params_t["bands"])
    tta: dict[str, Any] = {"calib_cv": {}, "dev": {}}
    for name in (*ENGINES, rec):
        for q in (1e-3, 1e-4):
            key = f"{name}|emp|{q:g}"
            tta["calib_cv"][key] = {
                "tar_plain": float(pooled[key][tested & pairs_c["gen"]].mean()),
                "tar_tta": float(pooled_t[key][tested_t & pairs_c["gen"]].mean()),
                "fmr_plain": float(pooled[key][tested & ~pairs_c["gen"]].mean()),
                "fmr_tta": float(pooled_t[key][tested_t & ~pairs_c["gen"]].mean()),
                **paired_diff(pooled[key], pooled_t[key], pairs_c, tested, nid_c, w_c),
            }
            tta["dev"][key] = {
                "tar_plain": float(dec_d[key][pairs_d["gen"]].mean()),
                "tar_tta": float(dec_dt[key][pairs_d["gen"]].mean()),
                "fmr_plain": float(dec_d[key][~pairs_d["gen"]].mean()),
                "fmr_tta": float(dec_dt[key][~pairs_d["gen"]].mean()),
                **paired_diff(dec_d[key], dec_dt[key], pairs_d, all_d, nid_d, w_d),
            }
    tta["thresholds_tta_all_calib"] = strip(params_t["thresholds"])
    study_ct = template_study(params_t, pct, (1, 3, 5), 10, SEED + 7, (), rec, rules=("best", "mean"))
    tta["templates_calib"] = summarise_ids(study_ct, w_c)
    res["tta"] = tta

    # 6: gallery size
    gal = []
    for people in (10, 100, 1000, 10000):
        for photos in (1, 3, 5):
            faces = people * photos
            q = 1.0 - (1.0 - OP_FALSE_ACCEPT) ** (1.0 / faces)
            row: dict[str, Any] = {"people": people, "photos_each": photos, "faces": faces, "per_pair_fmr": q}
            for name in (*ENGINES, *FUSIONS):
                t = params["thresholds"][name]
                row[f"{name}_normal"] = normal_threshold(t["mean"], t["std"], q)
                n_imp = len(params["_imp"][name])
                row[f"{name}_emp"] = emp_threshold(params["_imp"][name], q) if q * n_imp >= 10 else None
            gal.append(row)
    res["gallery"] = {
        "false_accept_target": OP_FALSE_ACCEPT,
        "formula": "P(false accept of an unknown) ~= 1 - (1 - FMR)^(faces in gallery)",
        "table": gal,
        "operating_point": {
            "people": OP_PEOPLE,
            "photos_each": OP_PHOTOS,
            "per_pair_fmr": Q_OP,
            "thresholds": {
                name: {
                    "emp": params["thresholds"][name][f"emp_{Q_OP:g}"],
                    "normal": params["thresholds"][name][f"normal_{Q_OP:g}"],
                }
                for name in (*ENGINES, *FUSIONS)
            },
        },
    }

    log("dlib box check (YuNet box vs HOG box vs mapped box)")
    res["dlib_box_check"] = hog_study(calib, dev, hog)

    # timing
    tm = {}
    for name, d in (("calib", calib), ("dev", dev)):
        t = d["timing"][d["ok"]] * 1000.0
        cols = ("decode", "yunet_detect", "sface_align_embed", "dlib_align_embed", "sface_flip", "dlib_flip")
        tm[name] = {
            c: {"median_ms": float(np.median(t[:, i])), "mean_ms": float(np.mean(t[:, i]))} for i, c in enumerate(cols)
        }
        tm[name]["sface_path_median_ms"] = float(np.median(t[:, 1] + t[:, 2]))
        tm[name]["dlib_extra_median_ms"] = float(np.median(t[:, 3]))
    tm["note"] = (
        "one process, cv2.setNumThreads(1), nice 5, on the shared 2-core VM with other jobs running; "
        "decode+detect+align+embed per photo, largest face only"
    )
    res["timing"] = tm
    res["recommendations"] = recommendations(res)
    res["runtime_analysis_s"] = time.perf_counter() - t_start
    res["environment"] = environment()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy-study.json").write_text(json.dumps(strip(res), indent=1, sort_keys=False) + "\n")
    (args.out / "accuracy-study.md").write_text(render_md(strip(res)))
    log(f"wrote {args.out / 'accuracy-study.json'} and accuracy-study.md ({res['runtime_analysis_s']:.0f} s)")


def environment() -> dict[str, Any]:
    import cv2

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout
    except OSError:
        commit = ""
    try:
        import dlib

        dlib_version = dlib.__version__
    except ImportError:
        dlib_version = None
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "dlib": dlib_version,
        "machine": platform.machine(),
        "commit": commit.strip(),
    }


def _p(x: float | None, digits: int = 1) -> str:
    """Percentage."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _ci(c: list[float] | None, digits: int = 1) -> str:
    if not c or c[0] is None:
        return ""
    return f" [{100 * c[0]:.{digits}f}, {100 * c[1]:.{digits}f}]"


def _f(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _e(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2e}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


LABEL = {
    "sface": "SFace",
    "dlib": "dlib (YuNet box)",
    "fused_z": "fused z-score",
    "fused_lr": "fused logistic",
}


def degradation(res: dict[str, Any], name: str, q: str, rules: tuple[str, ...]) -> list[str]:
    """Sentences on whether more enrolment photos ever made a rule worse (open-set rank-1 down or false
    accepts up beyond the bootstrap noise)."""
    out = []
    for rule in rules:
        ks = [k for k in (1, 3, 5) if f"k{k}|{rule}|{name}|{q}" in res]
        rows = [res[f"k{k}|{rule}|{name}|{q}"] for k in ks]
        worse = []
        for (k0, a), (k1, b) in zip(zip(ks, rows, strict=True), zip(ks[1:], rows[1:], strict=True), strict=False):
            if b["open_rank1"] < a["open_rank1"]:
                worse.append(f"open-set rank-1 k={k0}->{k1}: {_p(a['open_rank1'])} -> {_p(b['open_rank1'])}")
            if b["unknown_false_accept"] > a["unknown_false_accept"]:
                worse.append(
                    f"unknown false accepts k={k0}->{k1}: {_p(a['unknown_false_accept'], 2)} -> "
                    f"{_p(b['unknown_false_accept'], 2)}"
                )
            if b["closed_rank1"] < a["closed_rank1"]:
                worse.append(f"closed-set rank-1 k={k0}->{k1}: {_p(a['closed_rank1'])} -> {_p(b['closed_rank1'])}")
        out.append(f"- {rule}: " + ("; ".join(worse) if worse else "never worse with more photos"))
    return out


def render_md(r: dict[str, Any]) -> str:
    fit_ = r["fit_all_calib"]
    th = fit_["thresholds"]
    cv, dev, ins = r["calib_cv"], r["dev"], r["calib_in_sample"]
    rec = r["fusion_choice"]["recommended"]
    L: list[str] = ["# Accuracy study: SFace, dlib on the YuNet box, and their fusion", ""]
    L += [
        "Generated by `bench/accuracy_study.py` (run it from the repository root; descriptors are cached under "
        "`/tmp/acc`). All numbers are in `accuracy-study.json`. Calib (LFW deep-funneled) is used for every fit; "
        "dev is only reported, with parameters fitted on all of calib. 95% CIs are percentile bootstraps "
        f"({r['n_boot']} resamples) over identities; they cover the evaluation, not the refitting. "
        "Thresholds are empirical quantiles of the impostor distances unless marked *normal*.",
        "",
    ]
    rows = []
    for name in ("calib", "dev"):
        d = r["data"][name]
        rows.append(
            [
                name,
                str(d["photos"]),
                str(d["photos_with_face"]),
                str(d["identities"]),
                str(d["genuine_pairs"]),
                str(d["impostor_pairs"]),
                ", ".join(d["no_face"]) or "none",
            ]
        )
    L += _table(
        [
            "set",
            "photos",
            "with a face",
            "identities",
            "same-person pairs",
            "different-person pairs",
            "YuNet found no face",
        ],
        rows,
    )

    # summary
    fz = fit_[rec]
    op = r["gallery"]["operating_point"]
    L += ["## Decisions", ""]
    tc = r["templates_calib"]["results"]
    td = r["templates_dev"]["results"]
    recs = r["recommendations"]
    alt_n = f"needs_dlib:{rec}:pm0.5sd|emp|0.0001"
    alt_b = f"band:{rec}:pm0.5sd|emp|0.0001"
    key4 = f"{rec}|emp|0.0001"
    rb = recs["band"]
    tr = recs["template_rule"]
    tr_text = "; ".join(
        f"{LABEL[s]}: {v['pick']} (k=3/5 mean open-set rank-1 / unknown false accepts: "
        + ", ".join(f"{rule} {_p(o)} / {_p(fa, 2)}" for rule, (o, fa) in v["open_rank1_and_fa_k3_k5"].items())
        + ")"
        for s, v in tr.items()
    )
    tta_text = "; ".join(
        f"{LABEL[k.split('|')[0]]} at FAR {k.split('|')[2]}: {_p(v['diff'], 2)}{_ci(v['ci95'], 2)}"
        + (" (helps)" if v["helps"] else " (not shown to help)")
        for k, v in recs["tta"].items()
    )
    L += [
        f"- **Fusion: {LABEL[rec]}.** {r['fusion_choice']['rule']}. Logistic minus z-score, held-out TAR at FAR "
        f"1e-4: {_p(r['fusion_choice']['lr_minus_z_cv']['0.0001']['tar_diff'], 2)}"
        f"{_ci(r['fusion_choice']['lr_minus_z_cv']['0.0001']['tar_diff_ci95'], 2)}; at 1e-3: "
        f"{_p(r['fusion_choice']['lr_minus_z_cv']['0.001']['tar_diff'], 2)}"
        f"{_ci(r['fusion_choice']['lr_minus_z_cv']['0.001']['tar_diff_ci95'], 2)}.",
        f"- **Normalisation (all calib):** SFace impostor mean {_f(fit_['sface']['mean'])}, std "
        f"{_f(fit_['sface']['std'])}; dlib impostor mean {_f(fit_['dlib']['mean'])}, std {_f(fit_['dlib']['std'])}. "
        f"Fused raw = {_f(fz['a_s'], 4)} x d_sface + {_f(fz['a_d'], 4)} x d_dlib (weights of the standardised "
        f"distances {_f(fz['weight_sface'], 3)} / {_f(fz['weight_dlib'], 3)}); its impostor mean {_f(fz['mean'])}, "
        f"std {_f(fz['std'])}; fused distance on SFace's scale = {_f(fit_['sface']['mean'])} + "
        f"{_f(fit_['sface']['std'])} x (raw - {_f(fz['mean'])}) / {_f(fz['std'])}.",
        f"- **Only when unsure:** {rb['name']} band on the SFace distance [{_f(rb['lo'])}, {_f(rb['hi'])}] around "
        f"the 1e-4 thresholds (SFace {_f(rb['t_sface'])}, fused {_f(rb['t_fused'])}): "
        f"{_p(rb['cv_pairs_needing_dlib'], 2)} of held-out calib pairs ({_p(rb['cv_same_person_pairs_needing_dlib'])}"
        f" of same-person pairs) and {_p(rb['dev_pairs_needing_dlib'], 2)} of dev pairs need dlib; identification "
        f"on calib ({r['templates_calib']['n_enroll']} people enrolled, best face): "
        f"{_p(rb['calib_probes_needing_dlib_k1'])} of probes with 1 photo each, "
        f"{_p(rb['calib_probes_needing_dlib_k3'])} with 3 (an unknown face's best SFace distance to hundreds of "
        "people usually lands in the band). Principle: narrowest band that decides as full fusion on >= 99.9% of "
        "same-person pairs and changes at most 0.1 x target x different-person pairs. Cheaper alternative: "
        f"threshold +- 0.5 SFace std [{_f(rb['t_sface'] - 0.5 * fit_['sface']['std'])}, "
        f"{_f(rb['t_sface'] + 0.5 * fit_['sface']['std'])}]: {_p(cv[alt_n]['share_all_pairs'], 2)} of pairs, "
        f"{_p(tc['k1|best|policy:band:pm0.5sd|0.0001']['all_needs_dlib'])} / "
        f"{_p(tc['k3|best|policy:band:pm0.5sd|0.0001']['all_needs_dlib'])} of probes (1 / 3 photos), held-out TAR "
        f"{_p(cv[alt_b]['tar'], 2)}, FMR {_e(cv[alt_b]['fmr'])} vs full fusion {_p(cv[key4]['tar'], 2)}, "
        f"{_e(cv[key4]['fmr'])} (section 3).",
        f"- **Template rule:** {tr_text}.",
        f"- **Flip TTA:** {tta_text}.",
        f"- **Operating point:** <= {_p(r['gallery']['false_accept_target'], 0)} false accepts on unknown faces with "
        f"{op['people']} people x {op['photos_each']} photos enrolled -> per-pair FMR {_e(op['per_pair_fmr'])}: "
        + ", ".join(
            f"{LABEL[n]} {_f(op['thresholds'][n]['emp'])} (normal fit {_f(op['thresholds'][n]['normal'])})"
            for n in ("sface", "dlib", rec)
        )
        + ".",
        "",
    ]
    nf = cv[f"{rec}|normal|0.0001"]
    bc0 = r.get("dlib_box_check", {})
    hb = bc0.get("hog_box", {}).get("calib_cv", {}).get("dlib|emp|0.0001", {}).get("tar")
    yb = bc0.get("yunet_box", {}).get("calib_cv", {}).get("dlib|emp|0.0001", {}).get("tar")
    L += [
        "Notes:",
        "",
        f"- dlib's descriptor is much weaker than SFace at low FAR (held-out TAR at 1e-4: "
        f"{_p(cv['dlib|emp|0.0001']['tar'], 1)} vs {_p(cv['sface|emp|0.0001']['tar'], 1)}); it is not the YuNet "
        f"box: on the same calib subset dlib's own HOG box gives {_p(hb)} vs {_p(yb)} (section *dlib box*). "
        "Fusion therefore adds little TAR; its main effect is fewer false accepts of unknown faces.",
        f"- Use empirical thresholds for fused scores: the normal fit of the fused impostor distances underestimates "
        f"the left tail (held-out FMR {_e(nf['fmr'])} at a 1e-4 target). For SFace the normal fit is adequate.",
        "- More enrolment photos raise unknown false accepts at a fixed per-pair threshold under every rule (the "
        "gallery holds more chances to match); mean-of-two-smallest raises them least.",
        "",
    ]
    L += ["### Headline numbers", ""]
    rows = []
    for name in ("sface", "dlib", "fused_z", "fused_lr"):
        for q in ("0.001", "0.0001"):
            k = f"{name}|emp|{q}"
            rows.append(
                [
                    LABEL[name],
                    q,
                    _p(cv[k]["tar"], 2) + _ci(cv[k].get("tar_ci95"), 2),
                    _e(cv[k]["fmr"]) + f" ({cv[k]['false_matches']}/{cv[k]['impostor']})",
                    _p(dev[k]["tar"], 2) + _ci(dev[k].get("tar_ci95"), 2),
                    _e(dev[k]["fmr"]) + f" ({dev[k]['false_matches']}/{dev[k]['impostor']})",
                ]
            )
        if name == rec:
            for q in ("0.001", "0.0001"):
                k = f"band:{rec}:principled|emp|{q}"
                rows.append(
                    [
                        f"{LABEL[rec]}, band only",
                        q,
                        _p(cv[k]["tar"], 2) + _ci(cv[k].get("tar_ci95"), 2),
                        _e(cv[k]["fmr"]) + f" ({cv[k]['false_matches']}/{cv[k]['impostor']})",
                        _p(dev[k]["tar"], 2) + _ci(dev[k].get("tar_ci95"), 2),
                        _e(dev[k]["fmr"]) + f" ({dev[k]['false_matches']}/{dev[k]['impostor']})",
                    ]
                )
    L += _table(["score", "target FAR", "calib CV TAR [95% CI]", "calib CV FMR", "dev TAR [95% CI]", "dev FMR"], rows)
    rows = []
    for name in ("sface", "dlib", "fused_z", "fused_lr"):
        for k in (1, 3):
            for tab, lab in ((tc, "calib"), (td, "dev")):
                x = tab.get(f"k{k}|best|{name}|0.0001")
                if x is None:
                    continue
                rows.append(
                    [
                        LABEL[name],
                        lab,
                        str(k),
                        _p(x["closed_rank1"]) + _ci(x.get("closed_rank1_ci95")),
                        _p(x["open_rank1"]) + _ci(x.get("open_rank1_ci95")),
                        _p(x["unknown_false_accept"], 2) + _ci(x.get("unknown_false_accept_ci95"), 2),
                    ]
                )
    L += [
        f"Identification (best-face rule, 1e-4 per-pair thresholds; calib: {r['templates_calib']['n_enroll']} "
        f"people enrolled per split, dev: {r['templates_dev']['n_enroll']}; {r['templates_calib']['n_splits']} "
        "random splits):",
        "",
    ]
    L += _table(
        ["score", "set", "photos/person", "closed-set rank-1", "open-set rank-1", "unknown false accepts"], rows
    )

    # 1
    L += ["## 1. Per engine: impostor distances and thresholds (all calib)", ""]
    rows = []
    for name in ("sface", "dlib", "fused_z", "fused_lr"):
        t = th[name]
        row = [LABEL[name], _f(t["mean"]), _f(t["std"])]
        for q in ("0.001", "0.0001", "1e-05"):
            row.append(f"{_f(t[f'emp_{q}'])} / {_f(t[f'normal_{q}'])}")
        row.append(" / ".join(_p(ins[f"{name}|emp|{q}"]["tar"], 2) for q in ("0.001", "0.0001", "1e-05")))
        rows.append(row)
    L += _table(
        [
            "score",
            "impostor mean",
            "impostor std",
            "FMR 1e-3 emp / normal",
            "FMR 1e-4 emp / normal",
            "FMR 1e-5 emp / normal",
            "TAR at FAR 1e-3 / 1e-4 / 1e-5 (in sample)",
        ],
        rows,
    )
    L += [
        "Fused scores are expressed on SFace's distance scale (same impostor mean and std), so their normal-fit "
        "thresholds equal SFace's by construction.",
        "",
    ]
    L += ["5-fold identity-disjoint cross-validation (thresholds fitted on 4 folds, pooled held-out pairs):", ""]
    rows = []
    for name in ("sface", "dlib", "fused_z", "fused_lr"):
        for q in ("0.001", "0.0001", "1e-05"):
            e, n = cv[f"{name}|emp|{q}"], cv[f"{name}|normal|{q}"]
            rows.append(
                [
                    LABEL[name],
                    q,
                    _e(e["fmr"]) + f" ({e['false_matches']})" + (_ci(e.get("fmr_ci95"), 3) if q != "1e-05" else ""),
                    _p(e["tar"], 2) + _ci(e.get("tar_ci95"), 2),
                    _e(n["fmr"]) + f" ({n['false_matches']})",
                    _p(n["tar"], 2),
                ]
            )
    L += _table(
        [
            "score",
            "target",
            "held-out FMR, empirical thr. (count) [CI %]",
            "held-out TAR, empirical",
            "held-out FMR, normal thr.",
            "held-out TAR, normal",
        ],
        rows,
    )

    # 2
    L += ["## 2. Score fusion", ""]
    rows = []
    for name in ("fused_z", "fused_lr"):
        f = fit_[name]
        rows.append(
            [
                LABEL[name],
                _f(f["a_s"]),
                _f(f["a_d"]),
                _f(f["weight_sface"], 3),
                _f(f["weight_dlib"], 3),
                _f(f["mean"]),
                _f(f["std"]),
            ]
        )
    L += _table(
        [
            "fusion",
            "a_sface",
            "a_dlib",
            "weight SFace (standardised)",
            "weight dlib",
            "raw impostor mean",
            "raw impostor std",
        ],
        rows,
    )
    lr = fit_["fused_lr"]["beta"]
    L += [
        f"Logistic regression (numpy IRLS, classes balanced, 200k impostor pairs sampled) on the standardised "
        f"distances: logit = {lr[0]:.3f} + {lr[1]:.3f} z_sface + {lr[2]:.3f} z_dlib. Only the direction matters "
        "after the impostor quantile sets the threshold.",
        "",
    ]
    d = r["fusion_choice"]["recommended_minus_sface_cv"]
    L += [
        f"{LABEL[rec]} minus SFace alone, held-out TAR: at 1e-3 {_p(d['0.001']['tar_diff'], 2)}"
        f"{_ci(d['0.001']['tar_diff_ci95'], 2)}, at 1e-4 {_p(d['0.0001']['tar_diff'], 2)}"
        f"{_ci(d['0.0001']['tar_diff_ci95'], 2)}.",
        "",
    ]

    o = r["calib_cv_tar_at_heldout_fmr"]
    L += [
        "Discriminative power without threshold transfer: held-out TAR at the threshold where the pooled held-out "
        "FMR equals the target (calib CV; fused scores of all folds are on SFace's scale):",
        "",
    ]
    L += _table(
        ["score", "FMR 1e-3", "FMR 1e-4", "FMR 1e-5"],
        [[LABEL[n], *(_p(o[n][q], 2) for q in ("0.001", "0.0001", "1e-05"))] for n in o],
    )

    # 3
    L += ["## 3. Only when unsure", ""]
    for q in ("0.0001", "0.001"):
        b = fit_["bands"][f"{rec}|{q}"]
        L += [
            f"FAR {q}: thresholds SFace {_f(b['t_sface'])}, fused {_f(b['t_fused'])}; principled band "
            f"[{_f(b['lo'])}, {_f(b['hi'])}] (narrowest band deciding as full fusion on >= 99.9% of same-person "
            "pairs and changing at most 0.1 x target x different-person pairs; fitted on all calib; the CV rows "
            "use bands fitted on the training folds). Matched band: the narrowest symmetric band (0.05 SFace-std "
            f"steps) whose training TAR and FMR are no worse than full fusion's; here "
            f"[{_f(fit_['bands'][f'{rec}|{q}|matched']['lo'])}, {_f(fit_['bands'][f'{rec}|{q}|matched']['hi'])}]. "
            "At 1e-4 full fusion's TAR is barely above SFace's, so this criterion is met by an almost empty band.",
            "",
        ]
        rows = []
        for bname in ("principled", "matched", "pm0.25sd", "pm0.5sd", "pm1sd", "pm1.5sd", "pm2sd", "pm3sd"):
            k = f"band:{rec}:{bname}|emp|{q}"
            n = cv[f"needs_dlib:{rec}:{bname}|emp|{q}"]
            nd = dev[f"needs_dlib:{rec}:{bname}|emp|{q}"]
            rows.append(
                [
                    bname,
                    _p(n["share_all_pairs"], 3),
                    _p(n["share_genuine"], 2),
                    _p(cv[k]["tar"], 2),
                    _e(cv[k]["fmr"]),
                    _p(cv[k]["agree_with_full_fusion_genuine"], 2),
                    f"+{cv[k]['extra_false_matches_vs_full']} / -{cv[k]['fewer_false_matches_vs_full']}",
                    _p(nd["share_all_pairs"], 2),
                    _p(dev[k]["tar"], 2),
                    _e(dev[k]["fmr"]),
                ]
            )
        rows.append(
            [
                "SFace alone",
                "0",
                "0",
                _p(cv[f"sface|emp|{q}"]["tar"], 2),
                _e(cv[f"sface|emp|{q}"]["fmr"]),
                "",
                "",
                "0",
                _p(dev[f"sface|emp|{q}"]["tar"], 2),
                _e(dev[f"sface|emp|{q}"]["fmr"]),
            ]
        )
        rows.append(
            [
                "full fusion",
                "100%",
                "100%",
                _p(cv[f"{rec}|emp|{q}"]["tar"], 2),
                _e(cv[f"{rec}|emp|{q}"]["fmr"]),
                "100%",
                "",
                "100%",
                _p(dev[f"{rec}|emp|{q}"]["tar"], 2),
                _e(dev[f"{rec}|emp|{q}"]["fmr"]),
            ]
        )
        L += _table(
            [
                "band (pmX sd = threshold +- X SFace impostor std)",
                "CV pairs needing dlib",
                "CV same-person pairs needing dlib",
                "CV TAR",
                "CV FMR",
                "CV same-person decisions as full fusion",
                "CV false matches vs full (+extra/-fewer)",
                "dev pairs needing dlib",
                "dev TAR",
                "dev FMR",
            ],
            rows,
        )
    L += [
        "Identification with the policy (1e-4 thresholds): a probe is *unsure* when its best SFace distance is in "
        "the band, or (gap policies) its two best people are within g on SFace; only then is its dlib descriptor "
        "computed and the fused score used for the people in the band (and the top two).",
        "",
    ]
    for tab, lab in ((tc, "calib"), (td, "dev")):
        for k in (1, 3):
            rows = []
            for pname in ("sface", rec):
                x = tab.get(f"k{k}|best|{pname}|0.0001")
                if x:
                    rows.append(
                        [
                            LABEL[pname] + (" (always)" if pname == rec else ""),
                            "100%" if pname == rec else "0%",
                            _p(x["closed_rank1"]),
                            _p(x["open_rank1"]),
                            _p(x["unknown_false_accept"], 2),
                        ]
                    )
            for key, x in tab.items():
                if key.startswith(f"k{k}|best|policy:"):
                    rows.append(
                        [
                            key.split("policy:")[1].rsplit("|", 1)[0],
                            _p(x["all_needs_dlib"]),
                            _p(x["closed_rank1"]),
                            _p(x["open_rank1"]),
                            _p(x["unknown_false_accept"], 2),
                        ]
                    )
            if rows:
                L += [f"{lab}, {k} photo(s) per person, best face:", ""]
                L += _table(
                    ["policy", "probes needing dlib", "closed-set rank-1", "open-set rank-1", "unknown false accepts"],
                    rows,
                )

    # 4
    for tab, lab, st in ((tc, "calib", r["templates_calib"]), (td, "dev", r["templates_dev"])):
        L += [f"## 4. Person templates ({lab})", ""]
        L += [
            f"{st['n_enroll']} of {st['eligible']} identities with >= 6 photos enrolled per split "
            f"({st['n_splits']} splits); known probes are their photos beyond the 5-photo enrolment pool (the same "
            "probes for k = 1, 3, 5), unknown probes every photo of everyone else. Thresholds: per-pair FMR "
            "(empirical, all calib).",
            "",
        ]
        for q in ("0.0001", "1e-05"):
            rows = []
            for rule in RULES:
                for k in (1, 3, 5):
                    row = [rule, str(k)]
                    have = False
                    for name in ("sface", "dlib", "fused_z", "fused_lr"):
                        x = tab.get(f"k{k}|{rule}|{name}|{q}")
                        if x is None:
                            row.append("")
                            continue
                        have = True
                        row.append(
                            f"{_p(x['open_rank1'])} / {_p(x['unknown_false_accept'], 2)} / {_p(x['closed_rank1'])}"
                        )
                    if have:
                        rows.append(row)
            L += [f"FMR {q}: open-set rank-1 / unknown false accepts / closed-set rank-1", ""]
            L += _table(["rule", "photos", *(LABEL[n] for n in ("sface", "dlib", "fused_z", "fused_lr"))], rows)
        L += ["Does a rule ever get worse with more photos (point estimates, FMR 1e-4)?", ""]
        for name in ("sface", "dlib", rec):
            L += [f"{LABEL[name]}:", *degradation(tab, name, "0.0001", RULES), ""]
    x = r["templates_dev_k1_all"]
    L += [
        f"Dev, 1 photo per person over all {x['eligible']} identities with >= 2 photos "
        f"({x['n_enroll']} enrolled per split), FMR 1e-4:",
        "",
    ]
    rows = []
    for name in ("sface", "dlib", "fused_z", "fused_lr"):
        y = x["results"][f"k1|best|{name}|0.0001"]
        rows.append(
            [
                LABEL[name],
                _p(y["closed_rank1"]) + _ci(y.get("closed_rank1_ci95")),
                _p(y["open_rank1"]) + _ci(y.get("open_rank1_ci95")),
                _p(y["unknown_false_accept"], 2) + _ci(y.get("unknown_false_accept_ci95"), 2),
            ]
        )
    L += _table(["score", "closed-set rank-1", "open-set rank-1", "unknown false accepts"], rows)

    # 5
    L += [
        "## 5. Flip TTA",
        "",
        "Plain descriptor vs TTA (SFace: normalised mean of plain and flipped crop; dlib: mean "
        "of plain and flipped chip). Held-out TAR at the CV thresholds; difference with a paired identity "
        "bootstrap.",
        "",
    ]
    rows = []
    for lab in ("calib_cv", "dev"):
        for key, v in r["tta"][lab].items():
            name, _, q = key.split("|")
            rows.append(
                [
                    lab,
                    LABEL[name],
                    q,
                    _p(v["tar_plain"], 2),
                    _p(v["tar_tta"], 2),
                    _p(v["tar_diff"], 2) + _ci(v["tar_diff_ci95"], 2),
                    _e(v["fmr_plain"]),
                    _e(v["fmr_tta"]),
                ]
            )
    L += _table(["set", "score", "FAR", "TAR plain", "TAR TTA", "TTA - plain [95% CI]", "FMR plain", "FMR TTA"], rows)
    rows = []
    tt = r["tta"]["templates_calib"]
    for name in ("sface", "dlib", rec):
        for k in (1, 3):
            a, b = tc.get(f"k{k}|best|{name}|0.0001"), tt.get(f"k{k}|best|{name}|0.0001")
            if a and b:
                rows.append(
                    [
                        LABEL[name],
                        str(k),
                        f"{_p(a['open_rank1'])} / {_p(a['unknown_false_accept'], 2)}",
                        f"{_p(b['open_rank1'])} / {_p(b['unknown_false_accept'], 2)}",
                    ]
                )
    L += [
        "Identification on calib (best face, 1e-4 thresholds refitted on TTA descriptors): open-set rank-1 / "
        "unknown false accepts",
        "",
    ]
    L += _table(["score", "photos", "plain", "TTA"], rows)

    # 6
    g = r["gallery"]
    L += [
        "## 6. Gallery size",
        "",
        f"{g['formula']}; the table gives the per-pair FMR that keeps it at "
        f"{_p(g['false_accept_target'], 0)} and the thresholds it implies (empirical where calib has >= 10 "
        "impostor pairs beyond it, else normal fit only).",
        "",
    ]
    rows = []
    for row in g["table"]:
        rows.append(
            [
                str(row["people"]),
                str(row["photos_each"]),
                str(row["faces"]),
                _e(row["per_pair_fmr"]),
                *(f"{_f(row[f'{n}_emp'])} / {_f(row[f'{n}_normal'])}" for n in ("sface", "dlib", rec)),
            ]
        )
    L += _table(
        [
            "people",
            "photos each",
            "faces",
            "per-pair FMR",
            *(f"{LABEL[n]} emp / normal" for n in ("sface", "dlib", rec)),
        ],
        rows,
    )
    qop = f"{op['per_pair_fmr']:g}"
    rows = []
    for tab, lab, st in ((tc, "calib", r["templates_calib"]), (td, "dev", r["templates_dev"])):
        for name in ("sface", "dlib", rec):
            for k in (1, 3, 5):
                x = tab.get(f"k{k}|best|{name}|{qop}")
                if not x:
                    continue
                faces = st["n_enroll"] * k
                pred = 1 - (1 - op["per_pair_fmr"]) ** faces
                rows.append(
                    [
                        lab,
                        LABEL[name],
                        str(k),
                        str(faces),
                        _p(pred, 2),
                        _p(x["unknown_false_accept"], 2) + _ci(x.get("unknown_false_accept_ci95"), 2),
                        _p(x["open_rank1"]) + _ci(x.get("open_rank1_ci95")),
                    ]
                )
    L += [
        f"At the proposed operating point (per-pair FMR {_e(op['per_pair_fmr'])}), the formula vs what the "
        "template study observes (best face):",
        "",
    ]
    L += _table(
        [
            "set",
            "score",
            "photos",
            "faces in gallery",
            "predicted false accepts",
            "observed false accepts",
            "open-set rank-1",
        ],
        rows,
    )

    # dlib box check
    bc = r.get("dlib_box_check")
    if bc:
        m = bc["mapping"]
        L += [
            "## dlib: YuNet box vs its own HOG box",
            "",
            f"Side check on {bc['calib_photos']} calib photos ({bc['calib_identities']} identities, every third name) "
            f"and all {bc['dev_photos']} dev photos: dlib's 5-point shape predictor inside YuNet's box (the fused "
            "design), inside dlib's own HOG box (dlib engine as shipped, HOG detect on the image scaled to 640 px), "
            "and inside YuNet's box moved/scaled to HOG's median geometry (fitted on the calib subset: centre shift "
            f"dx {m['dx']:+.3f} w, dy {m['dy']:+.3f} h, size x{m['sw']:.3f} w, x{m['sh']:.3f} h). CV thresholds "
            "refitted per variant on the subset.",
            "",
        ]
        rows = []
        for v in ("yunet_box", "hog_box", "mapped_box"):
            for key in ("dlib|emp|0.001", "dlib|emp|0.0001", "fused_z|emp|0.001", "fused_z|emp|0.0001"):
                c, d = bc[v]["calib_cv"][key], bc[v]["dev"][key]
                name, _, q = key.split("|")
                rows.append(
                    [
                        v,
                        "dlib" if name == "dlib" else LABEL[name],
                        q,
                        _p(c["tar"], 2) + _ci(c.get("tar_ci95"), 2),
                        _e(c["fmr"]),
                        _p(d["tar"], 2),
                        _e(d["fmr"]),
                    ]
                )
        L += _table(["box", "score", "FAR", "calib-subset CV TAR [95% CI]", "CV FMR", "dev TAR", "dev FMR"], rows)

    # timing
    L += ["## Time per photo", ""]
    rows = []
    for lab in ("calib", "dev"):
        t = r["timing"][lab]
        rows.append(
            [
                lab,
                *(
                    _f(t[c]["median_ms"], 1)
                    for c in (
                        "decode",
                        "yunet_detect",
                        "sface_align_embed",
                        "dlib_align_embed",
                        "sface_flip",
                        "dlib_flip",
                    )
                ),
            ]
        )
    L += _table(
        [
            "set (median ms)",
            "decode",
            "YuNet detect",
            "SFace align+embed",
            "dlib shape+chip+embed",
            "SFace flip embed",
            "dlib flip embed",
        ],
        rows,
    )
    L += [r["timing"]["note"] + ".", ""]
    e = r["environment"]
    L += [
        f"Environment: Python {e['python']}, numpy {e['numpy']}, OpenCV {e['opencv']}, dlib {e['dlib']}, "
        f"commit {e['commit'][:12]}; analysis {r['runtime_analysis_s']:.0f} s.",
        "",
    ]
    return "\n".join(L)


# ----------------------------------------------------------------------------------------------------------------
# Side check: is dlib hurt by running its shape predictor inside YuNet's box instead of its own HOG box?

HOG_SUBSET_IDS = 120  # calib identities (sorted names, every third) in the check; dev: all photos


def hog_subset(data: dict[str, np.ndarray], every: int) -> np.ndarray:
    names = sorted(set(data["identity"].tolist()))
    keep = set(names[::every])
    return np.array([i for i, n in enumerate(data["identity"]) if n in keep and data["ok"][i]], np.int64)


def embed_dlib_boxes(
    root: Path, data: dict[str, np.ndarray], idx: np.ndarray, cache_file: Path, mapping: dict[str, float] | None
) -> dict[str, np.ndarray]:
    """dlib descriptors of photos idx with dlib's own HOG box (mapping None) or with YuNet's box moved and scaled
    by `mapping` (median HOG-vs-YuNet geometry fitted on calib). Cached."""
    paths = data["paths"][idx]
    if cache_file.exists():
        c = dict(np.load(cache_file, allow_pickle=False))
        same_map = mapping is None or np.allclose(c.get("mapping", np.zeros(4)), _map_vec(mapping))
        if list(c["paths"]) == list(paths) and same_map:
            log(f"{cache_file.name}: from cache")
            return c
    import cv2

    from facegate.config import DlibEngineSettings
    from facegate.vision.dlib_engine import DlibEngine
    from facegate.vision.engine import Detection
    from facegate.vision.images import decode

    cv2.setNumThreads(1)
    eng = DlibEngine(DlibEngineSettings())
    eng.open()
    n = len(idx)
    vec = np.zeros((n, 128), np.float32)
    rect = np.zeros((n, 4), np.float32)
    ok = np.zeros(n, bool)
    t0 = time.perf_counter()
    for j, i in enumerate(idx):
        img = decode((root / str(data["paths"][i])).read_bytes(), max_pixels=40_000_000)
        if mapping is None:
            dets = eng.detect(img)
            if not dets:
                continue
            det = max(dets, key=lambda d: d.box.area)
        else:
            left, top, w, h = (float(v) for v in data["box"][i])
            cx = left + w / 2 + mapping["dx"] * w
            cy = top + h / 2 + mapping["dy"] * h
            hw, hh = mapping["sw"] * w / 2, mapping["sh"] * h / 2
            raw = np.array([round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh)], np.float32)
            det = Detection(box=None, score=1.0, landmarks=np.zeros((5, 2), np.float32), raw=raw)  # type: ignore[arg-type]
        vec[j] = eng.embed(eng.align(img, det))
        rect[j] = det.raw
        ok[j] = True
        if (j + 1) % 100 == 0 or j + 1 == n:
            el = time.perf_counter() - t0
            log(f"{cache_file.name}: {j + 1}/{n} ({el:.0f} s)")
    out = {"paths": paths, "idx": idx, "ok": ok, "rect": rect, "dlib": vec}
    if mapping is not None:
        out["mapping"] = _map_vec(mapping)
    tmp = cache_file.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(cache_file)
    return out


def _map_vec(m: dict[str, float]) -> np.ndarray:
    return np.array([m["dx"], m["dy"], m["sw"], m["sh"]])


def fit_box_mapping(data: dict[str, np.ndarray], hog: dict[str, np.ndarray]) -> dict[str, float]:
    """Median geometry of dlib's HOG box relative to YuNet's box (centre shift in box sizes, size ratio)."""
    i = hog["idx"][hog["ok"]]
    r = hog["rect"][hog["ok"]].astype(np.float64)
    left, top, w, h = (data["box"][i, k].astype(np.float64) for k in range(4))
    hw, hh = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
    return {
        "dx": float(np.median(((r[:, 0] + r[:, 2]) / 2 - (left + w / 2)) / w)),
        "dy": float(np.median(((r[:, 1] + r[:, 3]) / 2 - (top + h / 2)) / h)),
        "sw": float(np.median(hw / w)),
        "sh": float(np.median(hh / h)),
    }


def hog_inputs(args: argparse.Namespace, calib: dict[str, np.ndarray], dev: dict[str, np.ndarray]) -> dict[str, Any]:
    sub_c = hog_subset(calib, max(1, round(len(set(calib["identity"].tolist())) / HOG_SUBSET_IDS)))
    sub_d = np.flatnonzero(dev["ok"])
    hog_c = embed_dlib_boxes(args.calib, calib, sub_c, args.cache / "calib_hog.npz", None)
    hog_d = embed_dlib_boxes(args.dev, dev, sub_d, args.cache / "dev_hog.npz", None)
    mapping = fit_box_mapping(calib, hog_c)
    log(f"HOG box vs YuNet box (median, calib subset): {mapping}")
    map_c = embed_dlib_boxes(args.calib, calib, sub_c, args.cache / "calib_mapped.npz", mapping)
    map_d = embed_dlib_boxes(args.dev, dev, sub_d, args.cache / "dev_mapped.npz", mapping)
    return {"mapping": mapping, "calib": (hog_c, map_c), "dev": (hog_d, map_d)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", type=Path, default=Path("/work/shared/faces/calib"))
    ap.add_argument("--dev", type=Path, default=Path("/work/shared/faces/dev"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/acc"))
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--embed-only", action="store_true", help="compute/cache the descriptors and stop")
    args = ap.parse_args()
    calib = embed_set(args.calib, args.cache / "calib.npz")
    dev = embed_set(args.dev, args.cache / "dev.npz")
    hog = hog_inputs(args, calib, dev)
    if args.embed_only:
        return
    run_study(calib, dev, args, hog)


if __name__ == "__main__":
    main()
