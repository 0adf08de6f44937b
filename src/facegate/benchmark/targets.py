"""The targets, and each judged against a report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TARGETS = {
    "throughput_ratio": 5.0,  # x the face_recognition CLI's images/s, at equal or better rank-1
    "identify_p50_ms": 60.0,  # one 640x480 photo, one face
    "bulk_enroll_images_per_s": 40.0,
}


def targets(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met (None when not measured).

    The throughput target is judged twice: against the CLI's own images/s (its whole command, which also starts
    up and encodes the gallery) and, stricter, against its probes-only rate."""

    def row(target: str, value: Any, met: bool | None) -> dict[str, Any]:
        return {"target": target, "value": value, "met": met}

    through = report.get("throughput", {})
    need = TARGETS["throughput_ratio"]
    end_to_end, probes_only = through.get("ratio_end_to_end"), through.get("ratio_probes_only")
    fg_rank1 = through.get("facegate", {}).get("accuracy", {}).get("rank1")
    base_rank1 = through.get("face_recognition", {}).get("accuracy", {}).get("rank1")
    p50 = report.get("latency", {}).get("p50_ms")
    rate = report.get("bulk_enroll", {}).get("images_per_s")
    return [
        row(
            f">= {need:g}x the face_recognition CLI's images/s (its whole command)",
            end_to_end,
            None if end_to_end is None else end_to_end >= need,
        ),
        row(
            f">= {need:g}x the CLI's probes-only images/s (its start-up and gallery encoding subtracted)",
            probes_only,
            None if probes_only is None else probes_only >= need,
        ),
        row(
            "rank-1 >= the face_recognition CLI's",
            None if base_rank1 is None else f"{fg_rank1} vs {base_rank1}",
            None if base_rank1 is None or fg_rank1 is None else fg_rank1 >= base_rank1,
        ),
        row(
            f"identify p50 <= {TARGETS['identify_p50_ms']:g} ms (640x480, one face)",
            p50,
            None if p50 is None else p50 <= TARGETS["identify_p50_ms"],
        ),
        row(
            f"bulk enroll >= {TARGETS['bulk_enroll_images_per_s']:g} images/s (facegate enroll, start-up included)",
            rate,
            None if rate is None else rate >= TARGETS["bulk_enroll_images_per_s"],
        ),
    ]
