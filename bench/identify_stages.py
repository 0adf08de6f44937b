"""Where one identify's engine time goes: the stages of `facegate.vision.analysis.analyze` on the latency photo
(one 640x480 face, as facegate_bench's latency phase sends it), in this process, with the OpenCV threads a lone
request gets in a pool worker (all cores).

    PYTHONPATH=bench .venv/bin/python bench/identify_stages.py --engine fusion --runs 50

Each stage is timed on its own, as `analyze` runs it (median of `--runs`, after 5 warm-up runs), and the whole
`analyze` call with identify's arguments (crops on, secondary="input") is timed too, with the size of what a
pool worker sends back (pickled). For the fused engine, the dlib descriptor (`embed_secondary`, computed only
when SFace is unsure of the face) is timed apart. Writes bench/results/identify-stages.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from cli_startup import dev_faces
from facegate.vision.analysis import analyze, crop
from facegate.vision.engine import FusedFaceEngine
from facegate.vision.factory import build_engine
from facegate.vision.images import decode, encode_jpeg, probe
from facegate.vision.quality import sharpness
from facegate_bench.ceiling import engine_settings
from facegate_bench.latency import latency_image
from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - started))
    return round(statistics.median(times), 2)


def stages(engine_name: str, faces: Path, runs: int, threads: int) -> dict[str, Any]:
    settings, params = engine_settings(engine_name)
    engine = build_engine(settings)
    engine.open()
    cv2.setNumThreads(threads)
    data, source = latency_image(faces, Path())
    image = decode(data, params.max_pixels, min_side=params.decode_side, max_decoded_pixels=params.max_decoded_pixels)
    (detection, *_) = sorted(engine.detect(image), key=lambda d: d.box.area, reverse=True)
    aligned = engine.align(image, detection)
    timed: dict[str, float] = {
        "probe (header)": _median_ms(lambda: probe(data, params.max_pixels), runs),
        "decode": _median_ms(
            lambda: decode(
                data, params.max_pixels, min_side=params.decode_side, max_decoded_pixels=params.max_decoded_pixels
            ),
            runs,
        ),
        "detect (YuNet)": _median_ms(lambda: engine.detect(image), runs),
        "align": _median_ms(lambda: engine.align(image, detection), runs),
        "sharpness": _median_ms(lambda: sharpness(aligned), runs),
        "embed (SFace)": _median_ms(lambda: engine.embed(aligned), runs),
        "crop JPEG": _median_ms(lambda: encode_jpeg(crop(image, detection.box)), runs),
    }
    if isinstance(engine, FusedFaceEngine):
        chip = engine.secondary_input(image, detection)
        timed["dlib chip (secondary_input)"] = _median_ms(lambda: engine.secondary_input(image, detection), runs)
        timed["dlib descriptor (embed_secondary, only when unsure)"] = _median_ms(
            lambda: engine.embed_secondary(chip), runs
        )

    def whole() -> Any:
        return analyze(
            engine,
            data,
            max_pixels=params.max_pixels,
            max_faces=params.max_faces,
            crops=True,
            decode_side=params.decode_side,
            max_decoded_pixels=params.max_decoded_pixels,
            secondary="input",
        )

    result = whole()
    return {
        "engine": engine_name,
        "opencv_threads": threads,
        "image": f"{source} fitted and padded to 640x480, JPEG q90 ({len(data)} bytes)",
        "runs": runs,
        "stage_median_ms": timed,
        "analyze_median_ms": _median_ms(whole, runs),
        "result_pickled_bytes": len(pickle.dumps(result)),
        "pickle_result_median_ms": _median_ms(lambda: pickle.loads(pickle.dumps(result)), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="fusion", choices=("opencv", "fusion", "dlib"))
    parser.add_argument("--faces", type=Path, default=dev_faces(), help="The dev face set (the latency photo's)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "identify-stages.json")
    args = parser.parse_args()
    with OtherLoad() as other:
        report = stages(args.engine, args.faces, args.runs, args.threads)
    report["other_load"] = other.summary()
    report["machine"] = machine()
    results: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    results[f"{args.engine} threads={args.threads}"] = report
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
