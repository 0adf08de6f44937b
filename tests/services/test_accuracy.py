"""services.accuracy: the maths of every accuracy figure, on numbers whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import Metric
from facegate.services import accuracy
from facegate.vision.engine import FusionRule, distance

RULE = FusionRule(
    threshold=0.5,
    primary_mean=1.0,
    primary_std=0.1,
    secondary_mean=0.8,
    secondary_std=0.05,
    fused_mean=0.0,
    fused_std=0.8,
    offset=0.0,
    band_low=0.4,
    band_high=0.6,
)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_distance_matrix_agrees_with_the_engines_distance(metric: Metric) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(4, 8))
    matrix = accuracy.distance_matrix(metric, a, b)
    for i in range(5):
        for j in range(4):
            expected = distance(metric, a[i].astype(np.float32), b[j].astype(np.float32))
            assert matrix[i, j] == pytest.approx(expected, abs=1e-5)


def test_fused_matrix_is_the_rule_applied_to_each_pair() -> None:
    primary = np.array([[0.3, 0.55], [0.9, 1.2]])
    secondary = np.array([[0.5, 0.9], [0.4, 0.8]])
    fused = accuracy.fused_matrix(RULE, primary, secondary)
    for i in range(2):
        for j in range(2):
            assert fused[i, j] == pytest.approx(RULE.fused(primary[i, j], secondary[i, j]))
    # An average different-person pair stays where an average different-person primary distance is.
    assert RULE.fused(1.0, 0.8) == pytest.approx(1.0)


def test_threshold_at_far_accepts_at_most_the_target_share() -> None:
    impostor = np.linspace(0.5, 1.5, 1000)
    for far in (0.0, 0.001, 0.01, 0.1):
        t = accuracy.threshold_at_far(impostor, far)
        assert np.mean(impostor <= t) <= far
        assert np.mean(impostor <= t + 0.002) > far or far == 0.0


def test_cluster_ci_resamples_people_not_photos() -> None:
    # Two people: one always right (10 probes), one always wrong (10 probes). Resampling people gives an
    # interval from 0 to 1; resampling photos would give a narrow one around 0.5.
    values = np.array([1.0] * 10 + [0.0] * 10)
    people = ["a"] * 10 + ["b"] * 10
    low, high = accuracy.cluster_ci(values, people)
    assert low == 0.0 and high == 1.0
    many = [f"p{i}" for i in range(20)]
    low, high = accuracy.cluster_ci(values, many)
    assert 0.2 < low < 0.5 < high < 0.8


def _system(fused: bool) -> accuracy.System:
    # Photos 0,1: person a; 2,3: person b. Probe 1 is nearer b's photo 2 by the primary distance (0.55,
    # inside the band) but the fused distance puts it with a.
    identity = np.array(["a", "a", "b", "b"])
    primary = np.array(
        [
            [0.0, 0.58, 0.9, 0.9],
            [0.58, 0.0, 0.55, 0.9],
            [0.9, 0.55, 0.0, 0.2],
            [0.9, 0.9, 0.2, 0.0],
        ]
    )
    fused_matrix = primary.copy()
    fused_matrix[0, 1] = fused_matrix[1, 0] = 0.3
    fused_matrix[1, 2] = fused_matrix[2, 1] = 0.8
    if not fused:
        return accuracy.System("opencv", identity, primary, 0.5)
    return accuracy.System("fusion", identity, primary, 0.5, fused_matrix, RULE)


def test_identify_fuses_only_unsure_probes_and_can_change_the_answer() -> None:
    probes, gallery = np.array([1, 3]), np.array([0, 2])
    person, dist, fused = _system(fused=False).identify(probes, gallery)
    assert list(person) == ["b", "b"] and list(fused) == [False, False]
    person, dist, fused = _system(fused=True).identify(probes, gallery)
    assert list(person) == ["a", "b"]  # probe 1 fused (0.55 is in the band), probe 3 (0.2) is not
    assert list(fused) == [True, False]
    assert dist[0] == pytest.approx(0.3) and dist[1] == pytest.approx(0.2)


def test_pair_scores_fuse_inside_the_band_only() -> None:
    system = _system(fused=True)
    scores = system.pair_scores()
    assert scores[1, 2] == pytest.approx(0.8)  # primary 0.55: in the band, fused
    assert scores[2, 3] == pytest.approx(0.2)  # primary 0.2: sure, primary kept
    assert system.roc_scores()[1, 2] == pytest.approx(0.8)


def test_open_set_counts_named_and_unknown_probes() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 16))
    identity = np.repeat([f"p{i}" for i in range(12)], 4)
    vectors = np.repeat(centres, 4, axis=0) + 0.01 * rng.normal(size=(48, 16))
    matrix = accuracy.distance_matrix("cosine", vectors, vectors)
    strict = accuracy.System("opencv", identity, matrix, 0.1)
    records = accuracy.open_set(strict, photos_per_person=1, splits=3)
    report = records.report()
    assert report["rank1_identified_at_threshold"]["value"] == 1.0
    assert report["false_accepts_unknown"]["value"] == 0.0
    assert report["gallery_people_mean"] == 6
    # 6 enrolled people x 3 other photos, 6 never-enrolled x 4 photos, per split
    assert report["rank1_identified_at_threshold"]["n"] == 3 * 18
    assert report["false_accepts_unknown"]["n"] == 3 * 24
    loose = accuracy.System("opencv", identity, matrix, 2.0)
    assert accuracy.open_set(loose, photos_per_person=3, splits=2).report()["false_accepts_unknown"]["value"] == 1.0


def test_identify_scores_people_by_the_template_rule() -> None:
    # Probe 0; person a has photos 1 (0.3 away) and 2 (0.9 away), person b one photo 3 (0.5 away).
    identity = np.array(["p", "a", "a", "b"])
    primary = np.full((4, 4), 1.0)
    for j, d in ((1, 0.3), (2, 0.9), (3, 0.5)):
        primary[0, j] = primary[j, 0] = d
    probes, gallery = np.array([0]), np.array([3, 1, 2])
    best = accuracy.System("opencv", identity, primary, 0.55, template="best").identify(probes, gallery)
    assert best[0][0] == "a" and best[1][0] == pytest.approx(0.3)
    two = accuracy.System("opencv", identity, primary, 0.55).identify(probes, gallery)
    assert two[0][0] == "b" and two[1][0] == pytest.approx(0.5)
