"""One whole benchmark run: the baseline, facegate over HTTP and bulk enroll, each measured quietly."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from facegate.benchmark.baseline import run_baseline
from facegate.benchmark.bulk_enroll import bulk_enroll
from facegate.benchmark.client import enroll_gallery
from facegate.benchmark.latency import LATENCY_SIZE, identify_latency, latency_image
from facegate.benchmark.machine import machine
from facegate.benchmark.options import ENGINES, BenchOptions, Log
from facegate.benchmark.quiet import CONTENDED_CORES, cpu_canary_ms, measure_quietly
from facegate.benchmark.server import running_server
from facegate.benchmark.split import Split, split_gallery, write_baseline_dirs
from facegate.benchmark.targets import TARGETS, targets
from facegate.benchmark.throughput import identify_throughput
from facegate.services.evaluation import load_faceset


def _facegate_http(
    options: BenchOptions, split: Split, faceset_root: Path, work: Path, log: Log
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """Serve, enroll the gallery, identify every probe (throughput), then one image again and again (latency)."""
    data_dir = Path(tempfile.mkdtemp(dir=work, prefix="serve-"))
    log(f"facegate serve (engine {options.engine})...")
    with running_server(data_dir / "data", options.engine, data_dir / "serve.log") as server:
        log(f"  ready in {server.start_seconds:.1f}s; enrolling {len(split.gallery)} people over HTTP...")
        limits = httpx.Limits(max_connections=options.concurrency + 2)
        with httpx.Client(base_url=server.url, timeout=120.0, limits=limits) as client:
            gallery = enroll_gallery(client, split.gallery)
            log(f"  identify x{options.passes} passes, {options.concurrency} client threads...")
            fg = identify_throughput(client, split.probes, concurrency=options.concurrency, passes=options.passes)
            fg["server_start_seconds"] = round(server.start_seconds, 3)
            fg["gallery_enroll"] = gallery
            image, source = latency_image(faceset_root, next(iter(split.gallery.values())))
            log(f"  latency: {options.latency_requests} sequential identify requests...")
            latency = identify_latency(client, image, requests=options.latency_requests)
            latency["image"] = f"{source} fitted and padded to {LATENCY_SIZE[0]}x{LATENCY_SIZE[1]}, JPEG q90"
            telemetry = client.get("/api/v1/telemetry")
            summary = telemetry.json() if telemetry.status_code == 200 else None
    return fg, latency, summary


def run(options: BenchOptions, log: Log = print) -> dict[str, Any]:
    if options.engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
    faceset = load_faceset(options.faceset.resolve())
    split = split_gallery(faceset.photos, options.seed)
    report: dict[str, Any] = {
        "engine": options.engine,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "machine": machine(),
        "faceset": {
            "root": str(faceset.root),
            "identities": len(faceset.photos),
            "photos": sum(len(v) for v in faceset.photos.values()),
            "gallery": {k: v.relative_to(faceset.root).as_posix() for k, v in split.gallery.items()},
            "probes_known": sum(p.known for p in split.probes),
            "probes_unknown": sum(not p.known for p in split.probes),
        },
        "targets_spec": TARGETS,
    }
    load: dict[str, Any] = {}
    throughput: dict[str, Any] = {}
    canary = {"start_ms": cpu_canary_ms()}
    with tempfile.TemporaryDirectory(prefix="facegate-bench-") as tmp:
        work = Path(tmp)
        known_dir, unknown_dir = write_baseline_dirs(split, work / "split")
        if options.baseline:

            def baseline() -> dict[str, Any]:
                log(f"baseline: face_recognition --cpus {options.cpus} on {len(split.probes)} probes...")
                return run_baseline(split, known_dir, unknown_dir, work, options.cpus)

            throughput["face_recognition"] = measure_quietly("baseline", baseline, options, load, log)

        fg, latency, telemetry = measure_quietly(
            "facegate_http", lambda: _facegate_http(options, split, faceset.root, work, log), options, load, log
        )
        throughput["facegate"] = fg
        if telemetry is not None:
            report["server_telemetry"] = telemetry
        if "face_recognition" in throughput:
            base = throughput["face_recognition"]
            throughput["ratio_probes_only"] = round(fg["images_per_s"] / base["images_per_s_probes_only"], 2)
            throughput["ratio_end_to_end"] = round(fg["images_per_s"] / base["images_per_s_total"], 2)
        report["throughput"] = throughput
        report["latency"] = latency

        def enroll() -> dict[str, Any]:
            log(f"bulk enroll: facegate enroll x{options.enroll_runs}...")
            return bulk_enroll(faceset.photos, options.engine, work / "enroll", options.enroll_runs)

        report["bulk_enroll"] = measure_quietly("bulk_enroll", enroll, options, load, log)
    canary["end_ms"] = cpu_canary_ms()
    report["machine"]["cpu_canary"] = canary
    load["max_other_processes_cores"] = max(v["other_processes_cores"] for v in load.values())
    load["contended"] = load["max_other_processes_cores"] > CONTENDED_CORES
    if load["contended"]:
        log(f"warning: other processes used up to {load['max_other_processes_cores']:.2f} cores during the run")
    report["other_load"] = load
    report["targets"] = targets(report)
    return report
