"""services.history: history faces near probe faces. On PostgreSQL through the pgvector index on
matches.embedding, on SQLite by pages; on real descriptors both give exactly what a scan of every row gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.services import enroll as enroll_service
from facegate.services import history as history_service
from facegate.services import identify as identify_service
from facegate.services.accuracy import distance_matrix
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload


def _exact(rt: Runtime, probe: np.ndarray, *, within: float, unknown_only: bool) -> list[tuple[float, int]]:
    info = rt.engine.info
    rows = rt.store.sightings(info.name, info.model_version, unknown_only=unknown_only, limit=1_000_000)
    gallery = np.stack([np.frombuffer(r.embedding, dtype="<f4") for r in rows]).astype(np.float64)
    distances = distance_matrix(info.metric, probe[None, :].astype(np.float64), gallery)[0]
    return sorted((float(d), r.match_id) for d, r in zip(distances, rows, strict=True) if d <= within)


def test_history_search_gives_what_a_scan_of_every_row_gives(
    runtime: Runtime, identities: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_service, "PAGE", 7)  # SQLite: several pages, merged
    photos = [*identities["colin_powell"][1:], *identities["george_w_bush"][:6], *identities["joe_biden"]]
    for photo in photos:  # unknown sightings (a photo may have several faces)
        identify_service.identify(runtime, photo.read_bytes())
    powell = identities["colin_powell"]
    enroll_service.enroll(runtime, [Upload(powell[0].name, powell[0].read_bytes())], name="Powell")
    for photo in powell[1:4]:  # named sightings now
        identify_service.identify(runtime, photo.read_bytes())
    info = runtime.engine.info
    probes = [
        runtime.engine.analyze(p.read_bytes(), max_pixels=40_000_000, max_faces=1, crops=False).faces[0].embedding
        for p in (powell[0], identities["george_w_bush"][6], identities["joe_biden"][0])
    ]
    indexed = runtime.store.history.nearest(
        info.name, info.model_version, info.metric, probes[0].astype("<f4").tobytes(), within=1.0, unknown_only=False
    )
    assert (indexed is None) == (runtime.settings.database_url.startswith("sqlite"))  # PostgreSQL: the index

    for unknown_only in (False, True):
        for within in (info.threshold, 1.0):
            near, searched = history_service.near_history(
                runtime, probes, within=within, unknown_only=unknown_only, limit=None
            )
            assert searched == len(
                runtime.store.sightings(info.name, info.model_version, unknown_only=unknown_only, limit=1_000_000)
            )
            for probe, found in zip(probes, near, strict=True):
                exact = _exact(runtime, probe, within=within, unknown_only=unknown_only)
                assert [d for d, _ in found] == sorted(d for d, _ in found)
                assert sorted((round(d, 6), s.match_id) for d, s in found) == sorted((round(d, 6), i) for d, i in exact)
                assert all((s.person_id is None) or not unknown_only for _, s in found)
            limited, _ = history_service.near_history(
                runtime, probes, within=within, unknown_only=unknown_only, limit=3
            )
            assert [[s.match_id for _, s in hits] for hits in limited] == [
                [s.match_id for _, s in hits[:3]] for hits in near
            ]
    assert any(len(hits) > 3 for hits in near)  # the limit was tested on something


def test_no_probe_searches_nothing(runtime: Runtime) -> None:
    assert history_service.near_history(runtime, [], within=0.5, unknown_only=False, limit=None) == ([], 0)
