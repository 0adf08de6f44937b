"""The command line, run in-process with typer's runner on a fresh data directory and real photos."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from facegate.calibration import Calibration, shipped
from facegate.cli import app
from facegate.config import Settings
from facegate.services import audit, evaluation
from facegate.services import identify as identify_service
from facegate.services import keys as keys_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime, StoreRuntime
from facegate.store.database import Database
from facegate.store.models import MatchRecord
from facegate.vision.pool import EnginePool
from tests.support import blob_files, enroll_photos, pending_blob_count, sql

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(path))
    monkeypatch.setenv("FACEGATE_WORKERS", "2")
    return path


@pytest.fixture
def people_dir(tmp_path: Path, identities: dict[str, list[Path]]) -> Path:
    """Three people, all photos but the last of each (kept back as probes)."""
    root = tmp_path / "people"
    for name in ("barack_obama", "george_w_bush", "colin_powell"):
        folder = root / name
        folder.mkdir(parents=True)
        for photo in identities[name][:-1]:
            (folder / photo.name).symlink_to(photo)
    return root


@pytest.mark.slow
def test_bulk_enroll_is_resumable_and_identify_finds_the_person(
    data_dir: Path, people_dir: Path, identities: dict[str, list[Path]]
) -> None:
    first = runner.invoke(app, ["enroll", str(people_dir)])
    assert first.exit_code == 0, first.output
    photos = sum(1 for _ in people_dir.rglob("*.*"))
    assert f"from {photos} photos" in first.output

    again = runner.invoke(app, ["enroll", str(people_dir)])
    assert again.exit_code == 0, again.output
    assert "Enrolled 0 new faces for 3 people" in again.output

    listing = runner.invoke(app, ["people", "list"])
    assert listing.exit_code == 0
    assert "3 people" in listing.output and "george_w_bush" in listing.output

    probe = identities["george_w_bush"][-1]
    result = runner.invoke(app, ["identify", str(probe), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["faces"][0]["match"]["name"] == "george_w_bush"

    stranger = identities["arnold_schwarzenegger"][0]
    result = runner.invoke(app, ["identify", str(stranger), "--json"])
    assert json.loads(result.output)["faces"][0]["match"] is None


def test_bulk_enroll_syncs_the_index_once_and_saves_every_face(
    data_dir: Path, people_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One index sync for the whole run, not one per person; the snapshot saved on close holds every face."""
    syncs: list[int] = []
    real_sync = Runtime.sync_index_after_write

    def counted(self: Runtime) -> None:
        syncs.append(len(self.index))
        real_sync(self)

    monkeypatch.setattr(Runtime, "sync_index_after_write", counted)
    saved: list[int] = []
    real_save = Runtime.save_index_snapshot

    def saving(self: Runtime) -> None:
        saved.append(len(self.index))
        real_save(self)

    monkeypatch.setattr(Runtime, "save_index_snapshot", saving)
    result = runner.invoke(app, ["enroll", str(people_dir)])
    assert result.exit_code == 0, result.output
    added = int(result.output.split("Enrolled ")[1].split()[0])
    assert added >= 3
    assert syncs == [0]  # one sync, after every person's rows were committed
    assert saved[-1] == added  # the snapshot written on close


def test_delete_and_unknown_ids_fail_clearly(data_dir: Path, people_dir: Path) -> None:
    result = runner.invoke(app, ["people", "show", "no-such-id"])
    assert result.exit_code == 1
    assert "person_not_found" in result.output
    result = runner.invoke(app, ["people", "delete", "no-such-id", "--yes"])
    assert result.exit_code == 1


def test_identify_rejects_a_file_that_is_not_an_image(data_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a photo")
    result = runner.invoke(app, ["identify", str(junk)])
    assert result.exit_code == 1
    assert "unsupported_image" in result.output
    assert not list((data_dir / "blobs").rglob("*.jpg"))


def test_enroll_needs_person_folders(data_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["enroll", str(empty)])
    assert result.exit_code == 1
    assert "No <person>/<photos> folders" in result.output


@pytest.mark.slow
def test_calibrate_writes_what_eval_then_reads(dev: Path, tmp_path: Path, data_dir: Path) -> None:
    # A small labelled set: the dev people with the most photos (the command is the same at any size).
    small = tmp_path / "faceset"
    small.mkdir()
    people = [p for p in dev.iterdir() if p.is_dir() and p.name not in evaluation.NON_IDENTITY_DIRS]
    for folder in sorted(people, key=lambda p: (-len(list(p.iterdir())), p.name))[:6]:
        (small / folder.name).symlink_to(folder, target_is_directory=True)
    cache, written, report = tmp_path / "cache", tmp_path / "calibration.json", tmp_path / "report.json"

    options = ["--false-accepts", "0.05", "--gallery", "5", "--output", str(written), "--report", str(report)]
    result = runner.invoke(app, ["calibrate", str(small), *options, "--cache", str(cache)])

    assert result.exit_code == 0, result.output
    fitted = Calibration.model_validate_json(written.read_text())
    assert fitted.gallery_people == 5 and "5% false accepts" in fitted.operating_point
    assert fitted.fusion.band_low <= fitted.fusion.threshold <= fitted.fusion.band_high
    checked = json.loads(report.read_text())["cross_validated"]
    assert set(checked) >= {"opencv", "dlib", "fusion", "fold_thresholds"}
    assert len(list(cache.glob("*.npz"))) == 2  # the fused pass and the dlib pass

    # eval reuses the cached embeddings and reports each engine at the shipped thresholds
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", str(small), "--cache", str(cache), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "TAR at FAR 0.1%" in result.output
    engines = json.loads(out.read_text())["engines"]
    assert engines["fusion"]["threshold"] == shipped().fusion.threshold
    assert engines["opencv"]["open_set"]["1_photos"]["closed_set_rank1"]["n"] > 0


def test_eval_rejects_a_missing_faceset(tmp_path: Path, data_dir: Path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "faceset_not_found" in result.output


@pytest.mark.slow
def test_switching_engines_then_reindex_makes_people_searchable_again(
    data_dir: Path, people_dir: Path, identities: dict[str, list[Path]]
) -> None:
    assert runner.invoke(app, ["enroll", str(people_dir), "--engine", "opencv"]).exit_code == 0
    probe = str(identities["colin_powell"][-1])

    # dlib cannot compare against SFace embeddings: nobody is known to it until the photos are re-embedded.
    # (The default fused engine stores dlib descriptors too, so a switch from it to dlib needs no reindex.)
    before = json.loads(runner.invoke(app, ["identify", probe, "--json", "--engine", "dlib"]).output)
    assert before["faces"][0]["match"] is None and before["faces"][0]["candidates"] == []

    result = runner.invoke(app, ["reindex", "--engine", "dlib"])
    assert result.exit_code == 0, result.output
    assert "Added" in result.output

    after = json.loads(runner.invoke(app, ["identify", probe, "--json", "--engine", "dlib"]).output)
    assert after["faces"][0]["match"]["name"] == "colin_powell"
    again = runner.invoke(app, ["reindex", "--engine", "dlib"])
    assert "Added 0 embeddings from 0 photos" in again.output


# --- migrate and purge ---------------------------------------------------------------------------------------


def _text(result: Result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def test_migrate_creates_a_fresh_sqlite_database(data_dir: Path) -> None:
    assert not data_dir.exists()

    result = runner.invoke(app, ["migrate"])

    assert result.exit_code == 0, result.output
    assert "has the newest schema" in _text(result)
    assert (data_dir / "facegate.db").is_file()
    db = Database(f"sqlite:///{data_dir / 'facegate.db'}")
    db.open()
    try:
        assert db.schema_revision() == db.head_revision() is not None
    finally:
        db.close()
    again = runner.invoke(app, ["migrate"])  # nothing left to do, and that is fine
    assert again.exit_code == 0, again.output


@pytest.fixture
def pg_env(data_dir: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty PostgreSQL database (no schema yet) as FACEGATE_DATABASE__URL."""
    monkeypatch.setenv("FACEGATE_DATABASE__URL", pg_url)
    monkeypatch.setenv("FACEGATE_WORKERS", "1")
    return pg_url


def test_a_server_database_is_used_only_after_migrate(pg_env: str) -> None:
    refused = runner.invoke(app, ["people", "list"])

    assert refused.exit_code != 0
    _no_traceback(refused)
    assert "schema_out_of_date" in refused.output
    assert "run `facegate migrate`" in _text(refused)

    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert "has the newest schema" in _text(migrated)
    listing = runner.invoke(app, ["people", "list"])
    assert listing.exit_code == 0, listing.output
    assert "0 people" in listing.output


def test_purge_needs_a_retention(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEGATE_RETENTION__MATCH_DAYS", raising=False)

    result = runner.invoke(app, ["purge"])

    assert result.exit_code == 1
    _no_traceback(result)
    text = _text(result)
    assert "--older-than-days" in text and "FACEGATE_RETENTION__MATCH_DAYS" in text


@pytest.mark.parametrize("how", ["option", "environment"])
def test_purge_deletes_history_older_than_the_retention(
    data_dir: Path, dev: Path, opencv_pool: EnginePool, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setenv("FACEGATE_WORKERS", "1")
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        photo = (dev / "colin_powell" / "1.jpg").read_bytes()
        old, recent = (identify_service.identify(rt, photo).faces[0].match_id for _ in range(2))
        assert old is not None and recent is not None
        with sql(rt).db.session() as session:
            when = datetime.now(UTC) - timedelta(days=2)
            session.execute(update(MatchRecord).where(MatchRecord.id == old).values(created_at=when))
        assert len(blob_files(rt)) == 2
    finally:
        rt.close()
    if how == "option":
        monkeypatch.delenv("FACEGATE_RETENTION__MATCH_DAYS", raising=False)
        args = ["purge", "--older-than-days", "1"]
    else:
        monkeypatch.setenv("FACEGATE_RETENTION__MATCH_DAYS", "1")
        args = ["purge"]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "Purged 1 matches" in _text(result)
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        with sql(rt).db.session() as session:
            assert list(session.scalars(select(MatchRecord.id))) == [recent]
        assert len(blob_files(rt)) == 1
        assert pending_blob_count(rt) == 0
    finally:
        rt.close()


@pytest.mark.parametrize("days", ["0", "-1"])
def test_purge_refuses_a_retention_that_is_not_positive(
    data_dir: Path, dev: Path, opencv_pool: EnginePool, monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    """A negative age would put the cut-off in the future and delete all history, including today's."""
    monkeypatch.delenv("FACEGATE_RETENTION__MATCH_DAYS", raising=False)
    monkeypatch.setenv("FACEGATE_WORKERS", "1")
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        identify_service.identify(rt, (dev / "colin_powell" / "1.jpg").read_bytes())
    finally:
        rt.close()

    result = runner.invoke(app, ["purge", "--older-than-days", days])

    assert result.exit_code == 2, result.output
    _no_traceback(result)
    assert "--older-than-days" in _text(result)
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        assert rt.store.counts()["matches"] == 1
        assert len(blob_files(rt)) == 1
    finally:
        rt.close()


def test_keys_create_list_revoke_on_the_servers_store(data_dir: Path) -> None:
    created = runner.invoke(app, ["keys", "create", "--name", "door camera", "--scope", "identify"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("fg_") and " " not in key

    listing = runner.invoke(app, ["keys", "list"])
    assert listing.exit_code == 0 and "door" in listing.output and key not in listing.output

    rt = StoreRuntime(Settings())
    rt.open_store()
    try:
        row = keys_service.authenticate(rt, key)
        assert row is not None and row.scopes == ["identify"]
        revoked = runner.invoke(app, ["keys", "revoke", row.id])
        assert revoked.exit_code == 0, revoked.output
        assert keys_service.authenticate(rt, key) is None
        actions = [e.action for e in audit.list_entries(rt, limit=10, offset=0).items]
        assert actions == ["key_revoked", "key_created"]
    finally:
        rt.store.close()


def test_keys_create_refuses_an_unknown_scope(data_dir: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--name", "x", "--scope", "root"])
    assert result.exit_code == 2
    assert "unknown scope root" in result.output


@contextmanager
def _no_engine() -> Iterator[None]:
    """Inside, building or starting an engine pool, or sweeping pending blobs, fails the command."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a store-only command started the engine or swept blobs")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EnginePool, "__init__", refuse)
        patch.setattr(EnginePool, "open", refuse)
        patch.setattr(StoreRuntime, "settle_pending_blobs", refuse)
        yield


def test_people_and_keys_commands_start_no_engine(data_dir: Path, dev: Path, opencv_pool: EnginePool) -> None:
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        powell = enroll_photos(rt, "Colin Powell", dev / "colin_powell" / "1.jpg")
    finally:
        rt.close()
    with _no_engine():
        _people_and_keys_commands(powell)


def _people_and_keys_commands(powell: str) -> None:
    listing = runner.invoke(app, ["people", "list"])
    assert listing.exit_code == 0, listing.output
    assert "1 people" in listing.output and "Colin Powell" in listing.output
    shown = runner.invoke(app, ["people", "show", powell])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["face_count"] == 1
    renamed = runner.invoke(app, ["people", "rename", powell, "General Powell"])
    assert renamed.exit_code == 0, renamed.output
    assert "General Powell" in runner.invoke(app, ["people", "list"]).output
    created = runner.invoke(app, ["keys", "create", "--name", "door", "--scope", "read"])
    assert created.exit_code == 0, created.output
    assert "door" in runner.invoke(app, ["keys", "list"]).output
    key_id = created.stderr.split("Created key ")[1].split()[0]
    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    deleted = runner.invoke(app, ["people", "delete", powell, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert "0 people" in runner.invoke(app, ["people", "list"]).output


def test_people_delete_removes_photos_and_running_and_restarted_servers_forget_the_faces(
    data_dir: Path, dev: Path, opencv_pool: EnginePool
) -> None:
    """`facegate people delete` beside a running server: no index of its own, yet the server's index forgets
    the faces at its next sync (the change log), and so does a server started later from its snapshot."""
    server = Runtime(Settings(), engine=opencv_pool)
    server.open()
    try:
        bush = enroll_photos(server, "George W Bush", dev / "george_w_bush" / "1.jpg")
        bush_files = set(blob_files(server))
        powell = enroll_photos(server, "Colin Powell", dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
        powell_files = set(blob_files(server)) - bush_files
        assert len(powell_files) == 2 and len(server.index) == 3
        probe = (dev / "colin_powell" / "3.jpg").read_bytes()
        match = identify_service.identify(server, probe).faces[0].match
        assert match is not None and match.person_id == powell

        with _no_engine():
            result = runner.invoke(app, ["people", "delete", powell, "--yes"])

        assert result.exit_code == 0, result.output
        assert not powell_files & set(blob_files(server))
        assert pending_blob_count(server) == 0
        server.sync_index()
        assert len(server.index) == 1
        match = identify_service.identify(server, probe).faces[0].match
        assert match is None or match.person_id == bush
    finally:
        server.close()  # saves the index snapshot, Bush still in it

    with _no_engine():
        result = runner.invoke(app, ["people", "delete", bush, "--yes"])
    assert result.exit_code == 0, result.output
    assert not bush_files & set(blob_files(server))

    restarted = Runtime(Settings(), engine=opencv_pool)
    restarted.open()
    try:
        assert len(restarted.index) == 0
    finally:
        restarted.close()


def test_people_merge_starts_no_engine(data_dir: Path, dev: Path, opencv_pool: EnginePool) -> None:
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        first = enroll_photos(rt, "Colin Powell", dev / "colin_powell" / "1.jpg")
        second = enroll_photos(rt, "C. Powell", dev / "colin_powell" / "2.jpg")
    finally:
        rt.close()
    with _no_engine():
        merged = runner.invoke(app, ["people", "merge", first, second])
        assert merged.exit_code == 0, merged.output
        assert "2 photos" in merged.output
        listing = runner.invoke(app, ["people", "list"])
        assert "1 people" in listing.output and "C. Powell" not in listing.output
        again = runner.invoke(app, ["people", "merge", first, second])
    assert again.exit_code == 1 and "person_not_found" in again.output


def test_people_split_starts_no_engine(data_dir: Path, dev: Path, opencv_pool: EnginePool) -> None:
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        powell = enroll_photos(rt, "Colin Powell", dev / "colin_powell" / "1.jpg")
        bush = enroll_photos(rt, "George W. Bush", dev / "george_w_bush" / "1.jpg")
        [bush_face] = [f.id for f in rt.store.list_faces(bush)]
        people_service.merge_people(rt, powell, bush)
    finally:
        rt.close()
    with _no_engine():
        split = runner.invoke(app, ["people", "split", powell, str(bush_face), "--name", "Bush"])
        assert split.exit_code == 0, split.output
        assert "Moved to Bush" in split.output and "1 photos" in split.output
        listing = runner.invoke(app, ["people", "list"])
        assert "2 people" in listing.output
        again = runner.invoke(app, ["people", "split", powell, str(bush_face), "--name", "Bush"])
        assert again.exit_code == 1 and "face_not_found" in again.output
        neither = runner.invoke(app, ["people", "split", powell, "1"])
    assert neither.exit_code == 1 and "name_or_person_id" in neither.output


def test_suggestions_commands(data_dir: Path, identities: dict[str, list[Path]], opencv_pool: EnginePool) -> None:
    rt = Runtime(Settings(), engine=opencv_pool)
    rt.open()
    try:
        for photo in identities["colin_powell"][:5] + identities["george_w_bush"][:5]:
            identify_service.identify(rt, photo.read_bytes(), max_faces=1)
    finally:
        rt.close()
    with _no_engine():
        regrouped = runner.invoke(app, ["suggestions", "regroup"])
        assert regrouped.exit_code == 0, regrouped.output
        assert "10 faces changed group; 2 suggested people" in regrouped.output
        listing = runner.invoke(app, ["suggestions", "list"])
        assert "2 suggested people" in listing.output
        first, second = re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", listing.output)
        shown = runner.invoke(app, ["suggestions", "show", first])
        assert shown.exit_code == 0 and len(json.loads(shown.output)["faces"]) == 5
        dismissed = runner.invoke(app, ["suggestions", "dismiss", first])
        assert dismissed.exit_code == 0, dismissed.output
        assert "1 suggested people" in runner.invoke(app, ["suggestions", "list"]).output
        again = runner.invoke(app, ["suggestions", "dismiss", first])
        assert again.exit_code == 1 and "suggestion_not_found" in again.output
    enrolled = runner.invoke(
        app, ["suggestions", "enroll", second, "--name", "Stranger"], env={"FACEGATE_ENGINE__TYPE": "opencv"}
    )
    assert enrolled.exit_code == 0, enrolled.output
    assert "as Stranger" in enrolled.output
    with _no_engine():
        assert "0 suggested people" in runner.invoke(app, ["suggestions", "list"]).output
        assert "Stranger" in runner.invoke(app, ["people", "list"]).output
