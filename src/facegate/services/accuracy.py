"""Accuracy maths on embedded face sets: distance matrices, the decision each engine makes, thresholds for a
false-match rate, open-set identification, and confidence intervals that resample people, not photos.

Pure numpy; `evaluation` embeds photos and `calibration` fits thresholds with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.config import Metric, Template
from facegate.vision.engine import FusionRule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

BOOTSTRAP_SAMPLES = 2000


def distance_matrix(metric: Metric, a: FloatArray, b: FloatArray) -> FloatArray:
    """Every distance between the rows of `a` and of `b`, as `vision.engine.distance` computes one."""
    if metric == "cosine":
        na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        cosine: FloatArray = np.maximum(0.0, 1.0 - na @ nb.T)
        return cosine
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    euclidean: FloatArray = np.sqrt(np.maximum(sq, 0.0))
    return euclidean


def fused_matrix(rule: FusionRule, primary: FloatArray, secondary: FloatArray) -> FloatArray:
    z = ((primary - rule.primary_mean) / rule.primary_std + (secondary - rule.secondary_mean) / rule.secondary_std) / 2
    scale = rule.primary_mean + rule.primary_std * (z - rule.fused_mean) / rule.fused_std
    return np.maximum(0.0, scale + rule.offset)


@dataclass
class System:
    """One engine's decision over a face set: its distances between every two photos and its threshold.

    The fused engine also has `fused` (both descriptors for every pair) and `rule`; it uses the fused distance
    only where the primary one is unsure, as identify and compare do."""

    name: str
    identity: npt.NDArray[np.str_]  # per photo
    primary: FloatArray  # n x n
    threshold: float
    fused: FloatArray | None = None
    rule: FusionRule | None = None
    template: Template = "two_nearest"

    def subset(self, keep: IntArray) -> System:
        grid = np.ix_(keep, keep)
        fused = self.fused[grid] if self.fused is not None else None
        return replace(self, identity=self.identity[keep], primary=self.primary[grid], fused=fused)

    def pair_scores(self) -> FloatArray:
        """The distance compare would report for every pair (fused inside the band)."""
        if self.fused is None or self.rule is None:
            return self.primary
        shift = self.threshold - self.rule.threshold
        unsure = (self.primary >= self.rule.band_low + shift) & (self.primary <= self.rule.band_high + shift)
        return np.where(unsure, self.fused, self.primary)

    def roc_scores(self) -> FloatArray:
        """The score whose every threshold is a ROC point: the full fused score for the fused engine."""
        return self.fused if self.fused is not None else self.primary

    def identify(self, probes: IntArray, gallery: IntArray) -> tuple[npt.NDArray[np.str_], FloatArray, BoolArray]:
        """Nearest person (scored by the person template rule, as `index.base.per_person`), its distance, and
        whether the fused score decided, for each probe, as the identify service does."""
        gallery = gallery[np.argsort(self.identity[gallery], kind="stable")]
        people, start = np.unique(self.identity[gallery], return_index=True)
        end = np.append(start[1:], len(gallery))

        def per_person(matrix: FloatArray, rows: IntArray) -> FloatArray:
            block = matrix[np.ix_(rows, gallery)]
            if self.template == "best":
                best: FloatArray = np.minimum.reduceat(block, start, axis=1)
                return best
            scores = np.empty((len(rows), len(people)))
            for k, (a, b) in enumerate(zip(start, end, strict=True)):
                faces = block[:, a:b]
                scores[:, k] = faces[:, 0] if b - a == 1 else np.partition(faces, 1, axis=1)[:, :2].mean(axis=1)
            return scores

        best = per_person(self.primary, probes)
        fused_mask = np.zeros(len(probes), dtype=bool)
        if self.fused is not None and self.rule is not None:
            shift = self.threshold - self.rule.threshold
            nearest = best.min(axis=1)
            fused_mask = (nearest >= self.rule.band_low + shift) & (nearest <= self.rule.band_high + shift)
            if fused_mask.any():
                best[fused_mask] = per_person(self.fused, probes[fused_mask])
        winner = best.argmin(axis=1)
        return people[winner], best[np.arange(len(probes)), winner], fused_mask


def impostor_and_genuine(identity: npt.NDArray[np.str_]) -> tuple[tuple[IntArray, IntArray], BoolArray]:
    """Every photo pair (i < j) and whether it is the same person."""
    i, j = np.triu_indices(len(identity), k=1)
    return (i.astype(np.int64), j.astype(np.int64)), identity[i] == identity[j]


def threshold_at_far(impostor: FloatArray, far: float) -> float:
    """Largest distance that accepts at most `far` of the impostor (different-person) distances."""
    ordered = np.sort(impostor)
    allowed = int(np.floor(far * len(ordered)))
    cut = ordered[allowed] if allowed < len(ordered) else ordered[-1] + 1e-6
    return float(np.nextafter(cut, -np.inf))


def cluster_ci(
    values: FloatArray, clusters: Sequence[str] | npt.NDArray[Any], *, seed: int = 0, digits: int = 4
) -> list[float]:
    """95% percentile interval of the mean of `values`, resampling whole clusters (people) with replacement:
    photos of one person are not independent trials."""
    if len(values) == 0:
        return [float("nan"), float("nan")]
    keys, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(keys))
    counts = np.bincount(inverse, minlength=len(keys)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(keys), np.full(len(keys), 1.0 / len(keys)), size=BOOTSTRAP_SAMPLES)
    means = (draws @ sums) / np.maximum(draws @ counts, 1.0)
    low, high = np.percentile(means, [2.5, 97.5])
    return [round(float(low), digits), round(float(high), digits)]


def rate(values: FloatArray, clusters: Sequence[str] | npt.NDArray[Any], *, digits: int = 4) -> dict[str, Any]:
    """A share with its 95% interval by people (`digits`: more for rates near 1e-4)."""
    return {
        "value": round(float(np.mean(values)), digits) if len(values) else None,
        "ci95": cluster_ci(values, clusters, digits=digits),
        "n": len(values),
    }


@dataclass
class OpenSetRecords:
    """Per probe, pooled over splits: known probes (should be named) and unknown ones (should not)."""

    known_identity: list[str]
    identified: list[float]  # right person within the threshold
    closed_rank1: list[float]  # right person nearest, threshold ignored
    fused: list[float]
    unknown_identity: list[str]
    false_accept: list[float]
    gallery_people: list[int]

    @classmethod
    def empty(cls) -> OpenSetRecords:
        return cls([], [], [], [], [], [], [])

    def extend(self, other: OpenSetRecords) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))

    def report(self) -> dict[str, Any]:
        known = np.asarray(self.known_identity)
        unknown = np.asarray(self.unknown_identity)
        probes = len(self.fused)
        return {
            "gallery_people_mean": round(float(np.mean(self.gallery_people)), 1) if self.gallery_people else 0,
            "rank1_identified_at_threshold": rate(np.asarray(self.identified), known),
            "false_accepts_unknown": rate(np.asarray(self.false_accept), unknown),
            "closed_set_rank1": rate(np.asarray(self.closed_rank1), known),
            "second_descriptor_share": round(float(np.mean(self.fused)), 4) if probes else 0.0,
        }


def open_set(
    system: System, *, photos_per_person: int, enrolled_share: float = 0.5, splits: int = 10, seed: int = 0
) -> OpenSetRecords:
    """Enroll `photos_per_person` photos of part of the people with more photos than that; probe with their other
    photos (should be named) and with every photo of the others (should come back unknown)."""
    rng = np.random.default_rng(seed)
    photos: dict[str, list[int]] = {}
    for index, name in enumerate(system.identity):
        photos.setdefault(str(name), []).append(index)
    eligible = sorted(n for n, idx in photos.items() if len(idx) > photos_per_person)
    records = OpenSetRecords.empty()
    if len(eligible) < 2:
        return records
    for _ in range(splits):
        enrolled = set(rng.choice(eligible, size=max(1, round(len(eligible) * enrolled_share)), replace=False))
        gallery: list[int] = []
        known: list[int] = []
        for name in sorted(enrolled):  # a set of str iterates in a per-process order
            chosen = rng.permutation(photos[name])
            gallery += list(chosen[:photos_per_person])
            known += list(chosen[photos_per_person:])
        unknown = [i for n, idx in photos.items() if n not in enrolled for i in idx]
        g = np.asarray(gallery, dtype=np.int64)
        for probes, is_known in (
            (np.asarray(known, dtype=np.int64), True),
            (np.asarray(unknown, dtype=np.int64), False),
        ):
            if not len(probes):
                continue
            person, dist, fused = system.identify(probes, g)
            truth = system.identity[probes]
            if is_known:
                right = person == truth
                records.known_identity += [str(t) for t in truth]
                records.identified += list((right & (dist <= system.threshold)).astype(float))
                records.closed_rank1 += list(right.astype(float))
            else:
                records.unknown_identity += [str(t) for t in truth]
                records.false_accept += list((dist <= system.threshold).astype(float))
            records.fused += list(fused.astype(float))
        records.gallery_people.append(len(enrolled))
    return records


def tar_at_far(system: System, far: float) -> tuple[FloatArray, npt.NDArray[np.str_]]:
    """Whether each same-person pair is accepted at the threshold that accepts `far` of every different-person
    pair (its first person too, for intervals by people); empty when there are no pairs of one kind."""
    (i, j), same = impostor_and_genuine(system.identity)
    scores = system.roc_scores()[i, j]
    if not same.any() or same.all():
        return np.zeros(0), np.zeros(0, dtype=np.str_)
    t = threshold_at_far(scores[~same], far)
    return (scores[same] <= t).astype(float), system.identity[i[same]]
