"""Bulk enroll, three ways: which photos, the CLI's gallery encoding timed apart from its start-up, and the
shares and ratios a report gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facegate_bench import bulk_enroll as bulk_enroll_module
from facegate_bench import run as run_module
from facegate_bench.bulk_enroll import cli_gallery_encoding, enroll_photos
from facegate_bench.options import BenchOptions
from facegate_bench.targets import targets


def _photos(tmp_path: Path) -> dict[str, list[Path]]:
    photos: dict[str, list[Path]] = {}
    for i in range(10):
        folder = tmp_path / f"person_{i}"
        folder.mkdir()
        files = [folder / f"{n}.jpg" for n in range(i % 3 + 1)] + [folder / "x.webp"]
        for f in files:
            f.write_bytes(b"")
        photos[folder.name] = files
    return photos


def test_enroll_photos_takes_every_photo_both_tools_read(tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    chosen = enroll_photos(photos, 0, seed=0)
    assert list(chosen) == sorted(photos)
    assert all(p.suffix == ".jpg" for files in chosen.values() for p in files)  # the CLI skips .webp
    assert sum(len(f) for f in chosen.values()) == 19


def test_enroll_photos_samples_whole_people_by_seed(tmp_path: Path) -> None:
    photos = _photos(tmp_path)
    chosen = enroll_photos(photos, 6, seed=1)
    count = sum(len(f) for f in chosen.values())
    assert 6 <= count < 6 + 3
    assert all(chosen[name] == sorted(p for p in photos[name] if p.suffix == ".jpg") for name in chosen)
    assert chosen == enroll_photos(photos, 6, seed=1)
    assert list(chosen) == sorted(chosen)


def test_cli_gallery_encoding_times_its_start_up_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "set").mkdir()
    photos = enroll_photos(_photos(tmp_path / "set"), 0, seed=0)
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], env: Any = None) -> tuple[float, str, str]:
        calls.append(cmd)
        known = Path(cmd[-2])
        if known.name == "cli-empty":
            return 2.0, "", ""
        assert len(list(known.iterdir())) == 19
        return 12.0, "WARNING: No faces found in a.jpg. Ignoring file.\n", ""

    monkeypatch.setattr(bulk_enroll_module, "timed_run", fake_run)
    monkeypatch.setattr(bulk_enroll_module, "executable", lambda name: name)
    result = cli_gallery_encoding(photos, tmp_path / "work", cpus=2)
    assert [c[:3] for c in calls] == [["face_recognition", "--cpus", "2"]] * 2
    assert result["images"] == 19 and result["no_face"] == 1
    assert result["images_per_s"] == round(19 / 12.0, 2)
    assert result["images_per_s_excluding_startup"] == round(19 / 10.0, 2)


def test_bulk_enroll_report_gives_shares_and_ratios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = enroll_photos(_photos(tmp_path), 0, seed=0)
    monkeypatch.setattr(run_module, "measure_quietly", lambda name, fn, options, load, log: fn())
    monkeypatch.setattr(
        run_module,
        "bulk_enroll",
        lambda photos, engine, work, runs: {"images_per_s": 18.0, "images_per_s_excluding_startup": 20.0},
    )
    monkeypatch.setattr(run_module, "bare_engine_enroll", lambda photos, engine, processes: {"images_per_s": 25.0})
    cli = {"images_per_s": 6.0, "images_per_s_excluding_startup": 8.0}
    options = BenchOptions(faceset=tmp_path, enroll_runs=1)
    report = {"bulk_enroll": run_module._bulk_enroll(options, "opencv", photos, tmp_path, cli, {}, lambda _: None)}
    enroll = report["bulk_enroll"]
    assert enroll["share_of_ceiling"] == 0.8 and enroll["share_of_ceiling_with_startup"] == 0.72
    assert enroll["ratio_to_cli"] == 3.0 and enroll["ratio_to_cli_excluding_startup"] == 2.5
    verdict = {t["key"]: t for t in targets(report, cli_ratio=3.5, ceiling_share=0.9)}
    assert verdict["bulk_enroll_ceiling_share"]["met"] is False
    assert verdict["bulk_enroll"]["value"] == 18.0
