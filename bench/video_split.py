"""The cost of a split video deployment (`facegate worker --role ingest` + `--role recognize`) against one
`facegate worker --role all`: frame transport over NATS, and the CPU each role uses for one live 720p stream.

    .venv/bin/python bench/video_split.py                 # writes bench/results/video-split-<date>.json
    .venv/bin/python bench/video_split.py --engine opencv --seconds 20

Run from the repository root with NATS on 127.0.0.1:4222 (or --nats). The clip is bench/video.py's stage scene:
short_hamilton_clip.mp4 scaled to 1280x720 and looped (made in a temporary directory, never committed).

1. Transport, in this process (one clock on both ends): the stream played in real time, sampled frames
   JPEG-encoded (quality 85) and published on core NATS by a FramePublisher, received on a second connection by
   a RelayedSource and decoded. Per frame: read-to-decoded latency (source queue, encoding, NATS, decoding), JPEG
   bytes; encode and decode times measured apart on the same frames. At 5 sampled frames per second (the
   default) and at 25 (every frame: the worst case).
2. CPU per role: real worker processes (their engine worker processes included) on one stream of the clip,
   played live and looped, for `--seconds` after a warm-up: first `--role all`, then `--role ingest` beside
   `--role recognize`. CPU seconds per second of wall time (1.0 = one core), and the stream's status.

Other processes' CPU use during each phase is recorded (the machine is shared): read the figures with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import nats
import numpy as np
import psutil
from nats.js.errors import NotFoundError

from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad
from video import DEV, FACEGATE, REPO, enroll_gallery, environment, loadavg, log, make_clip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phase_transport(clip: Path, url: str, sample_fps: float, seconds: float) -> dict[str, Any]:
    from facegate.stream.pipeline import StreamOptions
    from facegate.stream.relay import FramePublisher, FrameRelay, RelayedSource

    prefix = f"bench.split{uuid.uuid4().hex[:8]}"
    ingest, recognize = FrameRelay(url, prefix), FrameRelay(url, prefix)
    ingest.open()
    recognize.open()
    video = RelayedSource(recognize, "s", queue_size=4, silence_seconds=30)
    video.open()
    options = StreamOptions(sample_fps=sample_fps, realtime=True, loop=True)
    publisher = FramePublisher(ingest, stream_id="s", name="stage", source=str(clip), options=options, worker="b")
    stop = threading.Event()
    latencies: list[float] = []
    images: list[np.ndarray[Any, Any]] = []

    def consume() -> None:
        for frame in video.frames(stop):
            latencies.append((time.monotonic() - frame.captured) * 1000)
            if len(images) < 30:
                images.append(frame.image)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    cpu = time.process_time()
    with OtherLoad() as load:
        threading.Timer(seconds, stop.set).start()
        publisher.run(stop)
    cpu = time.process_time() - cpu
    consumer.join(5)
    stats = publisher.stats()
    video.close()
    ingest.close()
    recognize.close()
    jpegs = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for image in images]
    started = time.perf_counter()
    for image in images:
        cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    encode_ms = (time.perf_counter() - started) * 1000 / len(images)
    started = time.perf_counter()
    for jpeg in jpegs:
        cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    decode_ms = (time.perf_counter() - started) * 1000 / len(jpegs)
    size = statistics.mean(len(j) for j in jpegs)
    result = {
        "sample_fps": sample_fps,
        "seconds": seconds,
        "frames_read": stats.frames,
        "frames_published": stats.analysed_frames,
        "frames_received": len(latencies),
        "dropped": video.dropped + stats.dropped_frames,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
        },
        "jpeg_bytes_mean": round(size),
        "megabits_per_second": round(size * 8 * sample_fps / 1e6, 2),
        "encode_ms_per_frame": round(encode_ms, 2),
        "decode_ms_per_frame": round(decode_ms, 2),
        "cpu_cores_this_process": round(cpu / seconds, 3),
        "other_load": load.summary(),
        "loadavg_after": loadavg(),
    }
    log(f"  {sample_fps:g} fps: latency p50 {result['latency_ms']['p50']} ms, p95 {result['latency_ms']['p95']} ms; "
        f"{size / 1000:.0f} kB per frame; encode {encode_ms:.1f} ms, decode {decode_ms:.1f} ms")  # fmt: skip
    return result


def tree_cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its descendants (the engine workers) so far."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def stream_status(data_dir: Path) -> dict[str, Any]:
    from facegate.config import Settings
    from facegate.services.runtime import StoreRuntime

    rt = StoreRuntime(Settings(data_dir=data_dir))
    rt.open_store()
    try:
        [row] = rt.store.streams.list_streams()
    finally:
        rt.close()
    status = row.status
    if status is None:
        return {"state": "pending"}
    return {"state": status.state, "worker": status.worker, "fps": status.fps, "lag_seconds": status.lag_seconds,
            "frames": status.frames, "dropped_frames": status.dropped_frames, "at": status.at.isoformat()}  # fmt: skip


def phase_roles(roles: list[str], env: dict[str, str], data_dir: Path, seconds: float) -> dict[str, Any]:
    """Start one worker per role, wait until the stream runs, then measure each one's CPU for `seconds`."""
    logs = data_dir.parent / "logs"
    logs.mkdir(exist_ok=True)
    procs = {}
    started_at = datetime.now(UTC)
    for role in roles:
        with (logs / f"{role}.log").open("ab") as out:
            procs[role] = subprocess.Popen([FACEGATE, "worker", "--role", role], env=env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            status = stream_status(data_dir)
            fresh = "at" in status and datetime.fromisoformat(status["at"]) > started_at
            if fresh and status["state"] == "running" and status["frames"] > 0:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
                raise SystemExit(f"the stream did not start: {status}; logs in {logs}")
            time.sleep(1.0)
        time.sleep(5.0)  # warm-up: the first tracks
        handles = {role: psutil.Process(p.pid) for role, p in procs.items()}
        before = {role: tree_cpu(h) for role, h in handles.items()}
        with OtherLoad() as load:
            started = time.monotonic()
            time.sleep(seconds)
            wall = time.monotonic() - started
            after = {role: tree_cpu(h) for role, h in handles.items()}
        status = stream_status(data_dir)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
    cores = {role: round((after[role] - before[role]) / wall, 3) for role in roles}
    log(f"  {' + '.join(roles)}: " + ", ".join(f"{r} {c} cores" for r, c in cores.items()) + f"; stream {status}")
    return {"cpu_cores": cores, "total_cpu_cores": round(sum(cores.values()), 3), "wall_seconds": round(wall, 1),
            "stream_status": status, "other_load": load.summary(), "loadavg_after": loadavg()}  # fmt: skip


async def drop_buckets(url: str, base: str) -> None:
    nc = await nats.connect(url)
    try:
        for name in (base, f"{base}_ingest", f"{base}_recognize"):
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_key_value(name)
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="fusion", help="fusion (default), opencv or dlib")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase")
    parser.add_argument("--skip", action="append", default=[], choices=["transport", "roles"])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="facegate-split-bench-"))
    bucket = f"bench_split_{uuid.uuid4().hex[:8]}"
    try:
        clip = root / "stage_720p.mp4"
        info = make_clip(DEV / "video" / "short_hamilton_clip.mp4", clip, max(30.0, args.seconds + 20))
        report: dict[str, Any] = {"machine": machine(), "engine": args.engine, "clip": info,
                                  "loadavg_start": loadavg()}  # fmt: skip
        if "transport" not in args.skip:
            log("transport over NATS (in this process)...")
            report["transport"] = [phase_transport(clip, args.nats, fps, args.seconds) for fps in (5.0, 25.0)]
        if "roles" not in args.skip:
            from facegate.config import Settings
            from facegate.services import streams as streams_service
            from facegate.services.runtime import StoreRuntime
            from facegate.services.schemas import StreamCreate

            data_dir = root / "data"
            report["enrolled_people"] = enroll_gallery(root, data_dir, args.engine)
            rt = StoreRuntime(Settings(data_dir=data_dir))
            rt.open_store()
            streams_service.add_stream(rt, StreamCreate(source=str(clip), name="stage", loop=True))
            rt.close()
            env = environment(data_dir, args.engine)
            env.update(FACEGATE_STREAMS__NATS_URL=args.nats, FACEGATE_STREAMS__WORKERS_BUCKET=bucket,
                       FACEGATE_STREAMS__FRAMES_PREFIX=f"bench.split{uuid.uuid4().hex[:8]}",
                       FACEGATE_LOG_LEVEL="info")  # fmt: skip
            log("CPU per role: one worker running the whole stream...")
            report["all"] = phase_roles(["all"], env, data_dir, args.seconds)
            log("CPU per role: ingest + recognize...")
            report["split"] = phase_roles(["ingest", "recognize"], env, data_dir, args.seconds)
    finally:
        asyncio.run(drop_buckets(args.nats, bucket))
        shutil.rmtree(root, ignore_errors=True)
    output = args.output or REPO / "bench" / "results" / f"video-split-{datetime.now(UTC):%Y-%m-%d}-{args.engine}.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    log(f"written to {output}")


if __name__ == "__main__":
    sys.exit(main())
