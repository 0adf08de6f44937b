"""The seeded split of a labelled face set into a gallery and probes, and its folders for the baseline."""

from __future__ import annotations

import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The face_recognition command line only lists files matching these (re.match(r'.*\.(jpg|jpeg|png)')).
BASELINE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
PROBE_SEPARATOR = "__"


@dataclass(frozen=True)
class Probe:
    path: Path
    identity: str
    known: bool  # the identity is in the gallery

    @property
    def filename(self) -> str:
        """Unique flat file name in the probe folder; the baseline reports probes by path."""
        return f"{self.identity}{PROBE_SEPARATOR}{self.path.stem}{self.path.suffix.lower()}"


@dataclass(frozen=True)
class Split:
    gallery: dict[str, Path]  # identity -> its one enrolled photo
    probes: list[Probe]


def split_gallery(photos: Mapping[str, Sequence[Path]], seed: int = 0) -> Split:
    """Half (seeded) of the identities with at least two photos are known: one photo each goes in the gallery and
    their other photos are probes; every photo of every other identity is a probe of an unknown person."""
    rng = random.Random(seed)
    usable = {
        identity: sorted(p for p in files if p.suffix.lower() in BASELINE_SUFFIXES)
        for identity, files in sorted(photos.items())
    }
    eligible = sorted(identity for identity, files in usable.items() if len(files) >= 2)
    known = set(rng.sample(eligible, len(eligible) // 2))
    gallery: dict[str, Path] = {}
    probes: list[Probe] = []
    for identity, files in usable.items():
        if identity in known:
            pick = rng.randrange(len(files))
            gallery[identity] = files[pick]
            probes += [Probe(p, identity, True) for i, p in enumerate(files) if i != pick]
        else:
            probes += [Probe(p, identity, False) for p in files]
    return Split(gallery, probes)


def write_baseline_dirs(split: Split, root: Path) -> tuple[Path, Path]:
    """KNOWN_DIR with `<identity><ext>` (the baseline labels by file name) and a flat UNKNOWN_DIR of probes."""
    known_dir, unknown_dir = root / "known", root / "unknown"
    known_dir.mkdir(parents=True)
    unknown_dir.mkdir(parents=True)
    for identity, path in split.gallery.items():
        shutil.copyfile(path, known_dir / f"{identity}{path.suffix.lower()}")
    for probe in split.probes:
        shutil.copyfile(probe.path, unknown_dir / probe.filename)
    return known_dir, unknown_dir
