"""How wide the fused engine's "unsure" band should be: every coverage of the decisions fusion changes, fitted
and measured by 5-fold cross-validation over the people of a face set (default ../shared/faces/calib).

    python bench/fusion_band.py [FACESET] [--cache DIR] [--output bench/results/fusion-band.json]

Reuses `facegate calibrate --cache DIR` embeddings when they are there.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from facegate.config import Settings
from facegate.services import calibration, evaluation

COVERAGES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faceset", nargs="?", type=Path, default=Path("../shared/faces/calib"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fg-cache"))
    parser.add_argument("--output", type=Path, default=Path("bench/results/fusion-band.json"))
    args = parser.parse_args()
    faceset = evaluation.load_faceset(args.faceset)
    distances = evaluation.measure(faceset, Settings(), cache=args.cache)
    rows = []
    for coverage in COVERAGES:
        calibration.BAND_COVERAGE = coverage
        fitted = calibration.fit(distances, false_accepts=0.01, gallery_people=100)
        fusion = calibration.cross_validate(distances, false_accepts=0.01, gallery_people=100)["fusion"]
        row = {
            "coverage": coverage,
            "band": [fitted.fusion.band_low, fitted.fusion.band_high],
            "tar_at_far_0.001": fusion["tar_at_far_0.001"]["value"],
            "held_out_fmr": fusion["held_out_fmr"]["value"],
            "pairs_accuracy": fusion["pairs_accuracy_at_threshold"]["value"],
        }
        for n in evaluation.PHOTOS_PER_PERSON:
            o = fusion["open_set"][f"{n}_photos"]
            row[f"{n}_photos"] = {
                "rank1_identified": o["rank1_identified_at_threshold"]["value"],
                "false_accepts_unknown": o["false_accepts_unknown"]["value"],
                "second_descriptor_share": o["second_descriptor_share"],
            }
        rows.append(row)
        print(json.dumps(row))
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "faceset": str(args.faceset),
        "operating_point": "1% false accepts with 100 people enrolled",
        "rows": rows,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
