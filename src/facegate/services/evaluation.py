"""Accuracy on a labelled face set, per engine: open-set identification with 1, 3 and 5 photos per person,
closed-set rank-1, pairs accuracy at the default threshold, TAR at FAR 0.1%, each with a 95% interval that
resamples people.

A face set is a folder of `<identity>/<photos>`, optionally with `pairs.csv` (left,right,same). Photos are
embedded twice: by the fused engine (SFace and dlib-inside-YuNet's-box, which also gives the opencv engine's
embeddings) and by the dlib engine (its own HOG detection). Thresholds come from a `Calibration`: the shipped
one, or (`cross_validate`) one fitted on the other folds' people for each fold (see `calibration`).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.calibration import Calibration
from facegate.config import DlibEngineSettings, FusionEngineSettings, Settings, Template
from facegate.errors import FacegateError, InvalidInput
from facegate.services.accuracy import (
    FloatArray,
    IntArray,
    OpenSetRecords,
    System,
    distance_matrix,
    fused_matrix,
    open_set,
    rate,
    tar_at_far,
)
from facegate.vision.analysis import Secondary
from facegate.vision.engine import FusionRule
from facegate.vision.fusion_engine import fusion_rule as engine_fusion_rule
from facegate.vision.images import IMAGE_SUFFIXES
from facegate.vision.pool import EnginePool

# Folders of a face set that are not identities.
NON_IDENTITY_DIRS = frozenset({"multi", "noface", "video"})
PHOTOS_PER_PERSON = (1, 3, 5)
SYSTEMS = ("opencv", "dlib", "fusion")

Progress = Callable[[int], None]


@dataclass
class FaceSet:
    root: Path
    photos: dict[str, list[Path]]  # identity -> photos
    pairs: list[tuple[str, str, bool]]  # relative paths, same person?


def load_faceset(root: Path) -> FaceSet:
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder of <identity>/<photos>.", code="faceset_not_found")
    photos: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NON_IDENTITY_DIRS):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            photos[folder.name] = files
    if not photos:
        raise InvalidInput(f"No identity folders with photos under {root}.", code="faceset_empty")
    pairs: list[tuple[str, str, bool]] = []
    pairs_file = root / "pairs.csv"
    if pairs_file.is_file():
        with pairs_file.open() as fh:
            pairs = [(r["left"], r["right"], r["same"].strip() == "1") for r in csv.DictReader(fh)]
    return FaceSet(root, photos, pairs)


@dataclass
class Embedded:
    """The largest face of each photo that has one (keys: paths relative to the face set root)."""

    keys: list[str]
    identity: npt.NDArray[np.str_]
    vectors: FloatArray  # n x dim
    secondary: FloatArray | None  # the fused engine's second descriptors
    failed: list[str] = field(default_factory=list)


def embed_faceset(faceset: FaceSet, pool: EnginePool, *, max_pixels: int, progress: Progress | None = None) -> Embedded:
    secondary: Secondary = "embed" if pool.info.secondary is not None else "none"
    jobs = []
    failed: list[str] = []
    for identity, files in faceset.photos.items():
        for path in files:
            rel = path.relative_to(faceset.root).as_posix()
            try:
                future = pool.submit(
                    path.read_bytes(), max_pixels=max_pixels, max_faces=1, crops=False, secondary=secondary
                )
            except FacegateError:  # not an image, or too large: counted as a photo without a face
                failed.append(rel)
                if progress:
                    progress(1)
                continue
            jobs.append((rel, identity, future))
    keys: list[str] = []
    names: list[str] = []
    vectors: list[npt.NDArray[np.float32]] = []
    seconds: list[npt.NDArray[np.float32]] = []
    for rel, identity, future in jobs:
        try:
            analysis = pool.wait(future)
        except FacegateError:
            analysis = None
        if analysis is None or not analysis.faces:
            failed.append(rel)
        else:
            keys.append(rel)
            names.append(identity)
            vectors.append(analysis.faces[0].embedding)
            if analysis.faces[0].secondary is not None:
                seconds.append(analysis.faces[0].secondary)
        if progress:
            progress(1)
    dim = pool.info.dim
    return Embedded(
        keys=keys,
        identity=np.asarray(names, dtype=np.str_),
        vectors=np.asarray(vectors, dtype=np.float64).reshape(-1, dim),
        secondary=np.asarray(seconds, dtype=np.float64).reshape(-1, dim) if seconds else None,
        failed=failed,
    )


@dataclass
class Distances:
    """Every pairwise distance of a face set, for the three engines (the fused engine's two descriptors)."""

    faceset: FaceSet
    fused_pass: Embedded  # SFace + dlib inside YuNet's box
    dlib_pass: Embedded  # the dlib engine's own detection
    sface: FloatArray
    dlib_in_yunet: FloatArray
    dlib: FloatArray
    flip: bool = False

    @classmethod
    def of(cls, faceset: FaceSet, fused_pass: Embedded, dlib_pass: Embedded, *, flip: bool = False) -> Distances:
        if fused_pass.secondary is None:
            raise ValueError("the fused pass must carry second descriptors")
        return cls(
            faceset,
            fused_pass,
            dlib_pass,
            distance_matrix("cosine", fused_pass.vectors, fused_pass.vectors),
            distance_matrix("euclidean", fused_pass.secondary, fused_pass.secondary),
            distance_matrix("euclidean", dlib_pass.vectors, dlib_pass.vectors),
            flip,
        )

    def systems(self, calibration: Calibration, template: Template = "two_nearest") -> dict[str, System]:
        """The three engines as shipped with `calibration`, people scored by `template`."""
        rule = fusion_rule(calibration)
        fa, da = self.fused_pass, self.dlib_pass
        return {
            "opencv": System("opencv", fa.identity, self.sface, calibration.opencv.threshold, template=template),
            "dlib": System("dlib", da.identity, self.dlib, calibration.dlib.threshold, template=template),
            "fusion": System(
                "fusion",
                fa.identity,
                self.sface,
                calibration.fusion.threshold,
                fused_matrix(rule, self.sface, self.dlib_in_yunet),
                rule,
                template,
            ),
        }


def measure(
    faceset: FaceSet, settings: Settings, *, cache: Path | None = None, progress: Progress | None = None
) -> Distances:
    """Embed the face set with the fused engine, then with the dlib engine (one pool at a time). With `cache`,
    each pass is kept in that folder and reused while the photos and the engine's models are the same. Flip
    augmentation follows the configured engine's `flip`."""
    flip = settings.engine.flip
    passes = []
    for engine in (FusionEngineSettings(flip=flip), DlibEngineSettings(flip=flip)):
        pool = EnginePool(engine, settings.worker_count, limits=settings.limits, when_full="wait")
        cached = _cache_file(cache, faceset, pool) if cache else None
        if cached is not None and cached.is_file():
            passes.append(_load(cached))
            if progress:
                progress(sum(len(v) for v in faceset.photos.values()))
            continue
        pool.open()
        try:
            embedded = embed_faceset(faceset, pool, max_pixels=settings.limits.max_image_pixels, progress=progress)
        finally:
            pool.close()
        if cached is not None:
            _save(cached, embedded)
        passes.append(embedded)
    return Distances.of(faceset, *passes, flip=flip)


def _cache_file(cache: Path, faceset: FaceSet, pool: EnginePool) -> Path:
    """Named after what the embeddings depend on: the photos (paths, sizes, times) and the engine's models."""
    info = pool.info
    digest = hashlib.sha256()
    for files in faceset.photos.values():
        for path in files:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    spaces = [info] + ([info.secondary] if info.secondary else [])
    digest.update("|".join(f"{s.name}:{s.model_version}" for s in spaces).encode())
    return cache / f"{info.label}-{digest.hexdigest()[:16]}.npz"


def _save(path: Path, embedded: Embedded) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"keys": np.asarray(embedded.keys), "identity": embedded.identity, "vectors": embedded.vectors}
    if embedded.secondary is not None:
        arrays["secondary"] = embedded.secondary
    arrays["failed"] = np.asarray(embedded.failed, dtype=np.str_)
    with path.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)


def _load(path: Path) -> Embedded:
    with np.load(path) as data:
        return Embedded(
            keys=[str(k) for k in data["keys"]],
            identity=data["identity"],
            vectors=data["vectors"],
            secondary=data.get("secondary", None),
            failed=[str(f) for f in data["failed"]],
        )


def fusion_rule(calibration: Calibration) -> FusionRule:
    """The fused engine's rule as `calibration` ships it."""
    c = calibration.fusion
    return engine_fusion_rule(calibration, threshold=c.threshold, band=(c.band_low, c.band_high))


def photos_of(identity: npt.NDArray[np.str_], people: set[str]) -> IntArray:
    return np.flatnonzero(np.isin(identity, sorted(people))).astype(np.int64)


def pair_indices(keys: list[str], pairs: list[tuple[str, str, bool]], keep: IntArray) -> list[tuple[int, int, bool]]:
    """The listed pairs whose both photos are in `keep` (indices into `keys`), re-indexed into `keep`."""
    position = {keys[k]: i for i, k in enumerate(keep)}
    return [(position[a], position[b], same) for a, b, same in pairs if a in position and b in position]


@dataclass
class SystemRecords:
    """What one engine did on held-out people, pooled over folds."""

    open_set: dict[int, OpenSetRecords] = field(
        default_factory=lambda: {n: OpenSetRecords.empty() for n in PHOTOS_PER_PERSON}
    )
    pair_hits: list[float] = field(default_factory=list)
    pair_people: list[str] = field(default_factory=list)
    tar_hits: list[float] = field(default_factory=list)
    tar_people: list[str] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)

    def add(self, system: System, keys: list[str], pairs: list[tuple[str, str, bool]], keep: IntArray) -> None:
        for n in PHOTOS_PER_PERSON:
            self.open_set[n].extend(open_set(system, photos_per_person=n))
        listed = pair_indices(keys, pairs, keep)
        if listed:
            scores = system.pair_scores()
            for a, b, same in listed:
                self.pair_hits.append(float((scores[a, b] <= system.threshold) == same))
                self.pair_people.append(str(system.identity[a]))
        hits, people = tar_at_far(system, 0.001)
        self.tar_hits += hits.tolist()
        self.tar_people += people.tolist()
        self.thresholds.append(system.threshold)

    def report(self) -> dict[str, Any]:
        return {
            "threshold": round(float(np.mean(self.thresholds)), 4),
            "open_set": {f"{n}_photos": self.open_set[n].report() for n in PHOTOS_PER_PERSON},
            "pairs_accuracy_at_threshold": rate(np.asarray(self.pair_hits), self.pair_people),
            # Every same-person pair, each at its own fold's threshold for FAR 0.1% (read on that fold's people).
            "tar_at_far_0.001": rate(np.asarray(self.tar_hits), self.tar_people),
        }


def evaluate(
    distances: Distances, calibration: Calibration, template: Template = "two_nearest"
) -> dict[str, dict[str, Any]]:
    """Each engine with `calibration`'s thresholds on the whole face set (for a set never used to fit them)."""
    report = {}
    for name, system in distances.systems(calibration, template).items():
        records = SystemRecords()
        keys = (distances.dlib_pass if name == "dlib" else distances.fused_pass).keys
        records.add(system, keys, distances.faceset.pairs, np.arange(len(keys), dtype=np.int64))
        report[name] = records.report()
    return report


def describe(faceset: FaceSet, distances: Distances) -> dict[str, Any]:
    return {
        "root": str(faceset.root),
        "identities": len(faceset.photos),
        "photos": sum(len(v) for v in faceset.photos.values()),
        "no_face": {"fused_pass": distances.fused_pass.failed, "dlib": distances.dlib_pass.failed},
    }
