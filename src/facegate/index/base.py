"""The VectorIndex protocol: nearest stored faces for a query embedding."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from facegate.config import Template

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Hit:
    face_id: int
    person_id: str
    distance: float


class VectorIndex(Protocol):
    # True when the index holds its own copy of the embeddings (in-process): the runtime loads it from the
    # store at start and applies the store's change log to it. False when search runs inside the store
    # itself (pgvector): a committed face is searchable at once and add/remove do nothing.
    stateful: bool

    def open(self) -> None: ...

    def add(self, face_ids: list[int], person_ids: list[str], vectors: Vectors) -> None:
        """Add faces; ids already present are left as they are (a change log may replay an add)."""
        ...

    def remove(self, face_ids: list[int]) -> None:
        """Remove faces; unknown ids are ignored."""
        ...

    def search(self, vector: Vectors, k: int) -> list[Hit]:
        """Up to k nearest faces, nearest first; distance in the engine's metric (smaller is closer)."""
        ...

    def __len__(self) -> int: ...

    def ready(self) -> bool: ...

    def close(self) -> None: ...

    def save(self, path: Path) -> None:
        """Write a snapshot of a stateful index (files named after `path`); nothing for a stateless one."""
        ...

    def load(self, path: Path) -> bool:
        """Replace the index with a snapshot from `save`; False when there is none or it cannot be read."""
        ...


def per_person(hits: list[Hit], k: int, template: Template = "two_nearest") -> list[Hit]:
    """One candidate per person, nearest people first, carrying the person's nearest face id. A person's
    distance (the person template rule): their nearest face ("best"), or the mean of their two nearest faces
    when they have two or more ("two_nearest"; see IdentifySettings.template)."""
    faces: dict[str, list[Hit]] = {}
    for hit in sorted(hits, key=lambda h: h.distance):
        faces.setdefault(hit.person_id, []).append(hit)
    people = [
        replace(nearest[0], distance=(nearest[0].distance + nearest[1].distance) / 2)
        if template == "two_nearest" and len(nearest) >= 2
        else nearest[0]
        for nearest in faces.values()
    ]
    return sorted(people, key=lambda h: h.distance)[:k]
