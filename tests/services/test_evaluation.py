"""Evaluation maths on known numbers, and on real embeddings of the dev set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.services import evaluation
from facegate.vision.pool import EnginePool


def test_threshold_at_far_accepts_at_most_the_target_share() -> None:
    impostor = np.linspace(0.5, 1.5, 1000)
    for far in (0.0, 0.001, 0.01, 0.1):
        t = evaluation.threshold_at_far(impostor, far)
        assert np.mean(impostor <= t) <= far
        # ...and no looser threshold would still meet the target by more than one pair
        assert np.mean(impostor <= t + 0.002) > far or far == 0.0


def test_verification_counts() -> None:
    genuine = np.array([0.1, 0.2, 0.7])
    impostor = np.array([0.5, 0.9, 1.0, 1.2])
    v = evaluation.verification(genuine, impostor, 0.6)
    assert v["tar"] == pytest.approx(2 / 3, abs=1e-4)
    assert v["far"] == pytest.approx(1 / 4, abs=1e-4)
    assert v["accuracy"] == pytest.approx(5 / 7, abs=1e-4)
    assert evaluation.best_accuracy_threshold(genuine, impostor) == pytest.approx(0.2)


def test_load_faceset_skips_non_identity_folders(dev: Path) -> None:
    faceset = evaluation.load_faceset(dev)
    assert "multi" not in faceset.photos and "noface" not in faceset.photos
    assert all(files for files in faceset.photos.values())
    assert faceset.pairs and any(same for *_, same in faceset.pairs) and any(not s for *_, s in faceset.pairs)


@pytest.mark.slow
def test_calibrated_threshold_holds_on_held_out_identities(dev: Path, opencv_pool: EnginePool) -> None:
    faceset = evaluation.load_faceset(dev)
    emb = evaluation.embed_faceset(faceset, opencv_pool, max_pixels=40_000_000)
    assert len(emb.vectors) >= 0.95 * sum(len(v) for v in faceset.photos.values())
    report = evaluation.calibrate(opencv_pool.info, emb, target_far=0.001)
    # Chosen on other identities, the threshold keeps the false-match rate near its target on new people
    # while still accepting most genuine pairs.
    assert report["held_out_far"] <= 0.005
    assert report["held_out_tar"] >= 0.9
    # The engine's configured default is no looser than the calibrated threshold.
    assert opencv_pool.info.threshold <= report["threshold_all_data"]
