"""How many real photos enrollment refuses as `multiple_faces`, under the old and the current dominance rule.

    nice -n 5 .venv/bin/python bench/enroll_dominance.py [--calib ../shared/faces/calib] [--dev ../shared/faces/dev]
        [--cache /tmp/dom/analyses.pkl] [--output bench/results/enroll-dominance.json]

Run from the repository root. Every photo of the calib set (LFW deep-funneled, 250x250, one subject each: no
second face >= 60% the size of the central one) and of the dev set (identity folders, and `multi/`: group
photos) is analysed once with the OpenCV engine exactly as `facegate enroll` does (`analyze(..., max_faces=1)`);
the analyses are cached (pickle) so that a re-run only re-applies the rules. Then `pick_face` decides each photo
under the rule of commit 27fc32c ("before": the largest face must be 1.5x the next one's area and not touch the
image's edge) and under the current `EnrollSettings()` ("after").

The counts depend only on the photos, the engine's models and the rule, not on the machine. A few photos are
listed by name so that a change of rule can be checked by looking at them.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import pickle
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from facegate.config import EnrollSettings, OpenCVEngineSettings
from facegate.services.enroll import pick_face
from facegate.vision.analysis import ImageAnalysis, analyze
from facegate.vision.engine import Box
from facegate.vision.opencv_engine import OpenCVEngine

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MAX_PIXELS = 40_000_000


def photos(root: Path) -> list[Path]:
    """Every photo under root's identity folders and multi/ (not noface/ or video/)."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in {"noface", "video"}):
        found += sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    return found


def analyse_all(roots: dict[str, Path], cache: Path) -> dict[str, ImageAnalysis]:
    """key "<set>/<relative path>" -> analysis (embeddings dropped), from the cache when it has every photo."""
    wanted = {f"{name}/{p.relative_to(root)}": p for name, root in roots.items() for p in photos(root)}
    cached: dict[str, ImageAnalysis] = {}
    if cache.is_file():
        with cache.open("rb") as fh:
            cached = pickle.load(fh)
    missing = [k for k in wanted if k not in cached]
    if missing:
        engine = OpenCVEngine(OpenCVEngineSettings())
        engine.open()
        for n, key in enumerate(missing, 1):
            a = analyze(engine, wanted[key].read_bytes(), max_pixels=MAX_PIXELS, max_faces=1, crops=False)
            for face in a.faces:
                face.embedding = face.embedding[:0]
            cached[key] = a
            if n % 250 == 0:
                print(f"analysed {n}/{len(missing)}", file=sys.stderr)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("wb") as fh:
            pickle.dump(cached, fh)
    return {k: cached[k] for k in wanted}


def old_rule(analysis: ImageAnalysis, rules: EnrollSettings) -> tuple[object, str | None]:
    """pick_face as of 27fc32c: the largest face dominates when 1.5x the next one's area and not edge-cut."""
    boxes = analysis.boxes
    if not analysis.faces:
        return None, "no_face"
    if len(boxes) > 1:
        b = boxes[0]
        cut = b.left <= 0 or b.top <= 0 or b.left + b.width >= analysis.width or b.top + b.height >= analysis.height
        if rules.multiple_faces == "reject" or cut or b.area < 1.5 * boxes[1].area:
            return None, "multiple_faces"
    return pick_face(replace(analysis, boxes=analysis.boxes[:1]), rules)


def _box(b: Box) -> list[int]:
    return [b.left, b.top, b.width, b.height]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = REPO.parent / "shared" / "faces"
    if not shared.is_dir():
        shared = Path("/work/shared/faces")
    parser.add_argument("--calib", type=Path, default=shared / "calib")
    parser.add_argument("--dev", type=Path, default=shared / "dev")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dom/analyses.pkl"))
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "enroll-dominance.json")
    args = parser.parse_args()

    analyses = analyse_all({"calib": args.calib, "dev": args.dev}, args.cache)
    expected: dict[str, int] = {}
    with (args.dev / "multi" / "multi.csv").open() as fh:
        for row in csv.DictReader(fh):
            expected[f"dev/multi/{row['file']}"] = int(row["expected_faces"])

    rules = EnrollSettings()
    report: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "engine": "opencv (YuNet + SFace), OpenCVEngineSettings() defaults",
        "rule_before": "27fc32c: largest face area >= 1.5x the next one's and its box does not touch the image edge",
        "rule_after": rules.model_dump(),
    }
    sets: dict[str, dict[str, object]] = {}
    groups = {
        "calib": [k for k in analyses if k.startswith("calib/")],
        "dev_identities": [k for k in analyses if k.startswith("dev/") and not k.startswith("dev/multi/")],
        "dev_multi": [k for k in analyses if k.startswith("dev/multi/")],
    }
    for name, keys in groups.items():
        entry: dict[str, object] = {
            "photos": len(keys),
            "with_several_faces": sum(len(analyses[k].boxes) > 1 for k in keys),
        }
        for label, rule in (("before", old_rule), ("after", pick_face)):
            verdicts = {k: rule(analyses[k], rules)[1] for k in keys}
            reasons = Counter(v or "accepted" for v in verdicts.values())
            entry[label] = {
                "multiple_faces": reasons["multiple_faces"],
                "reasons": dict(sorted(reasons.items())),
                "refused_multiple_faces": sorted(k for k, v in verdicts.items() if v == "multiple_faces"),
            }
        if name == "dev_multi":
            entry["photos_detail"] = {
                k: {
                    "expected_faces": expected.get(k),
                    "found": len(analyses[k].boxes),
                    "boxes": [_box(b) for b in analyses[k].boxes[:4]],
                    "before": old_rule(analyses[k], rules)[1] or "accepted",
                    "after": pick_face(analyses[k], rules)[1] or "accepted",
                }
                for k in keys
            }
        sets[name] = entry
    report["sets"] = sets
    # How far the chosen settings are from the edges: refusals (multiple_faces) with one setting moved.
    variants = {
        "central_offset=0.10": rules.model_copy(update={"central_offset": 0.10}),
        "central_offset=0.15": rules.model_copy(update={"central_offset": 0.15}),
        "central_margin=0.10": rules.model_copy(update={"central_margin": 0.10}),
        "central_margin=0.20": rules.model_copy(update={"central_margin": 0.20}),
        "central_weight=1.4": rules.model_copy(update={"central_weight": 1.4}),
        "central_offset=0 (centrality off)": rules.model_copy(update={"central_offset": 0.0}),
    }
    report["sensitivity"] = {
        label: {
            name: sum(pick_face(a, variant)[1] == "multiple_faces" for k, a in analyses.items() if k.startswith(prefix))
            for name, prefix in (("calib", "calib/"), ("dev_multi", "dev/multi/"))
        }
        for label, variant in variants.items()
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, entry in sets.items():
        before, after = entry["before"], entry["after"]
        assert isinstance(before, dict) and isinstance(after, dict)
        print(
            f"{name:15} photos {entry['photos']:5}  several faces {entry['with_several_faces']:4}  "
            f"multiple_faces before {before['multiple_faces']:3}  after {after['multiple_faces']:3}"
        )
    print(f"written {args.output}")


if __name__ == "__main__":
    main()
