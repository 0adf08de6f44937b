"""Bulk enroll: the wall time of `facegate enroll <folder of people>`, with its start-up timed apart, and the
face_recognition CLI's own encoding of a folder of known faces (its gallery) on the same photos."""

from __future__ import annotations

import random
import re
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from facegate_bench.machine import package_version
from facegate_bench.processes import executable, facegate_env, timed_run
from facegate_bench.split import BASELINE_SUFFIXES, PROBE_SEPARATOR

_ENROLLED = re.compile(r"Enrolled (\d+) new faces for (\d+) people from (\d+) photos")


def enroll_photos(photos: Mapping[str, Sequence[Path]], max_photos: int, seed: int) -> dict[str, list[Path]]:
    """The people (whole folders) bulk enroll is measured on: every one, or with `max_photos`, a seeded sample of
    people taken until it holds at least that many photos. Only photos both tools read (jpg, jpeg, png), so
    that facegate, the bare engine and the CLI get the same ones."""
    usable = {
        identity: sorted(p for p in files if p.suffix.lower() in BASELINE_SUFFIXES)
        for identity, files in sorted(photos.items())
    }
    usable = {identity: files for identity, files in usable.items() if files}
    if not max_photos or sum(len(f) for f in usable.values()) <= max_photos:
        return usable
    order = sorted(usable)
    random.Random(seed).shuffle(order)
    chosen: dict[str, list[Path]] = {}
    count = 0
    for identity in order:
        if count >= max_photos:
            break
        chosen[identity] = usable[identity]
        count += len(usable[identity])
    return dict(sorted(chosen.items()))


def _people_dir(photos: Mapping[str, Sequence[Path]], work: Path) -> Path:
    people = work / "people"
    if not people.exists():
        for identity, files in photos.items():
            folder = people / identity
            folder.mkdir(parents=True)
            for path in files:
                (folder / path.name).symlink_to(path.resolve())
    return people


def startup_dir(work: Path) -> Path:
    """A folder of one person whose one photo is a small blank image: `facegate enroll` on it does all of the
    command's start-up and shut-down (import, migrations, engine workers, index, blob sweep, snapshot) and
    analyses one 32x32 photo with no face to find (refused: no_face)."""
    folder = work / "startup" / "nobody"
    if not folder.exists():
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 32), (128, 128, 128)).save(folder / "blank.png")
    return folder.parent


def bulk_enroll(photos: Mapping[str, Sequence[Path]], engine: str, work: Path, runs: int) -> dict[str, Any]:
    """`facegate enroll <folder>` into a fresh data directory, `runs` times. Its start-up is timed separately, as
    `facegate enroll` of one blank photo into a fresh directory (see `startup_dir`): `facegate people list` no
    longer starts the engine, so it is not the same start-up."""
    work.mkdir(parents=True, exist_ok=True)
    people = _people_dir(photos, work)
    blank = startup_dir(work)
    total = sum(len(files) for files in photos.values())
    exe = executable("facegate")
    enroll_seconds, startup_seconds = [], []
    enrolled: tuple[int, ...] = ()
    for _ in range(runs):
        fresh = Path(tempfile.mkdtemp(dir=work, prefix="startup-"))
        seconds, _, _ = timed_run([exe, "enroll", str(blank), "--engine", engine], facegate_env(fresh, engine))
        startup_seconds.append(seconds)
        enroll_cmd = [exe, "enroll", str(people), "--engine", engine]
        fresh = Path(tempfile.mkdtemp(dir=work, prefix="enroll-"))
        seconds, out, _ = timed_run(enroll_cmd, facegate_env(fresh, engine))
        enroll_seconds.append(seconds)
        m = _ENROLLED.search(out)
        enrolled = tuple(int(g) for g in m.groups()) if m else ()
    wall = statistics.median(enroll_seconds)
    startup = statistics.median(startup_seconds)
    return {
        "command": f"facegate enroll PEOPLE_DIR --engine {engine}",
        "images": total,
        "people": len(photos),
        "faces_enrolled": enrolled[0] if enrolled else None,
        "runs": runs,
        "seconds": [round(s, 3) for s in enroll_seconds],
        "startup_seconds": [round(s, 3) for s in startup_seconds],
        "startup_command": f"facegate enroll FOLDER_OF_ONE_BLANK_32x32_PHOTO --engine {engine}",
        "images_per_s": round(total / wall, 2),
        "images_per_s_excluding_startup": round(total / max(wall - startup, 1e-9), 2),
    }


def known_faces_dir(photos: Mapping[str, Sequence[Path]], root: Path) -> Path:
    """The CLI's known-faces folder holding the same photos: `<identity>__<photo><ext>` (it names a face by its
    file name, one face per file)."""
    known = root / "cli-known"
    if not known.exists():
        known.mkdir(parents=True)
        for identity, files in photos.items():
            for path in files:
                (known / f"{identity}{PROBE_SEPARATOR}{path.stem}{path.suffix.lower()}").symlink_to(path.resolve())
    return known


def cli_gallery_encoding(photos: Mapping[str, Sequence[Path]], work: Path, cpus: int) -> dict[str, Any]:
    """`face_recognition KNOWN EMPTY`: the CLI loads and encodes every known face (its bulk enroll), then has no
    probe to check. Its start-up alone is `face_recognition EMPTY EMPTY`. The CLI encodes its known folder in its
    main process whatever --cpus says (scan_known_people); --cpus only spreads the probes."""
    work.mkdir(parents=True, exist_ok=True)
    known = known_faces_dir(photos, work)
    empty = work / "cli-empty"
    empty.mkdir(exist_ok=True)
    exe = executable("face_recognition")
    base = [exe, "--cpus", str(cpus)]
    startup, _, _ = timed_run([*base, str(empty), str(empty)])
    seconds, out, _ = timed_run([*base, str(known), str(empty)])
    total = sum(len(files) for files in photos.values())
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    return {
        "tool": f"face_recognition {package_version('face-recognition')} (dlib {package_version('dlib-bin')})",
        "command": f"face_recognition --cpus {cpus} KNOWN_DIR EMPTY_DIR",
        "note": "encodes the known faces in one process (--cpus applies to probes only); start-up timed apart",
        "images": total,
        "seconds": round(seconds, 3),
        "startup_seconds": round(startup, 3),
        "images_per_s": round(total / seconds, 2),
        "images_per_s_excluding_startup": round(total / max(seconds - startup, 1e-9), 2),
        "no_face": sum("No faces found" in w for w in warnings),
        "several_faces": sum("More than one face" in w for w in warnings),
    }
