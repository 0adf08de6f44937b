"""The seeded gallery/probe split of the benchmark. (No timing is asserted anywhere; the benchmark itself runs
from bench/run.sh.)"""

from __future__ import annotations

from pathlib import Path

from facegate_bench.split import split_gallery

PHOTOS = {
    "ann": [Path(f"/set/ann/{i}.jpg") for i in range(1, 5)],
    "bob": [Path("/set/bob/1.jpg"), Path("/set/bob/2.png")],
    "cat": [Path("/set/cat/1.jpeg"), Path("/set/cat/2.jpg"), Path("/set/cat/3.jpg")],
    "dan": [Path("/set/dan/1.jpg"), Path("/set/dan/2.jpg")],
    "eve": [Path("/set/eve/1.jpg")],  # one photo: never in the gallery
    "fay": [Path("/set/fay/1.webp"), Path("/set/fay/2.jpg")],  # the baseline cannot read .webp
}


def test_split_is_deterministic_disjoint_and_complete() -> None:
    first, again = split_gallery(PHOTOS, seed=7), split_gallery(PHOTOS, seed=7)
    assert first == again
    readable = {p for files in PHOTOS.values() for p in files if p.suffix != ".webp"}
    gallery = set(first.gallery.values())
    probes = [p.path for p in first.probes]
    assert gallery.isdisjoint(probes)
    assert len(probes) == len(set(probes))
    assert gallery | set(probes) == readable
    # Half of the identities with two or more readable photos are known, one gallery photo each.
    assert len(first.gallery) == 2
    assert "eve" not in first.gallery and "fay" not in first.gallery
    for probe in first.probes:
        assert probe.known == (probe.identity in first.gallery)
        assert probe.path.parent.name == probe.identity
    assert len({p.filename for p in first.probes}) == len(first.probes)


def test_split_depends_on_the_seed() -> None:
    galleries = {tuple(sorted(split_gallery(PHOTOS, seed=s).gallery.values())) for s in range(10)}
    assert len(galleries) > 1
