"""services.calibration: thresholds for an operating point, the fused normalisation and band, on synthetic
people whose answer is known; cross-validation measures on people the fit never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.services import calibration
from facegate.services.accuracy import distance_matrix, impostor_and_genuine
from facegate.services.evaluation import Distances, Embedded, FaceSet


def _pass(people: int, photos: int, noise: float, seed: int, secondary: bool) -> Embedded:
    rng = np.random.default_rng(seed)
    identity = np.repeat([f"p{i:03d}" for i in range(people)], photos)
    centres = rng.normal(size=(people, 64)) / 8.0  # about unit length

    def vectors() -> np.ndarray:
        v = np.repeat(centres, photos, axis=0) + noise / 8.0 * rng.normal(size=(people * photos, 64))
        return v / np.linalg.norm(v, axis=1, keepdims=True)  # unit length, like both engines' descriptors

    keys = [f"{name}/{k % photos}.jpg" for k, name in enumerate(identity)]
    return Embedded(keys, identity, vectors(), vectors() if secondary else None)


@pytest.fixture(scope="module")
def distances() -> Distances:
    faceset = FaceSet(Path("/synthetic"), {}, [])
    return Distances.of(faceset, _pass(80, 5, 0.9, 1, True), _pass(80, 5, 1.1, 2, False))


def test_per_pair_rate_follows_from_the_operating_point() -> None:
    fmr = calibration.per_pair_fmr(0.01, 100)
    assert fmr == pytest.approx(1.005e-4, rel=1e-3)
    assert 1 - (1 - fmr) ** 100 == pytest.approx(0.01)


def test_fit_sets_each_threshold_at_the_target_rate(distances: Distances) -> None:
    fitted = calibration.fit(distances, false_accepts=0.05, gallery_people=10)
    fmr = calibration.per_pair_fmr(0.05, 10)
    assert fitted.target_false_match_rate == pytest.approx(fmr, rel=1e-2)
    (i, j), same = impostor_and_genuine(distances.fused_pass.identity)
    impostor = distances.sface[i, j][~same]
    assert np.mean(impostor <= fitted.opencv.threshold) <= fmr
    assert np.mean(impostor <= fitted.opencv.threshold + 0.01) > fmr  # not needlessly strict
    assert fitted.opencv.impostor_mean == pytest.approx(impostor.mean(), abs=1e-4)
    (i, j), same = impostor_and_genuine(distances.dlib_pass.identity)
    assert np.mean(distances.dlib[i, j][~same] <= fitted.dlib.threshold) <= fmr
    assert "5% false accepts" in fitted.operating_point and "10 people" in fitted.operating_point


def test_fused_distances_spread_like_primary_ones_and_separate_better(distances: Distances) -> None:
    fitted = calibration.fit(distances, false_accepts=0.05, gallery_people=10)
    system = distances.systems(fitted)["fusion"]
    assert system.fused is not None
    (i, j), same = impostor_and_genuine(system.identity)
    fused_impostor = system.fused[i, j][~same]
    # Put back on SFace's scale: different-person pairs have SFace's spread, and its mean but for the shift
    # that makes the fused threshold SFace's.
    assert fitted.fusion.threshold == fitted.opencv.threshold
    assert fused_impostor.mean() == pytest.approx(fitted.opencv.impostor_mean + fitted.fusion.offset, abs=1e-3)
    assert fused_impostor.std() == pytest.approx(fitted.opencv.impostor_std, rel=1e-2)
    # Two independent noisy views of each person: fusing them accepts more genuine pairs at the same FMR.
    tar_primary = np.mean(system.primary[i, j][same] <= fitted.opencv.threshold)
    tar_fused = np.mean(system.fused[i, j][same] <= fitted.fusion.threshold)
    assert tar_fused > tar_primary
    assert fitted.fusion.band_low <= fitted.fusion.threshold <= fitted.fusion.band_high


def test_band_covers_the_decisions_fusion_changes(distances: Distances) -> None:
    fitted = calibration.fit(distances, false_accepts=0.05, gallery_people=10)
    system = distances.systems(fitted)["fusion"]
    assert system.fused is not None
    (i, j), _ = impostor_and_genuine(system.identity)
    primary, fused = system.primary[i, j], system.fused[i, j]
    t = fitted.fusion.threshold
    changed = (primary <= t) != (fused <= t)
    inside = (primary >= fitted.fusion.band_low) & (primary <= fitted.fusion.band_high)
    assert changed.sum() > 20
    assert np.mean(inside[changed]) >= calibration.BAND_COVERAGE - 0.01
    # ...and the band's decisions are the fused ones, the rest SFace's
    banded = system.pair_scores()[i, j]
    assert np.array_equal(banded <= t, np.where(inside, fused <= t, primary <= t))


def test_cross_validation_measures_on_people_the_fit_never_saw(distances: Distances) -> None:
    report = calibration.cross_validate(distances, false_accepts=0.05, gallery_people=10)
    for name in ("opencv", "dlib", "fusion"):
        engine = report[name]
        assert engine["held_out_fmr"]["n"] > 0 and engine["held_out_fnmr"]["n"] > 0
        low, high = engine["held_out_fmr"]["ci95"]
        assert low <= engine["held_out_fmr"]["value"] <= high
        # the target is 5.1e-3 per pair; held-out people land near it, not at 0 or 10x
        assert engine["held_out_fmr"]["value"] < 0.02
        assert engine["open_set"]["1_photos"]["rank1_identified_at_threshold"]["n"] > 0
    assert len(report["fold_thresholds"]["fusion"]) == calibration.FOLDS
    assert len(set(report["fold_thresholds"]["opencv"])) > 1  # each fold fitted on its own people


def test_distance_matrix_of_identical_rows_is_zero() -> None:
    v = np.ones((2, 4))
    assert np.allclose(distance_matrix("cosine", v, v), 0.0)
