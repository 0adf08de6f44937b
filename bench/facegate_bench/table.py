"""The headline figures of reports as a Markdown table (bench/README.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _figures(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(measure, value) rows of one report for the summary table."""

    def get(*path: str) -> Any:
        value: Any = r
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return "n/a" if value is None else value

    verdicts = {t.get("key"): t.get("met") for t in r.get("targets", []) if isinstance(t, Mapping)}

    def met(key: str) -> str:
        flag = verdicts.get(key)
        return "n/a" if flag is None else ("met" if flag else "**not met**")

    def percent(value: Any) -> str:
        return f"{value:.0%}" if isinstance(value, int | float) else "n/a"

    through = r.get("throughput", {})
    interleaved = through.get("interleaved", {})
    fg, bare, base = ("throughput", "facegate"), ("throughput", "bare_engine"), ("throughput", "face_recognition")
    cli_target = get("targets_spec", "cli_ratio")
    enroll = r.get("bulk_enroll", {})
    fe, be, ce = ("bulk_enroll", "facegate"), ("bulk_enroll", "bare_engine"), ("bulk_enroll", "face_recognition")
    return [
        ("faces", f"{get('faceset', 'name')}"),
        (
            f"facegate identify images/s over HTTP ({get(*fg, 'concurrency')} clients)",
            f"{get(*fg, 'images_per_s')}",
        ),
        (
            "bare engine images/s (the ceiling: same work, processes x 1 thread)",
            f"{get(*bare, 'images_per_s')}",
        ),
        (
            "facegate as a share of the ceiling, phases apart (target >= 90%, judged here when not interleaved)",
            percent(through.get("share_of_ceiling")) + ("" if interleaved else f" ({met('ceiling_share')})"),
        ),
        (
            "share of the ceiling, HTTP and bare engine in interleaved turns (target >= 90%)",
            f"{percent(interleaved.get('share_of_ceiling'))} ({met('ceiling_share')})" if interleaved else "n/a",
        ),
        (
            "the floor's share in the same turns (FastAPI + uvicorn + the engine pool alone, floor_app.py)",
            percent(interleaved.get("servers", {}).get("floor", {}).get("share_of_ceiling")),
        ),
        (
            "server main-process CPU ms per photo in those turns: facegate / the floor",
            " / ".join(
                str(interleaved.get("servers", {}).get(name, {}).get("cpu_ms_per_image", {}).get("server_main", "n/a"))
                for name in ("facegate", "floor")
            ),
        ),
        (
            "face_recognition CLI images/s: probes only / end to end",
            f"{get(*base, 'images_per_s_probes_only')} / {get(*base, 'images_per_s_total')}",
        ),
        (
            f"ratio to the CLI end to end (target >= {cli_target}x)",
            f"{get('throughput', 'ratio_end_to_end')}x ({met('cli_ratio_end_to_end')})",
        ),
        (
            "ratio to the CLI probes only (stricter)",
            f"{get('throughput', 'ratio_probes_only')}x ({met('cli_ratio_probes_only')})",
        ),
        (
            "rank-1: facegate vs face_recognition",
            f"{get(*fg, 'accuracy', 'rank1')} vs {get(*base, 'accuracy', 'rank1')} ({met('rank1')})",
        ),
        (
            "identified at threshold: facegate vs face_recognition",
            f"{get(*fg, 'accuracy', 'identified_at_threshold')} vs {get(*base, 'accuracy', 'identified_at_threshold')}",
        ),
        (
            "unknown people falsely accepted: facegate vs face_recognition",
            f"{get(*fg, 'accuracy', 'false_accept_rate_unknown')} vs "
            f"{get(*base, 'accuracy', 'false_accept_rate_unknown')}",
        ),
        (
            "identify 640x480 p50 / p95 ms (target p50 <= 60)",
            f"{get('latency', 'p50_ms')} / {get('latency', 'p95_ms')} ({met('identify_p50')})",
        ),
        (
            "bulk enroll images/s: with / without start-up (target >= 40)",
            f"{get(*fe, 'images_per_s')} / {get(*fe, 'images_per_s_excluding_startup')} ({met('bulk_enroll')})",
        ),
        ("bare engine enroll images/s (the ceiling of bulk enroll)", f"{get(*be, 'images_per_s')}"),
        (
            "bulk enroll as a share of the ceiling: without / with start-up (target >= 90%)",
            f"{percent(enroll.get('share_of_ceiling'))} / {percent(enroll.get('share_of_ceiling_with_startup'))} "
            f"({met('bulk_enroll_ceiling_share')})",
        ),
        (
            "face_recognition CLI gallery encoding images/s: with / without start-up",
            f"{get(*ce, 'images_per_s')} / {get(*ce, 'images_per_s_excluding_startup')}",
        ),
        (
            "bulk enroll ratio to the CLI: with / without start-up",
            f"{get('bulk_enroll', 'ratio_to_cli')}x / {get('bulk_enroll', 'ratio_to_cli_excluding_startup')}x",
        ),
        (
            "CPU used by other processes during the run, cores (max over phases)",
            f"{get('other_load', 'max_other_processes_cores')}",
        ),
    ]


def markdown_table(reports: Sequence[Mapping[str, Any]]) -> str:
    """The headline figures of several reports (one per engine and face set) side by side."""
    columns = [_figures(r) for r in reports]
    lines = [
        "| measure | " + " | ".join(str(r.get("engine")) for r in reports) + " |",
        "|---|" + "---|" * len(reports),
    ]
    for i, (label, _) in enumerate(columns[0] if columns else []):
        lines.append(f"| {label} | " + " | ".join(col[i][1] for col in columns) + " |")
    return "\n".join(lines)
