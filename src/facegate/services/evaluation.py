"""Accuracy on a labelled face set: verification pairs, threshold calibration, open-set identification.

A face set is a folder of `<identity>/<photos>`, optionally with `pairs.csv` (left,right,same).
Thresholds are chosen by principle, not by fitting: the distance at which a target share of
different-person pairs would be wrongly accepted (false-match rate), checked on held-out identities.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.errors import FacegateError, InvalidInput
from facegate.vision.engine import Embedding, EngineInfo, distance
from facegate.vision.pool import EnginePool

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
# Folders of a face set that are not identities.
NON_IDENTITY_DIRS = frozenset({"multi", "noface", "video"})

Progress = Callable[[int], None]
FloatArray = npt.NDArray[np.float64]


@dataclass
class FaceSet:
    root: Path
    photos: dict[str, list[Path]]  # identity -> photos
    pairs: list[tuple[str, str, bool]]  # relative paths, same person?


def load_faceset(root: Path) -> FaceSet:
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder of <identity>/<photos>.", code="faceset_not_found")
    photos: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NON_IDENTITY_DIRS):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            photos[folder.name] = files
    if not photos:
        raise InvalidInput(f"No identity folders with photos under {root}.", code="faceset_empty")
    pairs: list[tuple[str, str, bool]] = []
    pairs_file = root / "pairs.csv"
    if pairs_file.is_file():
        with pairs_file.open() as fh:
            pairs = [(r["left"], r["right"], r["same"].strip() == "1") for r in csv.DictReader(fh)]
    return FaceSet(root, photos, pairs)


@dataclass
class Embedded:
    """The largest face of each photo that has one, by path relative to the face set root."""

    vectors: dict[str, Embedding]
    identity: dict[str, str]
    failed: list[str] = field(default_factory=list)


def embed_faceset(faceset: FaceSet, pool: EnginePool, *, max_pixels: int, progress: Progress | None = None) -> Embedded:
    jobs = []
    for identity, files in faceset.photos.items():
        for path in files:
            rel = path.relative_to(faceset.root).as_posix()
            jobs.append(
                (rel, identity, pool.submit(path.read_bytes(), max_pixels=max_pixels, max_faces=1, crops=False))
            )
    result = Embedded({}, {})
    for rel, identity, future in jobs:
        try:
            analysis = pool.wait(future)
        except FacegateError:
            analysis = None
        if analysis is None or not analysis.faces:
            result.failed.append(rel)
        else:
            result.vectors[rel] = analysis.faces[0].embedding
            result.identity[rel] = identity
        if progress:
            progress(1)
    return result


def _distances(info: EngineInfo, emb: Embedded, pairs: list[tuple[str, str]]) -> FloatArray:
    return np.array([distance(info.metric, emb.vectors[a], emb.vectors[b]) for a, b in pairs], dtype=np.float64)


def threshold_at_far(impostor: FloatArray, far: float) -> float:
    """Largest distance that accepts at most `far` of the impostor (different-person) distances."""
    ordered = np.sort(impostor)
    allowed = int(np.floor(far * len(ordered)))
    # Accept strictly below the (allowed)-th smallest impostor distance.
    cut = ordered[allowed] if allowed < len(ordered) else ordered[-1] + 1e-6
    return float(np.nextafter(cut, -np.inf))


def verification(genuine: FloatArray, impostor: FloatArray, threshold: float) -> dict[str, float]:
    tar = float(np.mean(genuine <= threshold)) if len(genuine) else 0.0
    far = float(np.mean(impostor <= threshold)) if len(impostor) else 0.0
    accuracy = (np.sum(genuine <= threshold) + np.sum(impostor > threshold)) / max(1, len(genuine) + len(impostor))
    return {
        "threshold": round(threshold, 4),
        "accuracy": round(float(accuracy), 4),
        "tar": round(tar, 4),
        "far": round(far, 5),
    }


def best_accuracy_threshold(genuine: FloatArray, impostor: FloatArray) -> float:
    candidates = np.unique(np.concatenate([genuine, impostor]))
    best, best_acc = float(candidates[0]), -1.0
    for t in candidates:
        acc = (np.sum(genuine <= t) + np.sum(impostor > t)) / (len(genuine) + len(impostor))
        if acc > best_acc:
            best, best_acc = float(t), float(acc)
    return best


def pairs_report(info: EngineInfo, faceset: FaceSet, emb: Embedded) -> dict[str, Any]:
    usable = [(a, b, same) for a, b, same in faceset.pairs if a in emb.vectors and b in emb.vectors]
    genuine = _distances(info, emb, [(a, b) for a, b, same in usable if same])
    impostor = _distances(info, emb, [(a, b) for a, b, same in usable if not same])
    if not len(genuine) or not len(impostor):
        return {"pairs": len(faceset.pairs), "usable": len(usable)}
    return {
        "pairs": len(faceset.pairs),
        "usable": len(usable),
        "at_default": verification(genuine, impostor, info.threshold),
        "at_best_threshold": verification(genuine, impostor, best_accuracy_threshold(genuine, impostor)),
        "tar_at_far_1pct": verification(genuine, impostor, threshold_at_far(impostor, 0.01)),
    }


def _all_pairs(emb: Embedded, identities: set[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    keys = sorted(k for k in emb.vectors if emb.identity[k] in identities)
    genuine: list[tuple[str, str]] = []
    impostor: list[tuple[str, str]] = []
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            (genuine if emb.identity[a] == emb.identity[b] else impostor).append((a, b))
    return genuine, impostor


def threshold_normal_tail(impostor: FloatArray, far: float) -> float:
    """Distance below which a normal fitted to the impostor distances puts `far` of its mass.

    Small targets (1e-4 and below) cannot be read off a few thousand pairs; the impostor distances of an
    embedding model are close to normal, so the fitted tail extrapolates where the empirical one runs out.
    """
    return float(np.mean(impostor) + NormalDist().inv_cdf(far) * np.std(impostor))


def calibrate(info: EngineInfo, emb: Embedded, *, target_far: float, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Threshold for a target false-match rate on all different-person photo pairs, k-fold by identity.

    Each fold's threshold is fitted on the other folds' identities only and then measured on the
    held-out identities, so the reported FAR/TAR are for people the threshold never saw.
    """
    names = sorted(set(emb.identity.values()))
    random.Random(seed).shuffle(names)
    fold_of = {name: i % folds for i, name in enumerate(names)}
    per_fold = []
    for k in range(folds):
        train = {n for n in names if fold_of[n] != k}
        test = {n for n in names if fold_of[n] == k}
        _, train_impostor = _all_pairs(emb, train)
        test_genuine, test_impostor = _all_pairs(emb, test)
        t = threshold_normal_tail(_distances(info, emb, train_impostor), target_far)
        genuine = _distances(info, emb, test_genuine)
        impostor = _distances(info, emb, test_impostor)
        per_fold.append(
            {
                "threshold": t,
                "held_out_far": float(np.mean(impostor <= t)) if len(impostor) else 0.0,
                "held_out_tar": float(np.mean(genuine <= t)) if len(genuine) else 0.0,
            }
        )
    genuine_all, impostor_all = _all_pairs(emb, set(names))
    impostor_d = _distances(info, emb, impostor_all)
    genuine_d = _distances(info, emb, genuine_all)
    t_all = threshold_normal_tail(impostor_d, target_far)
    return {
        "target_far": target_far,
        "method": "normal fit to different-person distances, 5-fold by identity",
        "folds": folds,
        "impostor_pairs": len(impostor_all),
        "genuine_pairs": len(genuine_all),
        "threshold_all_data": round(t_all, 4),
        "threshold_mean_of_folds": round(float(np.mean([f["threshold"] for f in per_fold])), 4),
        "held_out_far": round(float(np.mean([f["held_out_far"] for f in per_fold])), 5),
        "held_out_tar": round(float(np.mean([f["held_out_tar"] for f in per_fold])), 4),
        "all_data_far": round(float(np.mean(impostor_d <= t_all)), 5),
        "all_data_tar": round(float(np.mean(genuine_d <= t_all)), 4),
        "empirical_threshold_at_far_0.001": round(threshold_at_far(impostor_d, 0.001), 4),
        "closest_impostor_distance": round(float(impostor_d.min()), 4) if len(impostor_d) else None,
    }


def open_set(
    info: EngineInfo, emb: Embedded, *, enrolled_share: float = 0.5, splits: int = 10, seed: int = 0
) -> dict[str, Any]:
    """Enroll one photo each for part of the identities; probe with their other photos (should match)
    and with every photo of never-enrolled people (should come back unknown). Averaged over splits."""
    by_identity: dict[str, list[str]] = {}
    for key, name in emb.identity.items():
        by_identity.setdefault(name, []).append(key)
    multi = sorted(n for n, keys in by_identity.items() if len(keys) >= 2)
    rng = random.Random(seed)
    rank1, dir_rates, false_accepts = [], [], []
    known_total = unknown_total = 0
    for _ in range(splits):
        enrolled = set(rng.sample(multi, max(1, round(len(multi) * enrolled_share))))
        gallery = {n: rng.choice(sorted(by_identity[n])) for n in enrolled}
        known_probes = [(k, n) for n in enrolled for k in by_identity[n] if k != gallery[n]]
        unknown_probes = [k for n, keys in by_identity.items() if n not in enrolled for k in keys]
        names = sorted(gallery)
        g = [emb.vectors[gallery[n]] for n in names]

        def nearest(key: str, names: list[str] = names, g: list[Embedding] = g) -> tuple[str, float]:
            d = [distance(info.metric, emb.vectors[key], v) for v in g]
            i = int(np.argmin(d))
            return names[i], d[i]

        hits = [nearest(k) for k, _ in known_probes]
        rank1.append(np.mean([h[0] == n for h, (_, n) in zip(hits, known_probes, strict=True)]))
        dir_rates.append(
            np.mean([h[0] == n and h[1] <= info.threshold for h, (_, n) in zip(hits, known_probes, strict=True)])
        )
        false_accepts.append(np.mean([nearest(k)[1] <= info.threshold for k in unknown_probes]))
        known_total += len(known_probes)
        unknown_total += len(unknown_probes)
    return {
        "splits": splits,
        "enrolled_identities": round(len(multi) * enrolled_share),
        "known_probes_per_split": known_total // splits,
        "unknown_probes_per_split": unknown_total // splits,
        "threshold": info.threshold,
        "rank1": round(float(np.mean(rank1)), 4),
        "identified_at_threshold": round(float(np.mean(dir_rates)), 4),
        "false_accept_rate_unknown": round(float(np.mean(false_accepts)), 4),
    }


def evaluate(
    faceset: FaceSet, pool: EnginePool, *, max_pixels: int, target_far: float = 0.0001, progress: Progress | None = None
) -> dict[str, Any]:
    info = pool.info
    emb = embed_faceset(faceset, pool, max_pixels=max_pixels, progress=progress)
    return {
        "engine": {
            "name": info.name,
            "model_version": info.model_version,
            "metric": info.metric,
            "default_threshold": info.threshold,
        },
        "faceset": {
            "root": str(faceset.root),
            "identities": len(faceset.photos),
            "photos": sum(len(v) for v in faceset.photos.values()),
            "no_face": emb.failed,
        },
        "pairs": pairs_report(info, faceset, emb),
        "calibration": calibrate(info, emb, target_far=target_far),
        "open_set": open_set(info, emb),
    }
