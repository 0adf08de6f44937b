"""The FaceEngine protocol and the plain data it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from facegate.config import Metric

Embedding = npt.NDArray[np.float32]
BGRImage = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the image as the user sees it (EXIF orientation applied)."""

    left: int
    top: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def iou(self, other: Box) -> float:
        """Intersection over union: 0 for disjoint boxes, 1 for the same box."""
        w = min(self.left + self.width, other.left + other.width) - max(self.left, other.left)
        h = min(self.top + self.height, other.top + other.height) - max(self.top, other.top)
        inter = max(0, w) * max(0, h)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class FusionRule:
    """How a second descriptor sharpens the first one's decision (the fused engine).

    Each engine's distance becomes a z-score against its different-person distances on the calibration set;
    the mean of the two z-scores is standardised again (its own different-person mean and spread), put back
    on the primary engine's distance scale, and shifted by `offset` so that the distance at which it meets the
    target false-match rate is the primary's calibrated threshold. So a fused distance reads like a primary
    distance and one threshold serves both. The second descriptor is only computed when the primary distance
    falls inside [band_low, band_high], where the two can disagree; a threshold other than the calibrated
    `threshold` moves the band with it.
    """

    threshold: float
    primary_mean: float
    primary_std: float
    secondary_mean: float
    secondary_std: float
    fused_mean: float
    fused_std: float
    offset: float
    band_low: float
    band_high: float

    def fused(self, primary: float, secondary: float) -> float:
        z_primary = (primary - self.primary_mean) / self.primary_std
        z_secondary = (secondary - self.secondary_mean) / self.secondary_std
        z = (z_primary + z_secondary) / 2
        return max(0.0, self.primary_mean + self.primary_std * (z - self.fused_mean) / self.fused_std + self.offset)

    def unsure(self, primary: float, threshold: float) -> bool:
        shift = threshold - self.threshold
        return bool(self.band_low + shift <= primary <= self.band_high + shift)


@dataclass(frozen=True)
class EngineInfo:
    """Identifies the embedding space: embeddings are only comparable when name and version match.

    `kind` is the configured engine type. The fused engine's embedding space is its primary engine's
    (`name`, `model_version`); `secondary` names the second descriptor's space and `fusion` how the two
    combine, with `threshold` on the primary's distance scale."""

    name: str
    model_version: str
    metric: Metric
    dim: int
    threshold: float
    kind: str = ""
    secondary: EngineInfo | None = None
    fusion: FusionRule | None = None

    @property
    def label(self) -> str:
        return self.kind or self.name


@dataclass
class Detection:
    box: Box
    score: float
    # Five (x, y) landmarks in image pixels: right eye, left eye, nose tip, mouth corners (engine order).
    landmarks: npt.NDArray[np.float32]
    # Engine-private detector output needed by `align` (e.g. YuNet's raw row).
    raw: npt.NDArray[np.float32] = field(repr=False)


class FaceEngine(Protocol):
    """Detect, align and embed faces. Constructors do no I/O; `open` loads the models."""

    @property
    def info(self) -> EngineInfo: ...

    def open(self) -> None: ...

    def detect(self, image: BGRImage) -> list[Detection]: ...

    def align(self, image: BGRImage, detection: Detection) -> BGRImage: ...

    def embed(self, aligned: BGRImage) -> Embedding: ...


@runtime_checkable
class FusedFaceEngine(FaceEngine, Protocol):
    """An engine with a second descriptor, computed from the same detection (see FusionRule)."""

    def secondary_input(self, image: BGRImage, detection: Detection) -> BGRImage: ...

    def embed_secondary(self, prepared: BGRImage) -> Embedding: ...


def distance(metric: Metric, a: Embedding, b: Embedding) -> float:
    """Smaller is closer. Cosine distance is 1 - cosine similarity (0..2); euclidean is the L2 norm.

    Never negative: rounding makes 1 - cos of identical float32 vectors come out as -0.0 or -1e-7, which
    clients would show as "-0.0"."""
    if metric == "cosine":
        denom = float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0
        return max(0.0, 1.0 - float(np.dot(a, b)) / denom)
    return float(np.linalg.norm(a - b))


def confidence(distance_value: float, threshold: float) -> float:
    """Map a distance to [0, 1], decreasing, 0.5 exactly at the threshold.

    A logistic curve whose width is a tenth of the threshold: a face at 80% of the threshold
    scores ~0.88, at 120% ~0.12. It is a readable score, not a calibrated probability.
    """
    scale = threshold / 10.0
    z = (distance_value - threshold) / scale
    return float(1.0 / (1.0 + np.exp(np.clip(z, -50.0, 50.0))))
