"""The bare engine (the ceiling) does the service's per-photo work: a smoke run on two dev photos, one process."""

from __future__ import annotations

from pathlib import Path

from facegate_bench.ceiling import bare_engine_enroll, bare_engine_identify, engine_settings
from facegate_bench.split import Probe


def test_engine_settings_follow_the_service() -> None:
    settings, params = engine_settings("fusion")
    assert settings.type == "fusion"
    assert params.decode_side == settings.opencv.max_detect_side
    assert params.max_faces >= 1


def test_bare_engine_analyses_every_probe(dev: Path) -> None:
    photos = sorted((dev / "barack_obama").glob("*.jpg"))[:2]
    probes = [Probe(path, "barack_obama", True) for path in photos]
    result = bare_engine_identify(probes, "opencv", processes=1, passes=1)
    assert result["images"] == 2 and result["passes"] == 1
    assert result["faces_analysed_per_pass"] >= 2
    assert result["second_descriptors_per_pass"] == 0
    assert result["images_per_s"] > 0


def test_bare_engine_enroll_embeds_one_face_per_photo(dev: Path) -> None:
    photos = sorted((dev / "barack_obama").glob("*.jpg"))[:2]
    result = bare_engine_enroll(photos, "opencv", processes=1)
    assert result["images"] == 2 and result["passes"] == 1
    assert result["faces_embedded_per_pass"] == 2
    assert result["second_descriptors_per_pass"] == 0
    assert result["analyze_params"]["max_faces"] == 1
    assert result["images_per_s"] > 0
