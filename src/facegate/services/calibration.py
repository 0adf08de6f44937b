"""Thresholds and score normalisation, fitted on a labelled face set by principle, checked on held-out people.

The operating point is a share of false accepts on unknown faces for a stated gallery size: an unknown face is
compared with every enrolled person, so with G people the chance that at least one passes is about
1 - (1 - FMR)^G, and the per-pair false-match rate (FMR) target is 1 - (1 - false_accepts)^(1/G). Each engine's
threshold is the distance that accepts that share of every different-person photo pair of the set (an
empirical quantile: 370 identities give ~3M such pairs, ~150 of them below a 5e-5 target).

The fused engine: each engine's distances are z-scored against their different-person mean and spread; the
mean of the two z-scores is standardised again and put back on SFace's scale (`FusionRule`), and its threshold
is set the same way, then shifted onto SFace's threshold (one threshold for both). The band where the second
descriptor is computed covers 80% of the pairs whose decision fusion changes (SFace alone decides the others).

`cross_validate` repeats the fit on 4/5 of the people and measures on the other 1/5, so every reported figure
is for people the thresholds never saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from facegate.calibration import Calibration, EngineCalibration, FusionCalibration, shipped
from facegate.config import Template
from facegate.services.accuracy import FloatArray, IntArray, System, impostor_and_genuine, rate, threshold_at_far
from facegate.vision.engine import EngineInfo

if TYPE_CHECKING:
    from facegate.services.evaluation import Distances

FOLDS = 5
# Share of the decisions fusion changes that fall inside the band (the rest keep SFace's decision). On calib,
# cross-validated, every coverage from 0.5 to 0.99 gave the same open-set rank-1, false accepts, TAR and FMR
# within noise, while the share of identify probes needing the second descriptor grew from 2% to 32%
# (bench/fusion_band.py, bench/results/fusion-band.json): 0.8 keeps a margin for photos unlike calib's at 5%.
BAND_COVERAGE = 0.8


def per_pair_fmr(false_accepts: float, gallery_people: int) -> float:
    return float(1.0 - (1.0 - false_accepts) ** (1.0 / gallery_people))


def calibrated_distance(info: EngineInfo, false_match_rate: float) -> float:
    """The distance two different people's faces fall below with probability `false_match_rate` (per pair), from
    the shipped calibration's different-person distances of this engine's space (normal tail: mean + std * z),
    never above identify's threshold; identify's threshold for a space without calibration. The stricter bars
    (grouping unknown faces, relabelling history, auto-enrollment) all come from here."""
    calibration = getattr(shipped(), info.name, None)
    if not isinstance(calibration, EngineCalibration):
        return info.threshold
    tail = NormalDist(calibration.impostor_mean, calibration.impostor_std).inv_cdf(false_match_rate)
    return min(info.threshold, round(tail, 4))


def _stricter(threshold: float) -> float:
    """Rounded to 4 decimals toward the stricter side, so rounding never accepts more than the target."""
    return math.floor(threshold * 1e4) / 1e4


def _engine(distances: FloatArray, identity: np.ndarray[Any, Any], fmr: float) -> EngineCalibration:
    (i, j), same = impostor_and_genuine(identity)
    impostor = distances[i, j][~same]
    return EngineCalibration(
        threshold=_stricter(threshold_at_far(impostor, fmr)),
        impostor_mean=round(float(impostor.mean()), 5),
        impostor_std=round(float(impostor.std()), 5),
    )


def fit(
    distances: Distances,
    *,
    false_accepts: float,
    gallery_people: int,
    fused_keep: IntArray | None = None,
    dlib_keep: IntArray | None = None,
) -> Calibration:
    """Thresholds and normalisation from the photos in `fused_keep` / `dlib_keep` (default: all)."""
    fmr = per_pair_fmr(false_accepts, gallery_people)
    fa, da = distances.fused_pass, distances.dlib_pass
    fk = np.arange(len(fa.keys)) if fused_keep is None else fused_keep
    dk = np.arange(len(da.keys)) if dlib_keep is None else dlib_keep
    identity = fa.identity[fk]
    sface = distances.sface[np.ix_(fk, fk)]
    second = distances.dlib_in_yunet[np.ix_(fk, fk)]
    opencv = _engine(sface, identity, fmr)
    secondary = _engine(second, identity, fmr)
    (i, j), same = impostor_and_genuine(identity)
    z = (
        (sface[i, j] - opencv.impostor_mean) / opencv.impostor_std
        + (second[i, j] - secondary.impostor_mean) / secondary.impostor_std
    ) / 2
    fused_mean, fused_std = float(z[~same].mean()), float(z[~same].std())
    fused = opencv.impostor_mean + opencv.impostor_std * (z - fused_mean) / fused_std
    # Shifted so that its threshold for the target is SFace's: one threshold for both.
    offset = opencv.threshold - threshold_at_far(fused[~same], fmr)
    fused += offset
    threshold = opencv.threshold
    primary = sface[i, j]
    changed = (primary <= threshold) != (fused <= threshold)
    tail = (1.0 - BAND_COVERAGE) / 2
    low, high = np.quantile(primary[changed], [tail, 1.0 - tail]) if changed.any() else np.array([threshold, threshold])
    return Calibration(
        faceset=str(distances.faceset.root),
        created=datetime.now(UTC).strftime("%Y-%m-%d"),
        target_false_match_rate=float(f"{fmr:.3g}"),
        gallery_people=gallery_people,
        false_accepts=false_accepts,
        operating_point=(
            f"at most {false_accepts:.0%} false accepts on unknown faces with {gallery_people} people enrolled "
            f"(one photo each): per-pair false-match rate {fmr:.2g}"
        ),
        flip=distances.flip,
        opencv=opencv,
        dlib=_engine(distances.dlib[np.ix_(dk, dk)], da.identity[dk], fmr),
        fusion=FusionCalibration(
            threshold=threshold,
            secondary_mean=secondary.impostor_mean,
            secondary_std=secondary.impostor_std,
            fused_mean=round(fused_mean, 5),
            fused_std=round(fused_std, 5),
            offset=round(offset, 5),
            band_low=round(float(min(low, threshold)), 4),
            band_high=round(float(max(high, threshold)), 4),
        ),
    )


@dataclass
class _Errors:
    """Per held-out photo pair at its fold's threshold: different-person pairs accepted, same-person pairs
    refused, each with the pair's first person (intervals resample people)."""

    false_match: list[FloatArray] = field(default_factory=list)
    false_match_people: list[np.ndarray[Any, Any]] = field(default_factory=list)
    false_non_match: list[FloatArray] = field(default_factory=list)
    false_non_match_people: list[np.ndarray[Any, Any]] = field(default_factory=list)

    def add(self, system: System) -> None:
        (i, j), same = impostor_and_genuine(system.identity)
        accepted = system.pair_scores()[i, j] <= system.threshold
        people = system.identity[i]
        self.false_match.append(accepted[~same].astype(float))
        self.false_match_people.append(people[~same])
        self.false_non_match.append((~accepted[same]).astype(float))
        self.false_non_match_people.append(people[same])

    def report(self) -> dict[str, Any]:
        fm = np.concatenate(self.false_match)
        return {
            "held_out_fmr": rate(fm, np.concatenate(self.false_match_people), digits=7) | {"accepted": int(fm.sum())},
            "held_out_fnmr": rate(np.concatenate(self.false_non_match), np.concatenate(self.false_non_match_people)),
        }


def cross_validate(
    distances: Distances,
    *,
    false_accepts: float,
    gallery_people: int,
    template: Template = "two_nearest",
    seed: int = 0,
) -> dict[str, Any]:
    """Fit on 4/5 of the people, measure every engine on the other 1/5; pooled over the 5 folds."""
    # Imported here: the evaluation module loads the engines, and the services that use `calibrated_distance`
    # (identify, grouping, relabelling) run in every process.
    from facegate.services.evaluation import SystemRecords, photos_of

    people = sorted(set(distances.fused_pass.identity.tolist()) | set(distances.dlib_pass.identity.tolist()))
    order = np.random.default_rng(seed).permutation(len(people))
    fold_of = {people[k]: n % FOLDS for n, k in enumerate(order)}
    records = {name: SystemRecords() for name in ("opencv", "dlib", "fusion")}
    errors = {name: _Errors() for name in records}
    fits = []
    for fold in range(FOLDS):
        train = {p for p in people if fold_of[p] != fold}
        test = {p for p in people if fold_of[p] == fold}
        calibration = fit(
            distances,
            false_accepts=false_accepts,
            gallery_people=gallery_people,
            fused_keep=photos_of(distances.fused_pass.identity, train),
            dlib_keep=photos_of(distances.dlib_pass.identity, train),
        )
        fits.append(calibration)
        for name, system in distances.systems(calibration, template).items():
            keep = photos_of(system.identity, test)
            held_out = system.subset(keep)
            keys = (distances.dlib_pass if name == "dlib" else distances.fused_pass).keys
            records[name].add(held_out, keys, distances.faceset.pairs, keep)
            errors[name].add(held_out)
    report: dict[str, Any] = {}
    for name, rec in records.items():
        report[name] = rec.report() | errors[name].report()
    report["fold_thresholds"] = {
        "opencv": [c.opencv.threshold for c in fits],
        "dlib": [c.dlib.threshold for c in fits],
        "fusion": [c.fusion.threshold for c in fits],
        "fusion_band": [[c.fusion.band_low, c.fusion.band_high] for c in fits],
    }
    return report
