"""How the benchmark reads both tools' answers and scores them the same way."""

from __future__ import annotations

from pathlib import Path

from facegate_bench.scoring import Prediction, parse_face_recognition_output, prediction_from_identify, score
from facegate_bench.split import Probe


def test_face_recognition_output_nearest_name_within_tolerance() -> None:
    text = "\n".join(
        [
            "WARNING: More than one face found in /k/ann.jpg. Only considering the first face.",
            "/u/ann__2.jpg,bob,0.71",
            "/u/ann__2.jpg,ann,0.38",  # the nearest of several lines wins
            "/u/bob__1.jpg,ann,0.65",  # nearest is over the tolerance: no answer, but rank-1 sees it
            "/u/cat__1.jpg,unknown_person,None",
            "/u/dan__1.jpg,no_persons_found,None",
        ]
    )
    result = parse_face_recognition_output(text, threshold=0.6)
    assert result["ann__2.jpg"] == Prediction(faces=None, nearest="ann", distance=0.38, match="ann")
    assert result["bob__1.jpg"] == Prediction(faces=None, nearest="ann", distance=0.65, match=None)
    assert result["cat__1.jpg"].match is None and result["cat__1.jpg"].nearest is None
    assert result["dan__1.jpg"].faces == 0
    assert set(result) == {"ann__2.jpg", "bob__1.jpg", "cat__1.jpg", "dan__1.jpg"}


def _face(area_side: int, match: str | None, candidates: list[tuple[str, float]]) -> dict[str, object]:
    return {
        "box": {"left": 0, "top": 0, "width": area_side, "height": area_side},
        "match": {"name": match, "distance": candidates[0][1]} if match else None,
        "candidates": [{"name": n, "distance": d} for n, d in candidates],
    }


def test_identify_response_largest_face_or_nearest_over_faces() -> None:
    body = {"faces": [_face(50, "bob", [("bob", 0.2)]), _face(200, None, [("ann", 0.7), ("cat", 0.8)])]}
    largest = prediction_from_identify(body)
    assert largest == Prediction(faces=2, nearest="ann", distance=0.7, match=None)
    anywhere = prediction_from_identify(body, largest_only=False)
    assert anywhere == Prediction(faces=2, nearest="bob", distance=0.2, match="bob")
    assert prediction_from_identify({"faces": []}).faces == 0


def test_score_counts_rank1_identified_and_false_accepts() -> None:
    probes = [
        Probe(Path("/set/ann/2.jpg"), "ann", True),
        Probe(Path("/set/ann/3.jpg"), "ann", True),
        Probe(Path("/set/eve/1.jpg"), "eve", False),
        Probe(Path("/set/fay/2.jpg"), "fay", False),
    ]
    predictions = {
        "ann__2.jpg": Prediction(1, "ann", 0.3, "ann"),
        "ann__3.jpg": Prediction(1, "ann", 0.7, None),  # right person, over the threshold
        "eve__1.jpg": Prediction(1, "ann", 0.5, "ann"),  # an unknown person accepted
    }
    result = score(probes, predictions)
    assert result["rank1"] == 1.0
    assert result["identified_at_threshold"] == 0.5
    assert result["misidentified_at_threshold"] == 0.0
    assert result["false_accept_rate_unknown"] == 0.5
    assert result["no_answer"] == ["fay__2.jpg"]
