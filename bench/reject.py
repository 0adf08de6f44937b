""" "Not this person" on the calibration set: does rejecting a stranger's first false match stop the same stranger
from being named again, without costing true matches?

    PYTHONPATH=bench .venv/bin/python bench/reject.py [--seeds 5] [--output bench/results/reject-calib.json]

Run from the repository root. SFace descriptors of every calib photo (facegate's opencv engine, cached by
bench/calib_descriptors.py), then pure numpy with identify's own decision code: `rejections.lookalike` (is a face
nearer one of the person's rejected faces than to the person?) and `rejections.named` (the nearest candidate within
the threshold that is not a rejected lookalike), on identify's top 3 candidates.

Protocol, per seed: the identities with two or more photos are shuffled and halved. One half is enrolled with one
photo each (the first in file order); their other photos are genuine probes. The other half are strangers: their
photos are shown in file order. A stranger's first photo that is named (a false match) is rejected by the user
("not this person"), once per stranger; the rejections accumulate over strangers. Counted:

- later photos of those strangers (after the rejected one) still falsely named: without rejections vs with;
- of those, named as the same person as the rejected match (what the feature targets);
- genuine probes named correctly without rejections and lost with every rejection in place.

At the calibrated threshold (0.5845, per-pair false-match rate 1e-4) few strangers are falsely named, so a looser
threshold (0.65, ~1e-3 by the calibration's normal impostor tail) is run too to get more false matches. The rule
shipped (nearer the rejected face than the person) is compared with a blunter one (within the threshold of a
rejected face).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from calib_descriptors import CALIB, calib_descriptors
from facegate.calibration import shipped
from facegate.services import rejections
from facegate.services.accuracy import distance_matrix
from facegate.services.schemas import Candidate

TOP_K = 3
Vectors = npt.NDArray[np.float32]
Rule = Callable[[Vectors, list[Vectors], float, float], bool]


def nearer_than_person(probe: Vectors, rejected: list[Vectors], person_distance: float, threshold: float) -> bool:
    return rejections.lookalike("cosine", probe, rejected, person_distance)


def within_threshold(probe: Vectors, rejected: list[Vectors], person_distance: float, threshold: float) -> bool:
    if not rejected:
        return False
    distances = distance_matrix("cosine", probe[None, :].astype(np.float64), np.stack(rejected).astype(np.float64))
    return bool(distances.min() <= threshold)


RULES: dict[str, Rule] = {"nearer_than_person (shipped)": nearer_than_person, "within_threshold": within_threshold}


class Gallery:
    def __init__(self, people: list[str], vectors: Vectors) -> None:
        self.people = people
        self.vectors = vectors.astype(np.float64)

    def candidates(self, probe: Vectors) -> list[tuple[str, float]]:
        d = distance_matrix("cosine", probe[None, :].astype(np.float64), self.vectors)[0]
        order = np.argsort(d)[:TOP_K]
        return [(self.people[i], float(d[i])) for i in order]


def decide(
    gallery: Gallery,
    probe: Vectors,
    threshold: float,
    rejected: dict[str, list[Vectors]],
    rule: Rule,
) -> str | None:
    """Who identify names: identify's rule (`rejections.named`) over candidates flagged by `rule`."""
    flagged = [
        Candidate(
            person_id=person,
            name=person,
            distance=distance,
            confidence=0.0,
            rejected_lookalike=distance <= threshold and rule(probe, rejected.get(person, []), distance, threshold),
        )
        for person, distance in gallery.candidates(probe)
    ]
    match = rejections.named(flagged, threshold)
    return match.person_id if match else None


def run_seed(
    seed: int, identity: npt.NDArray[np.str_], vectors: Vectors, threshold: float, rule: Rule
) -> dict[str, int]:
    by_person: dict[str, list[int]] = {}
    for i, name in enumerate(identity):
        by_person.setdefault(str(name), []).append(i)
    eligible = sorted(p for p, rows in by_person.items() if len(rows) >= 2)
    rng = np.random.default_rng(seed)
    rng.shuffle(eligible)
    enrolled, strangers = eligible[: len(eligible) // 2], eligible[len(eligible) // 2 :]
    gallery = Gallery(enrolled, vectors[[by_person[p][0] for p in enrolled]])
    nobody: dict[str, list[Vectors]] = {}
    rejected: dict[str, list[Vectors]] = {}
    counts = dict.fromkeys(
        [
            "strangers",
            "stranger_photos",
            "strangers_falsely_named",
            "later_photos",
            "later_named_without",
            "later_named_with",
            "later_same_person_without",
            "later_same_person_with",
            "genuine_probes",
            "genuine_correct_without",
            "genuine_correct_with",
            "genuine_lost",
        ],
        0,
    )
    counts["strangers"] = len(strangers)
    for person in strangers:
        rows = by_person[person]
        counts["stranger_photos"] += len(rows)
        first = next((k for k, r in enumerate(rows) if decide(gallery, vectors[r], threshold, rejected, rule)), None)
        if first is None:
            continue
        named_as = decide(gallery, vectors[rows[first]], threshold, rejected, rule)
        assert named_as is not None
        counts["strangers_falsely_named"] += 1
        later = rows[first + 1 :]
        # The baseline is measured with no rejections at all; "with" after this one is recorded.
        without = [decide(gallery, vectors[r], threshold, nobody, rule) for r in later]
        rejected.setdefault(named_as, []).append(vectors[rows[first]])
        with_ = [decide(gallery, vectors[r], threshold, rejected, rule) for r in later]
        counts["later_photos"] += len(later)
        counts["later_named_without"] += sum(n is not None for n in without)
        counts["later_named_with"] += sum(n is not None for n in with_)
        counts["later_same_person_without"] += sum(n == named_as for n in without)
        counts["later_same_person_with"] += sum(n == named_as for n in with_)
    for person in enrolled:
        for r in by_person[person][1:]:
            counts["genuine_probes"] += 1
            before = decide(gallery, vectors[r], threshold, nobody, rule) == person
            after = decide(gallery, vectors[r], threshold, rejected, rule) == person
            counts["genuine_correct_without"] += before
            counts["genuine_correct_with"] += after
            counts["genuine_lost"] += before and not after
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/results/reject-calib.json"))
    args = parser.parse_args()
    started = time.time()
    keys, identity, vectors = calib_descriptors()
    calibrated = shipped().opencv
    loose = 0.65
    loose_fmr = NormalDist(calibrated.impostor_mean, calibrated.impostor_std).cdf(loose)
    results: list[dict[str, Any]] = []
    for label, threshold in (("calibrated", calibrated.threshold), ("loose", loose)):
        for rule_name, rule in RULES.items():
            totals: dict[str, int] = {}
            for seed in range(args.seeds):
                for key, value in run_seed(seed, identity, vectors, threshold, rule).items():
                    totals[key] = totals.get(key, 0) + value
            row = {"threshold": label, "distance": threshold, "rule": rule_name, **totals}
            row["later_named_reduction"] = round(
                1 - totals["later_named_with"] / max(1, totals["later_named_without"]), 3
            )
            row["later_same_person_reduction"] = round(
                1 - totals["later_same_person_with"] / max(1, totals["later_same_person_without"]), 3
            )
            row["genuine_lost_rate"] = round(totals["genuine_lost"] / max(1, totals["genuine_correct_without"]), 4)
            results.append(row)
            print(json.dumps(row))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {
        "what": "bench/reject.py: rejecting each stranger's first false match on calib (see the docstring)",
        "command": f"PYTHONPATH=bench .venv/bin/python bench/reject.py --seeds {args.seeds}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": platform.platform(),
        "faceset": str(CALIB),
        "photos_with_a_face": len(keys),
        "identities": len(set(identity.tolist())),
        "seeds": args.seeds,
        "engine": "opencv (SFace), cosine",
        "loose_threshold_fmr_normal_tail": float(f"{loose_fmr:.2g}"),
        "seconds": round(time.time() - started, 1),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
