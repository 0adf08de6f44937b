"""One whole benchmark run on one face set: the baseline once, then for each engine facegate over HTTP, the
bare engine on the same probes, and bulk enroll, each measured quietly."""

from __future__ import annotations

import random
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx

from facegate.services.evaluation import load_faceset
from facegate_bench.baseline import run_baseline
from facegate_bench.bulk_enroll import bulk_enroll, cli_gallery_encoding, enroll_photos
from facegate_bench.ceiling import bare_engine_enroll, bare_engine_identify
from facegate_bench.client import enroll_gallery
from facegate_bench.interleaved import HttpSide, interleaved_share
from facegate_bench.latency import LATENCY_SIZE, identify_latency, latency_image
from facegate_bench.machine import machine
from facegate_bench.options import ENGINES, BenchOptions, Log
from facegate_bench.other_load import OtherLoad
from facegate_bench.processes import BENCH_KEY
from facegate_bench.quiet import CONTENDED_CORES, cpu_canary_ms, measure_quietly
from facegate_bench.server import FLOOR_APP, Server, running_server
from facegate_bench.split import Split, split_gallery, write_baseline_dirs
from facegate_bench.targets import TARGETS, targets
from facegate_bench.throughput import identify_throughput

HttpResult = tuple[dict[str, Any], dict[str, list[int]], dict[str, Any] | None, dict[str, Any] | None]


def _facegate_http(
    options: BenchOptions, engine: str, split: Split, faceset_root: Path, work: Path, log: Log
) -> HttpResult:
    """Serve, enroll the gallery, identify every probe (throughput), then one image again and again (latency)."""
    data_dir = Path(tempfile.mkdtemp(dir=work, prefix="serve-"))
    log(f"facegate serve (engine {engine})...")
    with running_server(data_dir / "data", engine, data_dir / "serve.log") as server:
        log(f"  ready in {server.start_seconds:.1f}s; enrolling {len(split.gallery)} people over HTTP...")
        limits = httpx.Limits(max_connections=options.concurrency + 2)
        headers = {"X-API-Key": BENCH_KEY}
        with httpx.Client(base_url=server.url, timeout=120.0, limits=limits, headers=headers) as client:
            gallery = enroll_gallery(client, split.gallery)
            log(f"  identify x{options.passes} passes, {options.concurrency} client threads...")
            fg, fused = identify_throughput(
                client, split.probes, concurrency=options.concurrency, passes=options.passes
            )
            fg["server_start_seconds"] = round(server.start_seconds, 3)
            fg["gallery_enroll"] = gallery
            if options.ceiling and options.interleaved_rounds:
                fg["interleaved"] = _interleaved(options, engine, split, fused, client, server, data_dir, log)
            latency = None
            if options.latency_requests:
                image, source = latency_image(faceset_root, next(iter(split.gallery.values())))
                log(f"  latency: {options.latency_requests} sequential identify requests...")
                latency = identify_latency(client, image, requests=options.latency_requests)
                latency["image"] = f"{source} fitted and padded to {LATENCY_SIZE[0]}x{LATENCY_SIZE[1]}, JPEG q90"
            telemetry = client.get("/api/v1/telemetry")
            summary = telemetry.json() if telemetry.status_code == 200 else None
    return fg, fused, latency, summary


def _interleaved(
    options: BenchOptions,
    engine: str,
    split: Split,
    fused: dict[str, list[int]],
    client: httpx.Client,
    server: Server,
    work: Path,
    log: Log,
) -> dict[str, Any]:
    """facegate (and the floor, unless options.floor is off) and the bare engine in interleaved turns."""
    servers = {"facegate": HttpSide(client, server.process.pid)}
    with ExitStack() as stack:
        if options.floor:
            log(f"  the floor ({FLOOR_APP}, engine {engine})...")
            floor = stack.enter_context(
                running_server(work / "floor-data", engine, work / "floor.log", asgi_app=FLOOR_APP)
            )
            floor_client = stack.enter_context(
                httpx.Client(
                    base_url=floor.url, timeout=120.0, limits=httpx.Limits(max_connections=options.concurrency + 2)
                )
            )
            servers["floor"] = HttpSide(
                floor_client, floor.process.pid, lambda name: {"fused": ",".join(map(str, fused.get(name, [])))}
            )
        log(f"  interleaved: {options.interleaved_rounds} turns each of {', '.join(servers)} and the bare engine...")
        with OtherLoad() as other:
            result = interleaved_share(
                servers,
                split.probes,
                engine,
                fused,
                concurrency=options.concurrency,
                processes=options.cpus,
                rounds=options.interleaved_rounds,
            )
    result["other_load"] = other.summary()
    return result


def _sample_probes(split: Split, max_probes: int, seed: int) -> Split:
    if not max_probes or len(split.probes) <= max_probes:
        return split
    chosen = random.Random(seed).sample(split.probes, max_probes)
    return replace(split, probes=sorted(chosen, key=lambda p: p.filename))


def _identify(
    options: BenchOptions,
    engine: str,
    split: Split,
    faceset_root: Path,
    work: Path,
    baseline: dict[str, Any] | None,
    load: dict[str, Any],
    log: Log,
) -> dict[str, Any]:
    """Identify throughput over HTTP and on the bare engine (and latency): the report's parts."""

    def http() -> HttpResult:
        return _facegate_http(options, engine, split, faceset_root, work, log)

    fg, fused, latency, telemetry = measure_quietly("facegate_http", http, options, load, log)
    throughput: dict[str, Any] = {"facegate": fg}
    if options.ceiling:

        def ceiling() -> dict[str, Any]:
            log(f"bare engine ({engine}): {options.cpus} processes x 1 thread, x{options.passes} passes...")
            return bare_engine_identify(
                split.probes, engine, processes=options.cpus, passes=options.passes, fused_faces=fused
            )

        bare = measure_quietly("bare_engine", ceiling, options, load, log)
        throughput["bare_engine"] = bare
        throughput["share_of_ceiling"] = round(fg["images_per_s"] / bare["images_per_s"], 3)
    if "interleaved" in fg:
        throughput["interleaved"] = fg.pop("interleaved")
    if baseline is not None:
        throughput["face_recognition"] = baseline
        throughput["ratio_probes_only"] = round(fg["images_per_s"] / baseline["images_per_s_probes_only"], 2)
        throughput["ratio_end_to_end"] = round(fg["images_per_s"] / baseline["images_per_s_total"], 2)
    report: dict[str, Any] = {"throughput": throughput}
    if latency is not None:
        report["latency"] = latency
    if telemetry is not None:
        report["server_telemetry"] = telemetry
    return report


def _bulk_enroll(
    options: BenchOptions,
    engine: str,
    to_enroll: dict[str, list[Path]],
    work: Path,
    cli: dict[str, Any] | None,
    load: dict[str, Any],
    log: Log,
) -> dict[str, Any]:
    """`facegate enroll` vs the bare engine doing enroll's per-photo work vs the CLI's gallery encoding."""

    def enroll() -> dict[str, Any]:
        log(f"bulk enroll ({engine}): facegate enroll x{options.enroll_runs}...")
        return bulk_enroll(to_enroll, engine, work / f"enroll-{engine}", options.enroll_runs)

    fg = measure_quietly("bulk_enroll", enroll, options, load, log)
    result: dict[str, Any] = {"facegate": fg}
    if options.ceiling:

        def ceiling() -> dict[str, Any]:
            log(f"bare engine enroll ({engine}): {options.cpus} processes x 1 thread...")
            photos = [p for files in to_enroll.values() for p in files]
            return bare_engine_enroll(photos, engine, processes=options.cpus)

        bare = measure_quietly("bare_engine_enroll", ceiling, options, load, log)
        result["bare_engine"] = bare
        # The bare engine's rate leaves its model loading out, as the rate without start-up does.
        result["share_of_ceiling"] = round(fg["images_per_s_excluding_startup"] / bare["images_per_s"], 3)
        result["share_of_ceiling_with_startup"] = round(fg["images_per_s"] / bare["images_per_s"], 3)
    if cli is not None:
        result["face_recognition"] = cli
        result["ratio_to_cli"] = round(fg["images_per_s"] / cli["images_per_s"], 2)
        result["ratio_to_cli_excluding_startup"] = round(
            fg["images_per_s_excluding_startup"] / cli["images_per_s_excluding_startup"], 2
        )
    return result


def run(options: BenchOptions, log: Log = print) -> dict[str, dict[str, Any]]:
    """One report per engine (engine -> report); the baseline's figures appear in each, from its one run."""
    unknown = [e for e in options.engines if e not in ENGINES]
    if unknown or not options.engines:
        raise ValueError(f"engines must be among {', '.join(ENGINES)}")
    if not options.identify and not options.enroll_runs:
        raise ValueError("nothing to measure: identify is off and there are no enroll runs")
    faceset = load_faceset(options.faceset.resolve())
    split = _sample_probes(split_gallery(faceset.photos, options.seed), options.max_probes, options.seed)
    to_enroll = enroll_photos(faceset.photos, options.enroll_max_photos, options.seed)
    common: dict[str, Any] = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "machine": machine(),
        "faceset": {
            "name": faceset.root.name,
            "root": str(faceset.root),
            "identities": len(faceset.photos),
            "photos": sum(len(v) for v in faceset.photos.values()),
            "gallery": {k: v.relative_to(faceset.root).as_posix() for k, v in split.gallery.items()},
            "probes_known": sum(p.known for p in split.probes),
            "probes_unknown": sum(not p.known for p in split.probes),
            "bulk_enroll": {"people": len(to_enroll), "photos": sum(len(v) for v in to_enroll.values())},
        },
        "targets_spec": {
            **TARGETS,
            "ceiling_share": options.ceiling_share_target,
            "cli_ratio": options.cli_ratio_target,
        },
    }
    canary = {"start_ms": cpu_canary_ms()}
    baseline_load: dict[str, Any] = {}
    baseline: dict[str, Any] | None = None
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="facegate-bench-") as tmp:
        work = Path(tmp)
        known_dir, unknown_dir = write_baseline_dirs(split, work / "split")
        if options.baseline and options.identify:

            def run_cli() -> dict[str, Any]:
                log(f"baseline: face_recognition --cpus {options.cpus} on {len(split.probes)} probes...")
                return run_baseline(split, known_dir, unknown_dir, work, options.cpus)

            baseline = measure_quietly("baseline", run_cli, options, baseline_load, log)
        cli_enroll: dict[str, Any] | None = None
        if options.baseline and options.enroll_runs:

            def run_cli_enroll() -> dict[str, Any]:
                photos = sum(len(v) for v in to_enroll.values())
                log(f"baseline bulk enroll: face_recognition KNOWN_DIR EMPTY_DIR on {photos} photos...")
                return cli_gallery_encoding(to_enroll, work / "cli-enroll", options.cpus)

            cli_enroll = measure_quietly("baseline_enroll", run_cli_enroll, options, baseline_load, log)

        for engine in options.engines:
            load: dict[str, Any] = dict(baseline_load)
            report: dict[str, Any] = {"engine": engine, "engines_in_run": list(options.engines), **common}

            if options.identify:
                report.update(_identify(options, engine, split, faceset.root, work, baseline, load, log))
            if options.enroll_runs:
                report["bulk_enroll"] = _bulk_enroll(options, engine, to_enroll, work, cli_enroll, load, log)
            load["max_other_processes_cores"] = max(v["other_processes_cores"] for v in load.values())
            load["contended"] = load["max_other_processes_cores"] > CONTENDED_CORES
            if load["contended"]:
                log(f"warning ({engine}): other processes used up to {load['max_other_processes_cores']:.2f} cores")
            report["other_load"] = load
            report["targets"] = targets(
                report, cli_ratio=options.cli_ratio_target, ceiling_share=options.ceiling_share_target
            )
            reports[engine] = report
    canary["end_ms"] = cpu_canary_ms()
    for report in reports.values():
        report["machine"] = {**report["machine"], "cpu_canary": canary}
    return reports
