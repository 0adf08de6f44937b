"""The VectorIndex protocol: nearest stored faces for a query embedding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Hit:
    face_id: int
    person_id: str
    distance: float


class VectorIndex(Protocol):
    def open(self) -> None: ...

    def add(self, face_ids: list[int], person_ids: list[str], vectors: Vectors) -> None: ...

    def remove(self, face_ids: list[int]) -> None: ...

    def search(self, vector: Vectors, k: int) -> list[Hit]:
        """Up to k nearest faces, nearest first; distance in the engine's metric (smaller is closer)."""
        ...

    def ids(self) -> set[int]:
        """Every face id in the index."""
        ...

    def max_id(self) -> int | None:
        """The highest face id in the index (cheap: compared with the store's on every sync check)."""
        ...

    def __len__(self) -> int: ...

    def ready(self) -> bool: ...


def best_per_person(hits: list[Hit], k: int) -> list[Hit]:
    """Keep each person's nearest face, nearest people first."""
    seen: dict[str, Hit] = {}
    for hit in sorted(hits, key=lambda h: h.distance):
        seen.setdefault(hit.person_id, hit)
    return list(seen.values())[:k]
