"""What each tool answered about each probe, and both tools scored the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facegate_bench.split import Probe

BASELINE_TOLERANCE = 0.6  # face_recognition's default


@dataclass(frozen=True)
class Prediction:
    """What one tool said about one probe photo."""

    faces: int | None  # faces found; None when the tool does not say
    nearest: str | None  # closest enrolled identity, whatever its distance (rank-1)
    distance: float | None
    match: str | None  # the identity given as the answer (nearest within the tool's threshold), else None


def parse_face_recognition_output(text: str, threshold: float = BASELINE_TOLERANCE) -> dict[str, Prediction]:
    """Lines `path,name,distance` from `face_recognition --show-distance true` -> prediction per file name.

    A file can have several lines (several faces, several names within the tolerance); its answer is the nearest
    name. `unknown_person` means faces but none within the tolerance; `no_persons_found` means no face.
    """
    seen: dict[str, list[tuple[str, float | None]]] = {}
    for line in text.splitlines():
        parts = line.strip().rsplit(",", 2)
        if len(parts) != 3 or line.startswith("WARNING"):
            continue
        path, name, dist = parts
        filename = path.replace("\\", "/").rsplit("/", 1)[-1]
        try:
            distance = None if dist == "None" else float(dist)
        except ValueError:
            continue
        seen.setdefault(filename, []).append((name, distance))
    result: dict[str, Prediction] = {}
    for filename, rows in seen.items():
        if any(name == "no_persons_found" for name, _ in rows):
            result[filename] = Prediction(faces=0, nearest=None, distance=None, match=None)
            continue
        named = [(d, n) for n, d in rows if n != "unknown_person" and d is not None]
        if not named:
            result[filename] = Prediction(faces=None, nearest=None, distance=None, match=None)
            continue
        distance, nearest = min(named)
        match = nearest if distance <= threshold else None
        result[filename] = Prediction(faces=None, nearest=nearest, distance=round(distance, 4), match=match)
    return result


def prediction_from_identify(body: Mapping[str, Any], *, largest_only: bool = True) -> Prediction:
    """Prediction from a /api/v1/identify response: the largest face's answer (the photo's subject), or with
    `largest_only=False` the nearest over every face, as the baseline is scored."""
    faces: list[Mapping[str, Any]] = list(body.get("faces", []))
    if not faces:
        return Prediction(faces=0, nearest=None, distance=None, match=None)
    if largest_only:
        faces = [max(faces, key=lambda f: f["box"]["width"] * f["box"]["height"])]
    best: tuple[float, str] | None = None
    match: tuple[float, str] | None = None
    for face in faces:
        if face.get("candidates"):
            top = face["candidates"][0]
            best = min(best, (top["distance"], top["name"])) if best else (top["distance"], top["name"])
        if face.get("match"):
            m = face["match"]
            match = min(match, (m["distance"], m["name"])) if match else (m["distance"], m["name"])
    return Prediction(
        faces=len(body["faces"]),
        nearest=best[1] if best else None,
        distance=best[0] if best else None,
        match=match[1] if match else None,
    )


def score(probes: Sequence[Probe], predictions: Mapping[str, Prediction]) -> dict[str, Any]:
    """rank-1: the nearest enrolled person is the right one (known people's probes). identified: the answer given
    at the tool's threshold is the right one. false accepts: an unknown person's photo got a name."""
    known = [p for p in probes if p.known]
    unknown = [p for p in probes if not p.known]
    missing = Prediction(faces=None, nearest=None, distance=None, match=None)

    def pred(p: Probe) -> Prediction:
        return predictions.get(p.filename, missing)

    def rate(hits: int, total: int) -> float:
        return round(hits / total, 4) if total else 0.0

    rank1 = sum(pred(p).nearest == p.identity for p in known)
    identified = sum(pred(p).match == p.identity for p in known)
    misidentified = sum(pred(p).match not in (None, p.identity) for p in known)
    false_accepts = sum(pred(p).match is not None for p in unknown)
    return {
        "known_probes": len(known),
        "unknown_probes": len(unknown),
        "rank1": rate(rank1, len(known)),
        "identified_at_threshold": rate(identified, len(known)),
        "misidentified_at_threshold": rate(misidentified, len(known)),
        "false_accept_rate_unknown": rate(false_accepts, len(unknown)),
        "no_face": sorted(p.filename for p in probes if pred(p).faces == 0),
        "no_answer": sorted(p.filename for p in probes if p.filename not in predictions),
    }
