"""Who a video track is, decided from several frames rather than one: a vote over the distances of the track's
best-quality frames, so a single blurred or turned-away frame neither names nor unnames anyone."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from facegate.services.schemas import Candidate
from facegate.vision.analysis import FaceAnalysis
from facegate.vision.engine import confidence

# A person missing from a frame's candidates counts as this multiple of the threshold in that frame, and
# farther distances are capped there: one wild frame cannot outvote the others.
ABSENT = 1.5
# A track is clearly nobody enrolled when every kept frame is good (quality at least SURE_QUALITY) and its
# nearest person is beyond FAR x threshold: it can be announced as unknown without waiting for more frames.
SURE_QUALITY = 0.5
FAR = 1.25


@dataclass(frozen=True)
class Observation:
    quality: float
    distances: dict[str, float]  # person id -> distance in this frame (its candidates)


@dataclass(frozen=True)
class Decision:
    person_id: str | None  # None: unknown
    name: str | None
    distance: float | None  # the named person's median distance over the voting frames
    confidence: float | None
    observations: int

    def candidate(self) -> Candidate | None:
        if self.person_id is None or self.name is None or self.distance is None or self.confidence is None:
            return None
        return Candidate(person_id=self.person_id, name=self.name, distance=self.distance, confidence=self.confidence)


@dataclass
class TrackIdentity:
    """The frames seen of one track: the `keep` best by quality for the vote, and the best face of all (its
    crop and embedding become the track's match-history row)."""

    keep: int
    observations: list[Observation] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    best: FaceAnalysis | None = None
    seen: int = 0  # frames embedded in all

    def add(self, face: FaceAnalysis, candidates: list[Candidate]) -> None:
        self.seen += 1
        for c in candidates:
            self.names[c.person_id] = c.name
        # A frame that resembles a face a user rejected for a person ("not this person") is no vote for them.
        votes = {c.person_id: c.distance for c in candidates if not c.rejected_lookalike}
        self.observations.append(Observation(face.quality, votes))
        self.observations.sort(key=lambda o: o.quality, reverse=True)
        if len(self.observations) > self.keep:
            del self.observations[self.keep :]
            kept = {p for o in self.observations for p in o.distances}
            self.names = {p: n for p, n in self.names.items() if p in kept}
        if self.best is None or face.quality > self.best.quality:
            self.best = face

    def forget(self, person_id: str) -> None:
        """Count no more votes for a person (deleted while the track was in view)."""
        self.observations = [
            Observation(o.quality, {p: d for p, d in o.distances.items() if p != person_id}) for o in self.observations
        ]
        self.names.pop(person_id, None)

    def decide(self, threshold: float, min_observations: int) -> Decision:
        """The person whose median distance over the best half of the kept frames (at least
        `min_observations` of them) is smallest, named when that median is within `threshold`."""
        voting = self.observations[: max(min_observations, (len(self.observations) + 1) // 2)]
        cap = threshold * ABSENT
        people = {p for o in voting for p in o.distances}
        medians = {p: statistics.median(min(o.distances.get(p, cap), cap) for o in voting) for p in people}
        if not voting or not medians:
            return Decision(None, None, None, None, self.seen)
        person, median = min(medians.items(), key=lambda item: item[1])
        if median > threshold:
            return Decision(None, None, None, None, self.seen)
        return Decision(
            person,
            self.names[person],
            round(median, 4),
            round(confidence(median, threshold), 4),
            self.seen,
        )

    def clearly_unknown(self, threshold: float) -> bool:
        return bool(self.observations) and all(
            o.quality >= SURE_QUALITY and min(o.distances.values(), default=2.0) > FAR * threshold
            for o in self.observations
        )
