"""The bare engine (the ceiling) does the service's per-photo work: a smoke run on two dev photos, one process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facegate_bench.ceiling import bare_engine_enroll, bare_engine_identify, engine_settings
from facegate_bench.split import Probe

REPO = Path(__file__).resolve().parents[2]


def _dev() -> Path:
    """FACEGATE_DEV_FACES, else ../shared/faces/dev beside the checkout, else the workplace's copy (as the
    product's tests find it, tests/conftest.py)."""
    configured = os.environ.get("FACEGATE_DEV_FACES")
    beside = REPO.parent / "shared" / "faces" / "dev"
    path = Path(configured) if configured else beside if beside.is_dir() else Path("/work/shared/faces/dev")
    if not path.is_dir():
        pytest.fail(f"dev face set not found at {path}; set FACEGATE_DEV_FACES to its folder")
    return path


def test_engine_settings_follow_the_service() -> None:
    settings, params = engine_settings("fusion")
    assert settings.type == "fusion"
    assert params.decode_side == settings.opencv.max_detect_side
    assert params.max_faces >= 1


def test_bare_engine_analyses_every_probe() -> None:
    photos = sorted((_dev() / "barack_obama").glob("*.jpg"))[:2]
    probes = [Probe(path, "barack_obama", True) for path in photos]
    result = bare_engine_identify(probes, "opencv", processes=1, passes=1)
    assert result["images"] == 2 and result["passes"] == 1
    assert result["faces_analysed_per_pass"] >= 2
    assert result["second_descriptors_per_pass"] == 0
    assert result["images_per_s"] > 0


def test_bare_engine_enroll_embeds_one_face_per_photo() -> None:
    photos = sorted((_dev() / "barack_obama").glob("*.jpg"))[:2]
    result = bare_engine_enroll(photos, "opencv", processes=1)
    assert result["images"] == 2 and result["passes"] == 1
    assert result["faces_embedded_per_pass"] == 2
    assert result["second_descriptors_per_pass"] == 0
    assert result["analyze_params"]["max_faces"] == 1
    assert result["images_per_s"] > 0
