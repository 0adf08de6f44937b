"""Real-time video: can `facegate watch` keep up, how soon does an event follow the frame, how many streams fit.

    .venv/bin/python bench/video.py                      # writes bench/results/video-<date>.json
    .venv/bin/python bench/video.py --engine opencv --capacity-max 6

Run from the repository root. The clip is made at bench time in a temporary directory (never committed): the dev
set's crowd_walking.mp4 (1920x1080, 25 fps, 4.2 s, many passers-by) scaled to 1280x720 and looped to at least
`--clip-seconds`, written with OpenCV's MPEG-4 Part 2 encoder (the only one opencv-python-headless ships; H.264
decodes somewhat slower). A fresh data directory gets the first photo of every dev identity enrolled with
`facegate enroll`: nobody in the crowd is enrolled, Lin-Manuel Miranda of the stage clip is.

Three measurements:
1. Real-time factor: seconds of video per wall-clock second of the whole `facegate watch CLIP --json` command,
   model loading, start-up and shutdown included (target >= 1.0 on 2 cores). Sampling: the configured 5 frames
   analysed per second of video.
2. Frame-to-event latency on a live source: `facegate watch CLIP --json --realtime` plays the file at its frame
   rate; for each `appeared` event, `at` (published) minus `last_seen` (when the frame that confirmed the track
   was read from the source; queueing included). Target p95 <= 300 ms.
   Measured on the crowd and on a stage scene with few faces (short_hamilton_clip.mp4, also scaled to 720p).
3. Streams per machine: N pipelines in one process sharing one engine pool (2 workers), each a live 720p stream
   (the clip looped at its frame rate) sampled at 5 fps, for `--capacity-seconds`. A stream holds when it
   analyses >= 90% of 5 frames per second and its median lag stays under 1 s; N grows until one does not.
   Both scenes again: the crowd (new faces all the time: the worst case) and the stage.

Other processes' CPU use during each phase is recorded (the machine is shared): read the figures with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad

REPO = Path(__file__).resolve().parents[1]
FACEGATE = str(Path(sys.executable).with_name("facegate"))
DEV = Path(os.environ.get("FACEGATE_DEV_FACES", REPO.parent / "shared" / "faces" / "dev"))
WIDTH, HEIGHT = 1280, 720


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_clip(source: Path, target: Path, seconds: float) -> dict[str, Any]:
    """`source` scaled to 1280x720 and looped until it lasts at least `seconds`."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA))
    capture.release()
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    written = 0
    while written < seconds * fps:
        for frame in frames:
            writer.write(frame)
            written += 1
    writer.release()
    return {"file": source.name, "width": WIDTH, "height": HEIGHT, "fps": fps, "frames": written,
            "seconds": round(written / fps, 3), "codec": "mp4v"}  # fmt: skip


def environment(data_dir: Path, engine: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update(FACEGATE_DATA_DIR=str(data_dir), FACEGATE_ENGINE__TYPE=engine, FACEGATE_LOG_LEVEL="warning")
    return env


def enroll_gallery(root: Path, data_dir: Path, engine: str) -> int:
    people = root / "people"
    count = 0
    for folder in sorted(p for p in DEV.iterdir() if p.is_dir() and p.name not in ("multi", "noface", "video")):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if photos:
            (people / folder.name).mkdir(parents=True)
            (people / folder.name / photos[0].name).symlink_to(photos[0])
            count += 1
    done = subprocess.run([FACEGATE, "enroll", str(people)], env=environment(data_dir, engine), capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"facegate enroll failed: {done.stderr[-2000:]}")
    return count


@dataclass
class Watched:
    wall_seconds: float
    cpu_seconds: float  # user + system of the command and its engine workers
    events: list[dict[str, Any]]
    summary: str  # the command's last line on stderr: frames read, analysed, dropped


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def watch(clip: Path, env: dict[str, str], *extra: str) -> Watched:
    started, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([FACEGATE, "watch", str(clip), "--json", *extra], env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"facegate watch failed: {done.stderr[-2000:]}")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    summary = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return Watched(wall, children_cpu() - cpu, events, summary)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def phase_realtime_factor(clip: Path, info: dict[str, Any], env: dict[str, str], runs: int) -> dict[str, Any]:
    results = []
    cores = len(os.sched_getaffinity(0))
    for _ in range(runs):
        with OtherLoad() as load:
            run = watch(clip, env)
        # What the run would take alone on this machine: its CPU time spread over every core. An estimate (the
        # work is not perfectly parallel, and contention inflates CPU time too), given beside the measurement.
        alone = run.cpu_seconds / cores
        results.append({"wall_seconds": round(run.wall_seconds, 2),
                        "realtime_factor": round(info["seconds"] / run.wall_seconds, 2),
                        "cpu_seconds": round(run.cpu_seconds, 1),
                        "cpu_seconds_per_video_second": round(run.cpu_seconds / info["seconds"], 3),
                        "realtime_factor_if_alone_estimate": round(info["seconds"] / alone, 2),
                        "events": len(run.events), "summary": run.summary, "other_load": load.summary(),
                        "loadavg_after": loadavg()})  # fmt: skip
        log(f"  real-time factor {info['seconds'] / run.wall_seconds:.2f}x ({run.wall_seconds:.1f} s for "
            f"{info['seconds']} s of video; {run.cpu_seconds:.1f} CPU s, other processes used "
            f"{load.summary()['other_processes_cores']} cores)")  # fmt: skip
    return {"runs": results, "best_realtime_factor": max(r["realtime_factor"] for r in results)}


def phase_latency(clip: Path, env: dict[str, str]) -> dict[str, Any]:
    with OtherLoad() as load:
        run = watch(clip, env, "--realtime")
    events, summary = run.events, run.summary
    latencies = sorted(
        (datetime.fromisoformat(e["at"]) - datetime.fromisoformat(e["last_seen"])).total_seconds() * 1000
        for e in events
        if e["type"] == "appeared"
    )
    if not latencies:
        return {"appeared_events": 0, "summary": summary, "other_load": load.summary()}
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    log(f"  frame-to-event latency p50 {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms")
    return {"appeared_events": len(latencies), "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(p95, 1), "max_ms": round(latencies[-1], 1), "summary": summary,
            "other_load": load.summary(), "loadavg_after": loadavg()}  # fmt: skip


def phase_capacity(clip: Path, data_dir: Path, engine: str, seconds: float, most: int, fps: float) -> dict[str, Any]:
    os.environ.update(environment(data_dir, engine))
    from facegate.config import Settings
    from facegate.services.runtime import Runtime
    from facegate.stream.pipeline import Pipeline, StreamOptions

    settings = Settings()
    rt = Runtime(settings)
    rt.open()
    steps = []
    try:
        for n in range(1, most + 1):
            stop = threading.Event()
            options = StreamOptions.from_settings(settings.streams, realtime=True, loop=True, sample_fps=fps)
            pipelines = [Pipeline(rt, stream_id=f"s{i}", name=f"cam{i}", source=str(clip), options=options)
                         for i in range(n)]  # fmt: skip
            threads = [threading.Thread(target=p.run, args=(stop,), daemon=True) for p in pipelines]
            for t in threads:
                t.start()
            time.sleep(3.0)  # warm-up: the first tracks, the queues filling
            before = [p.stats() for p in pipelines]
            lags: list[list[float]] = [[] for _ in pipelines]
            with OtherLoad() as load:
                started = time.monotonic()
                while time.monotonic() - started < seconds:
                    time.sleep(1.0)
                    for i, p in enumerate(pipelines):
                        lags[i].append(p.stats().lag_seconds)
                elapsed = time.monotonic() - started
            after = [p.stats() for p in pipelines]
            stop.set()
            for t in threads:
                t.join(timeout=30)
            streams = [
                {"analysed_fps": round((a.analysed_frames - b.analysed_frames) / elapsed, 2),
                 "median_lag_seconds": round(statistics.median(lag), 3), "max_lag_seconds": round(max(lag), 3),
                 "dropped_frames": a.dropped_frames - b.dropped_frames, "read_fps": a.fps}
                for b, a, lag in zip(before, after, lags, strict=True)
            ]  # fmt: skip
            holds = all(s["analysed_fps"] >= 0.9 * fps and s["median_lag_seconds"] < 1.0 for s in streams)
            steps.append({"streams": n, "holds": holds, "per_stream": streams, "other_load": load.summary(),
                          "loadavg_after": loadavg()})  # fmt: skip
            log(f"  {n} streams: {'hold' if holds else 'do NOT hold'}: "
                + ", ".join(f"{s['analysed_fps']} fps lag {s['median_lag_seconds']} s" for s in streams))  # fmt: skip
            if not holds:
                break
    finally:
        rt.close()
    held = [s["streams"] for s in steps if s["holds"]]
    return {"sample_fps": fps, "seconds_per_step": seconds, "steps": steps, "streams_held": max(held, default=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="fusion", help="fusion (default), opencv or dlib")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=1, help="real-time factor runs")
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--capacity-max", type=int, default=4)
    parser.add_argument("--sample-fps", type=float, default=5.0)
    parser.add_argument("--skip", action="append", default=[], choices=["rtf", "latency", "capacity"])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="facegate-video-bench-"))
    try:
        clip = root / "crowd_720p.mp4"
        info = make_clip(DEV / "video" / "crowd_walking.mp4", clip, args.clip_seconds)
        log(f"clip: {info}")
        # A second scene with few faces (a stage: one or two people, an audience late on), closer to a door
        # camera than the crowd is.
        stage = root / "stage_720p.mp4"
        stage_info = make_clip(DEV / "video" / "short_hamilton_clip.mp4", stage, args.clip_seconds)
        data_dir = root / "data"
        enrolled = enroll_gallery(root, data_dir, args.engine)
        env = environment(data_dir, args.engine)
        report: dict[str, Any] = {"machine": machine(), "engine": args.engine, "clip": info,
                                  "stage_clip": stage_info, "enrolled_people": enrolled,
                                  "loadavg_start": loadavg()}  # fmt: skip
        if "rtf" not in args.skip:
            log("real-time factor (facegate watch, whole command)...")
            report["realtime_factor"] = phase_realtime_factor(clip, info, env, args.runs)
        if "latency" not in args.skip:
            log("frame-to-event latency (facegate watch --realtime)...")
            report["latency"] = phase_latency(clip, env)
            report["latency_stage"] = phase_latency(stage, env)
        if "capacity" not in args.skip:
            log("streams per machine...")
            for key, scene in (("capacity", clip), ("capacity_stage", stage)):
                report[key] = phase_capacity(
                    scene, data_dir, args.engine, args.capacity_seconds, args.capacity_max, args.sample_fps
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    output = args.output or REPO / "bench" / "results" / f"video-{datetime.now(UTC):%Y-%m-%d}-{args.engine}.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    log(f"written to {output}")


if __name__ == "__main__":
    main()
