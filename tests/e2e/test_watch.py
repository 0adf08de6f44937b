"""`facegate watch` as a real child process: with --json, standard output is one JSON event per line and
nothing else; Ctrl-C ends it cleanly with a `left` event for every open track; kill -9 after `appeared` leaves
the track's history row whole; a bad source is a clear error."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from facegate.config import Settings
from facegate.services.runtime import StoreRuntime
from facegate.store.base import MatchFilter
from tests.e2e.conftest import FACEGATE, child_env

EVENT_KEYS = {
    "type", "at", "stream", "track", "person_id", "name", "distance", "confidence",
    "first_seen", "last_seen", "box", "match_id",
}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, dev: Path) -> dict[str, str]:
    """A data directory (the default engine, SQLite and files) with lin_manuel_miranda enrolled by the CLI."""
    root = tmp_path_factory.mktemp("watch")
    people = root / "people" / "lin_manuel_miranda"
    people.mkdir(parents=True)
    (people / "1.png").symlink_to(dev / "lin_manuel_miranda" / "1.png")
    environment = child_env(root / "data", FACEGATE_WORKERS="2")
    enrolled = subprocess.run(
        [FACEGATE, "enroll", str(root / "people")],
        env=environment,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert enrolled.returncode == 0, enrolled.stderr[-3000:]
    return environment


def parse(stdout: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines()]  # every line is JSON, or this raises
    assert all(isinstance(e, dict) and set(e) >= EVENT_KEYS for e in events)
    assert all(e["type"] in ("appeared", "updated", "left") for e in events)
    return events


def test_watch_json_prints_one_event_per_line(env: dict[str, str], dev: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [FACEGATE, "watch", str(dev / "video" / "short_hamilton_clip.mp4"), "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = parse(done.stdout)
    named = [e for e in events if e["type"] == "appeared" and e["name"] == "lin_manuel_miranda"]
    assert named, events
    assert named[0]["stream"] == "short_hamilton_clip.mp4"
    appeared = sorted(e["track"] for e in events if e["type"] == "appeared")
    assert appeared == sorted(e["track"] for e in events if e["type"] == "left")
    assert all(isinstance(e["match_id"], int) for e in events)
    assert "275 frames" in done.stderr  # the summary and the logs go to stderr


def test_watch_a_missing_file_is_an_error_on_stderr(env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [FACEGATE, "watch", str(tmp_path / "nope.mp4"), "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "source_not_found" in done.stderr
    assert "Starting the" not in done.stderr  # refused before the engine started


@pytest.mark.slow
def test_ctrl_c_ends_the_watch_with_left_events(env: dict[str, str], dev: Path, tmp_path: Path) -> None:
    args = [FACEGATE, "watch", str(dev / "video" / "short_hamilton_clip.mp4"), "--json", "--realtime", "--loop"]
    process = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the first event
        assert json.loads(first)["type"] == "appeared"
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole group
        rest, _ = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0
    events = parse(first + rest)
    appeared = sorted(e["track"] for e in events if e["type"] == "appeared")
    assert appeared and appeared == sorted(e["track"] for e in events if e["type"] == "left")


@pytest.mark.slow
def test_kill_9_after_appeared_leaves_the_tracks_row_whole(env: dict[str, str], dev: Path, tmp_path: Path) -> None:
    """The row `appeared` names is in the store with its crop; once pending blob writes are settled (as the next
    start does), every crop file belongs to a row."""
    args = [FACEGATE, "watch", str(dev / "video" / "short_hamilton_clip.mp4"), "--json", "--realtime", "--loop"]
    process = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())  # blocks until the first event
        time.sleep(1.5)  # later frames: the row may be being rewritten when the kill lands
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert first["type"] == "appeared" and isinstance(first["match_id"], int)
    rt = StoreRuntime(Settings(data_dir=Path(env["FACEGATE_DATA_DIR"])))
    rt.open()
    try:
        row = rt.store.get_match(first["match_id"])
        assert row is not None and row.request_id == first["track"]
        assert row.source == "video:short_hamilton_clip.mp4" and row.crop_key is not None
        assert rt.blobs.get(row.crop_key)[:2] == b"\xff\xd8"
        rt.settle_pending_blobs(0.0)
        rows, _ = rt.store.list_matches(MatchFilter(), limit=1000, offset=0)
        root = rt.settings.blob_path
        files = {p.relative_to(root).as_posix() for p in (root / "crops").rglob("*.jpg")}
        assert files == {r.crop_key for r in rows}
        assert len({r.request_id for r in rows}) == len(rows)  # one row per track
    finally:
        rt.close()
