"""SFace descriptors of every calibration photo, embedded once by facegate's own engine and cached: shared by the
people-tools benches (bench/reject.py, bench/retro_search.py), which are pure numpy after this."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facegate.config import OpenCVEngineSettings
from facegate.services.evaluation import embed_faceset, load_faceset
from facegate.vision.pool import EnginePool

CALIB = Path(__file__).resolve().parents[1].parent / "shared" / "faces" / "calib"
CACHE = Path("/tmp/facegate-people-tools-bench")
MAX_PIXELS = 40_000_000


def calib_descriptors(root: Path = CALIB) -> tuple[list[str], npt.NDArray[np.str_], npt.NDArray[np.float32]]:
    """(photo keys relative to `root`, identity per photo, descriptors n x 128), in face-set order."""
    faceset = load_faceset(root)
    listing = "\n".join(p.relative_to(root).as_posix() for files in faceset.photos.values() for p in files)
    cached = CACHE / f"calib-opencv-{hashlib.sha256(listing.encode()).hexdigest()[:12]}.npz"
    if cached.is_file():
        data = np.load(cached)
        return [str(k) for k in data["keys"]], data["identity"], data["vectors"]
    pool = EnginePool(OpenCVEngineSettings(), workers=2)
    pool.open()
    try:
        embedded = embed_faceset(faceset, pool, max_pixels=MAX_PIXELS)
    finally:
        pool.close()
    vectors = embedded.vectors.astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, keys=np.asarray(embedded.keys), identity=embedded.identity, vectors=vectors)
    return embedded.keys, embedded.identity, vectors
