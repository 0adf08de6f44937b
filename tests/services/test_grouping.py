"""services.grouping: the density rule on real SFace descriptors of dev photos, the one-photo constraint,
incremental placement vs full regrouping, dismissed groups, removals."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facegate.config import SuggestionSettings
from facegate.services.grouping import FaceGrouper, GroupingParams
from facegate.services.suggestions import grouping_params
from facegate.vision.pool import EnginePool

PEOPLE = ("colin_powell", "george_w_bush", "ariel_sharon")
Faces = tuple[list[str], npt.NDArray[np.float32]]


@pytest.fixture(scope="module")
def faces(opencv_pool: EnginePool, identities: dict[str, list[Path]]) -> Faces:
    """Who and the SFace descriptor of the largest face, for every dev photo of three people."""
    names, vectors = [], []
    for name in PEOPLE:
        for photo in identities[name]:
            analysis = opencv_pool.analyze(photo.read_bytes(), max_pixels=40_000_000, max_faces=1, crops=False)
            names.append(name)
            vectors.append(analysis.faces[0].embedding)
    return names, np.asarray(vectors, dtype=np.float32)


@pytest.fixture(scope="module")
def params(opencv_pool: EnginePool) -> GroupingParams:
    return grouping_params(SuggestionSettings(), opencv_pool.info)  # the shipped settings


def _grouper(
    params: GroupingParams, vectors: npt.NDArray[np.float32], requests: list[str] | None = None
) -> FaceGrouper:
    grouper = FaceGrouper(vectors.shape[1], "cosine", params, capacity=16)  # grows as faces come
    ids = list(range(1, len(vectors) + 1))
    grouper.add(ids, requests or [f"r{i}" for i in ids], vectors)
    return grouper


def _people(names: list[str], labels: dict[int, str]) -> dict[str, set[str]]:
    """group -> the people in it."""
    found: dict[str, set[str]] = {}
    for face_id, label in labels.items():
        found.setdefault(label, set()).add(names[face_id - 1])
    return found


def test_full_regrouping_finds_one_group_per_person(faces: Faces, params: GroupingParams) -> None:
    names, vectors = faces
    grouper = _grouper(params, vectors)
    changes = grouper.regroup()
    groups = _people(names, grouper.labels())
    assert sorted(next(iter(p)) for p in groups.values()) == sorted(PEOPLE)  # one group each, no mixing
    assert all(len(p) == 1 for p in groups.values())
    assert len(changes) >= 0.9 * len(names)
    assert grouper.regroup() == {}  # stable: nothing changes the second time


def test_incremental_placement_matches_the_full_grouping(faces: Faces, params: GroupingParams) -> None:
    names, vectors = faces
    grouper = FaceGrouper(vectors.shape[1], "cosine", params)
    order = np.random.default_rng(3).permutation(len(names))
    placed: dict[int, str] = {}
    for start in range(0, len(order), 4):  # faces arriving a few at a time, people interleaved
        batch = [int(i) + 1 for i in order[start : start + 4]]
        grouper.add(batch, [f"r{i}" for i in batch], vectors[np.asarray(batch) - 1])
        placed |= grouper.assign(batch)
    assert placed == grouper.labels()
    groups = _people(names, grouper.labels())
    assert all(len(p) == 1 for p in groups.values())
    assert {next(iter(p)) for p in groups.values()} == set(PEOPLE)
    full = _grouper(params, vectors)
    full.regroup()
    assert len(grouper.labels()) >= len(full.labels()) - 2  # placed as they come: nearly all that regrouping places


def test_noise_waits_until_enough_faces(faces: Faces, params: GroupingParams) -> None:
    names, vectors = faces
    powell = [i for i, n in enumerate(names) if n == "colin_powell"]
    grouper = FaceGrouper(vectors.shape[1], "cosine", params)
    for n, i in enumerate(powell[: params.min_faces], start=1):
        grouper.add([n], [f"r{n}"], vectors[[i]])
        placed = grouper.assign([n])
        assert bool(placed) == (n == params.min_faces)  # a group only once min_faces faces are near each other
    assert set(grouper.labels()) == set(range(1, params.min_faces + 1))


def test_two_faces_of_one_request_are_never_in_one_group(faces: Faces, params: GroupingParams) -> None:
    names, vectors = faces
    powell = vectors[[i for i, n in enumerate(names) if n == "colin_powell"]]
    # Each photo of Powell twice (two faces of one request): without the constraint, one group of all of them.
    doubled = np.repeat(powell, 2, axis=0)
    requests = [f"r{i // 2}" for i in range(len(doubled))]
    for grouper in (_grouper(params, doubled, requests), FaceGrouper(doubled.shape[1], "cosine", params)):
        if len(grouper):
            grouper.regroup()
        else:
            ids = list(range(1, len(doubled) + 1))
            grouper.add(ids, requests, doubled)
            grouper.assign(ids)
        members: dict[str, list[str]] = {}
        for face_id, label in grouper.labels().items():
            members.setdefault(label, []).append(requests[face_id - 1])
        assert len(members) >= 2
        assert all(max(Counter(r).values()) == 1 for r in members.values())


def test_incremental_never_merges_but_regrouping_keeps_ids(faces: Faces, params: GroupingParams) -> None:
    names, vectors = faces
    powell = [i for i, n in enumerate(names) if n == "colin_powell"]
    grouper = FaceGrouper(vectors.shape[1], "cosine", params)
    ids = [i + 1 for i in powell]
    grouper.add(ids, [f"r{i}" for i in ids], vectors[powell])
    grouper.assign(ids)
    before = grouper.labels()
    (label,) = set(before.values())
    changes = grouper.regroup()
    assert all(v == label for v in changes.values())  # the group keeps its id; only newcomers change


def test_a_kept_group_absorbs_its_neighbours(faces: Faces, params: GroupingParams) -> None:
    names, vectors = faces
    powell = [i for i, n in enumerate(names) if n == "colin_powell"]
    grouper = FaceGrouper(vectors.shape[1], "cosine", params)
    first = [i + 1 for i in powell[:4]]
    grouper.add(first, [f"r{i}" for i in first], vectors[[i - 1 for i in first]], ["dismissed"] * 4)
    rest = [i + 1 for i in powell[4:]]
    grouper.add(rest, [f"r{i}" for i in rest], vectors[[i - 1 for i in rest]])
    grouper.regroup(keep={"dismissed"})
    assert set(grouper.labels().values()) == {"dismissed"}
    assert len(grouper.labels()) >= len(powell) - 1


def test_removed_faces_leave_their_groups(faces: Faces, params: GroupingParams) -> None:
    names, vectors = faces
    grouper = _grouper(params, vectors)
    grouper.regroup()
    removed = list(range(1, len(names) + 1, 2))
    grouper.remove(removed)
    assert len(grouper) == len(names) - len(removed)
    assert not set(removed) & set(grouper.labels())
    others = [i for i in range(1, len(names)) if i not in removed]
    grouper.remove(others)  # a graph mostly of deleted faces still answers
    assert len(grouper) == 1
    last = len(names)
    assert grouper.regroup() == ({last: None} if last not in removed else {})  # alone: noise now
    assert grouper.labels() == {}


def test_shipped_parameters_are_sane(params: GroupingParams, opencv_pool: EnginePool) -> None:
    assert params.min_faces >= 2 and 0.3 < params.distance < opencv_pool.info.threshold
    with pytest.raises(ValueError):
        FaceGrouper(128, "cosine", GroupingParams(distance=0.5, min_faces=1))


def test_a_stranger_seen_far_more_often_than_the_neighbour_lists_is_one_group(
    faces: Faces, params: GroupingParams
) -> None:
    """Each person seen 3 x `neighbours` times in each of two looks (bursts of near-copies of two real photos):
    every face's neighbour list fills with its own look's copies, so the links between the looks are never seen
    there. The full regrouping must still make one group per person (it made one per look before)."""
    names, vectors = faces
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rng = np.random.default_rng(11)
    bursts, who = [], []
    for person in ("colin_powell", "george_w_bush"):
        own = [i for i, n in enumerate(names) if n == person]
        # The person's two photos nearest to each other: two looks within the grouping distance.
        pairs = [(float(1.0 - unit[a] @ unit[b]), a, b) for a in own for b in own if a < b]
        gap, a, b = min(pairs)
        assert gap < params.distance
        for look in (a, b):
            bursts.append(unit[look] + rng.normal(0.0, 0.002, (3 * params.neighbours, unit.shape[1])))
            who += [person] * (3 * params.neighbours)
    copies = np.concatenate(bursts).astype(np.float32)
    grouper = _grouper(params, copies)
    grouper.regroup()
    groups = _people(who, grouper.labels())
    assert len(grouper.labels()) == len(who)  # every face grouped
    assert sorted(next(iter(p)) for p in groups.values()) == ["colin_powell", "george_w_bush"]
    assert all(len(p) == 1 for p in groups.values())
