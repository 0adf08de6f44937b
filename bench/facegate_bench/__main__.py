"""`python -m facegate_bench run FACESET ...` and `python -m facegate_bench table REPORT...` (run from bench/, or
with bench/ on PYTHONPATH; bench/run.sh does both)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from facegate_bench.options import ENGINES, BenchOptions
from facegate_bench.table import markdown_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facegate_bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="facegate over HTTP vs the bare engine vs the face_recognition CLI, latency, bulk enroll",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("faceset", type=Path, help="folder of <identity>/<photos> (e.g. ../shared/faces/dev)")
    run.add_argument("--engine", dest="engines", action="append", choices=ENGINES, help="repeat for several")
    run.add_argument("--output-dir", type=Path, help="write bench-<name>-<engine>.json here")
    run.add_argument("--name", help="face set name in the file names (default: the folder's name)")
    run.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the face_recognition CLI")
    run.add_argument(
        "--no-identify", dest="identify", action="store_false", help="bulk enroll only (no identify or latency)"
    )
    run.add_argument("--no-ceiling", dest="ceiling", action="store_false", help="skip the bare engine")
    run.add_argument("--concurrency", type=int, default=2, help="identify clients over HTTP")
    run.add_argument("--passes", type=int, default=3, help="passes over the probes (HTTP and bare engine)")
    run.add_argument("--latency-requests", type=int, default=100, help="sequential 640x480 requests; 0: none")
    run.add_argument("--enroll-runs", type=int, default=3, help="`facegate enroll` runs (median); 0: none")
    run.add_argument(
        "--enroll-max-photos", type=int, default=0, help="bulk enroll a seeded sample of people, ~this many photos"
    )
    run.add_argument("--max-probes", type=int, default=0, help="a seeded sample of this many probes; 0: all")
    run.add_argument("--seed", type=int, default=0, help="seed of the gallery/probe split")
    run.add_argument("--cli-ratio-target", type=float, default=5.0, help="target ratio to the CLI")
    run.add_argument("--quiet-wait", type=float, default=300.0, help="seconds to wait for a quiet machine")
    run.add_argument("--attempts", type=int, default=3, help="measure a phase again if others used the CPU")
    run.add_argument(
        "--interleaved-rounds",
        type=int,
        default=6,
        help=(
            "turns each of facegate, the floor and the bare engine on alternating halves of the probes (drift-free "
            "share; 6 puts each side first, in the middle and last twice); 0: none"
        ),
    )
    run.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="leave the floor (FastAPI + uvicorn + the engine pool alone: floor_app.py) out of the interleaved turns",
    )
    table = commands.add_parser("table", help="the headline figures of reports side by side (Markdown)")
    table.add_argument("reports", nargs="+", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "table":
        print(markdown_table([json.loads(p.read_text()) for p in args.reports]))
        return 0
    from facegate_bench.run import run  # imports facegate and httpx: not needed for `table`

    options = BenchOptions(
        faceset=args.faceset,
        engines=tuple(args.engines or ("fusion",)),
        baseline=args.baseline,
        identify=args.identify,
        ceiling=args.ceiling,
        concurrency=args.concurrency,
        passes=args.passes,
        latency_requests=args.latency_requests,
        enroll_runs=args.enroll_runs,
        enroll_max_photos=args.enroll_max_photos,
        max_probes=args.max_probes,
        seed=args.seed,
        cli_ratio_target=args.cli_ratio_target,
        quiet_wait=args.quiet_wait,
        attempts=args.attempts,
        interleaved_rounds=args.interleaved_rounds,
        floor=args.floor,
    )

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    reports = run(options, log=log)
    print(markdown_table(list(reports.values())))
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        name = args.name or args.faceset.resolve().name
        for engine, report in reports.items():
            path = args.output_dir / f"bench-{name}-{engine}.json"
            path.write_text(json.dumps(report, indent=2) + "\n")
            log(f"Report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
