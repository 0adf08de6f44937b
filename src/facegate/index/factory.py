"""Pick the vector index named by configuration."""

from __future__ import annotations

from facegate.config import HNSWIndexSettings, Metric
from facegate.index.base import VectorIndex
from facegate.index.hnsw import HNSWIndex


def build_index(settings: HNSWIndexSettings, *, dim: int, metric: Metric) -> VectorIndex:
    return HNSWIndex(settings, dim=dim, metric=metric)
