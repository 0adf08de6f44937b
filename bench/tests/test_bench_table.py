"""The summary table of harness reports (`python -m facegate_bench table`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facegate_bench.__main__ import main
from facegate_bench.targets import targets


def _report(engine: str, http: float, bare: float, cli: float, interleaved: float | None = None) -> dict[str, object]:
    through: dict[str, object] = {
        "facegate": {"images_per_s": http, "concurrency": 2},
        "bare_engine": {"images_per_s": bare},
        "face_recognition": {"images_per_s_total": cli, "images_per_s_probes_only": cli},
        "share_of_ceiling": round(http / bare, 3),
        "ratio_end_to_end": round(http / cli, 2),
        "ratio_probes_only": round(http / cli, 2),
    }
    if interleaved is not None:
        through["interleaved"] = {"share_of_ceiling": interleaved}
    report: dict[str, object] = {
        "engine": engine,
        "faceset": {"name": "calib"},
        "targets_spec": {"cli_ratio": 3.5},
        "throughput": through,
    }
    report["targets"] = targets(report, cli_ratio=3.5, ceiling_share=0.9)
    return report


def test_table_prints_reports_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for engine, http, bare in (("fusion", 30.0, 40.0), ("opencv", 50.0, 54.0)):
        path = tmp_path / f"bench-calib-{engine}.json"
        path.write_text(json.dumps(_report(engine, http, bare, 14.0)))
        paths.append(str(path))
    assert main(["table", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| measure | fusion | opencv |"
    assert "| facegate identify images/s over HTTP (2 clients) | 30.0 | 50.0 |" in lines
    # Without interleaved turns, the phases' share is judged.
    phases = "| facegate as a share of the ceiling, phases apart (target >= 90%, judged here when not interleaved)"
    assert f"{phases} | 75% (**not met**) | 93% (met) |" in lines
    assert "| share of the ceiling, HTTP and bare engine in interleaved turns (target >= 90%) | n/a | n/a |" in lines
    assert "| ratio to the CLI end to end (target >= 3.5x) | 2.14x (**not met**) | 3.57x (met) |" in lines


def test_the_interleaved_share_is_the_one_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench-calib-opencv.json"
    path.write_text(json.dumps(_report("opencv", 30.0, 40.0, 14.0, interleaved=0.91)))
    assert main(["table", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    phases = "| facegate as a share of the ceiling, phases apart (target >= 90%, judged here when not interleaved)"
    assert f"{phases} | 75% |" in lines
    assert "| share of the ceiling, HTTP and bare engine in interleaved turns (target >= 90%) | 91% (met) |" in lines


def test_table_of_an_older_report_says_what_was_not_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bench-opencv.json"
    path.write_text(json.dumps({"engine": "opencv", "throughput": {"facegate": {"images_per_s": 20.9}}}))
    assert main(["table", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| bare engine images/s (the ceiling: same work, processes x 1 thread) | n/a |" in out


def test_table_shows_bulk_enroll_three_ways(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _report("opencv", 30.0, 40.0, 14.0)
    report["bulk_enroll"] = {
        "facegate": {"images_per_s": 18.0, "images_per_s_excluding_startup": 20.0},
        "bare_engine": {"images_per_s": 21.0},
        "face_recognition": {"images_per_s": 6.0, "images_per_s_excluding_startup": 8.0},
        "share_of_ceiling": 0.952,
        "share_of_ceiling_with_startup": 0.857,
        "ratio_to_cli": 3.0,
        "ratio_to_cli_excluding_startup": 2.5,
    }
    report["targets"] = targets(report, cli_ratio=3.5, ceiling_share=0.9)
    path = tmp_path / "bench-calib-opencv.json"
    path.write_text(json.dumps(report))
    assert main(["table", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| bulk enroll as a share of the ceiling: without / with start-up (target >= 90%) | 95% / 86% (met) |" in out
    assert "| bulk enroll ratio to the CLI: with / without start-up | 3.0x / 2.5x |" in out
