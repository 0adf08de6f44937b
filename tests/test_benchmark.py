"""The benchmark's bookkeeping: the gallery/probe split and how both tools' answers are read and scored.
(No timing is asserted anywhere; the benchmark itself runs from bench/run.sh.)"""

from __future__ import annotations

from pathlib import Path

from facegate.benchmark import (
    Prediction,
    Probe,
    parse_face_recognition_output,
    prediction_from_identify,
    score,
    split_gallery,
)

PHOTOS = {
    "ann": [Path(f"/set/ann/{i}.jpg") for i in range(1, 5)],
    "bob": [Path("/set/bob/1.jpg"), Path("/set/bob/2.png")],
    "cat": [Path("/set/cat/1.jpeg"), Path("/set/cat/2.jpg"), Path("/set/cat/3.jpg")],
    "dan": [Path("/set/dan/1.jpg"), Path("/set/dan/2.jpg")],
    "eve": [Path("/set/eve/1.jpg")],  # one photo: never in the gallery
    "fay": [Path("/set/fay/1.webp"), Path("/set/fay/2.jpg")],  # the baseline cannot read .webp
}


def test_split_is_deterministic_disjoint_and_complete() -> None:
    first, again = split_gallery(PHOTOS, seed=7), split_gallery(PHOTOS, seed=7)
    assert first == again
    readable = {p for files in PHOTOS.values() for p in files if p.suffix != ".webp"}
    gallery = set(first.gallery.values())
    probes = [p.path for p in first.probes]
    assert gallery.isdisjoint(probes)
    assert len(probes) == len(set(probes))
    assert gallery | set(probes) == readable
    # Half of the identities with two or more readable photos are known, one gallery photo each.
    assert len(first.gallery) == 2
    assert "eve" not in first.gallery and "fay" not in first.gallery
    for probe in first.probes:
        assert probe.known == (probe.identity in first.gallery)
        assert probe.path.parent.name == probe.identity
    assert len({p.filename for p in first.probes}) == len(first.probes)


def test_split_depends_on_the_seed() -> None:
    galleries = {tuple(sorted(split_gallery(PHOTOS, seed=s).gallery.values())) for s in range(10)}
    assert len(galleries) > 1


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
