"""store.blobs: files under a root, written atomically; keys cannot escape the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegate.errors import InvalidInput, NotFound
from facegate.store.blobs import FileBlobStore


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    blobs = FileBlobStore(tmp_path / "blobs")
    blobs.open()
    return blobs


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_put_get_exists_delete(store: FileBlobStore) -> None:
    store.put("images/p1/a.jpg", b"\xff\xd8data")
    assert store.exists("images/p1/a.jpg")
    assert store.get("images/p1/a.jpg") == b"\xff\xd8data"
    assert (store.root / "images" / "p1" / "a.jpg").read_bytes() == b"\xff\xd8data"
    store.delete("images/p1/a.jpg")
    assert not store.exists("images/p1/a.jpg")
    store.delete("images/p1/a.jpg")  # deleting twice is fine


def test_get_missing_is_not_found(store: FileBlobStore) -> None:
    with pytest.raises(NotFound) as raised:
        store.get("images/none.jpg")
    assert raised.value.code == "blob_not_found"


def test_put_replaces_whole_and_leaves_no_temporary_file(store: FileBlobStore) -> None:
    store.put("k.bin", b"old" * 1000)
    store.put("k.bin", b"new")
    assert store.get("k.bin") == b"new"
    assert _files(store.root) == ["k.bin"]


class _Unwritable:
    """Stands in for bytes and fails as the write happens (disk full, I/O error)."""

    def __len__(self) -> int:
        return 10


def test_failed_put_keeps_the_old_content_and_no_temporary_file(store: FileBlobStore) -> None:
    store.put("k.bin", b"old")
    with pytest.raises(TypeError):
        store.put("k.bin", _Unwritable())  # type: ignore[arg-type]
    assert store.get("k.bin") == b"old"
    assert _files(store.root) == ["k.bin"]


@pytest.mark.parametrize(
    "key",
    ["", ".", "..", "../outside.jpg", "images/../../outside.jpg", "/etc/passwd", "images/../../../tmp/x", "a\0b"],
)
def test_keys_that_escape_the_root_are_refused(store: FileBlobStore, key: str) -> None:
    for operation in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.delete(key),
        lambda: store.exists(key),
    ):
        with pytest.raises(InvalidInput):
            operation()
    assert not (store.root.parent / "outside.jpg").exists()


def test_dot_dot_inside_the_root_is_allowed(store: FileBlobStore) -> None:
    store.put("images/a/../b.jpg", b"x")
    assert store.get("images/b.jpg") == b"x"


def test_put_makes_a_directory_removed_since_the_last_put(store: FileBlobStore) -> None:
    store.put("crops/2026/a.jpg", b"a")
    store.delete("crops/2026/a.jpg")
    (store.root / "crops" / "2026").rmdir()
    store.put("crops/2026/b.jpg", b"b")
    assert store.get("crops/2026/b.jpg") == b"b"


def test_ready_only_when_writable(store: FileBlobStore, tmp_path: Path) -> None:
    assert store.ready()
    assert not (store.root / ".ready-probe").exists()
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    assert not FileBlobStore(not_a_dir).ready()


def test_constructor_does_no_io(tmp_path: Path) -> None:
    FileBlobStore(tmp_path / "later")
    assert not (tmp_path / "later").exists()


@pytest.mark.parametrize("durable", [True, False])
def test_fsync_only_for_durable_writes(store: FileBlobStore, monkeypatch: pytest.MonkeyPatch, durable: bool) -> None:
    synced: list[int] = []
    monkeypatch.setattr("facegate.store.blobs.os.fsync", lambda fd: synced.append(fd))
    store.put("crops/a.jpg", b"\xff\xd8crop", durable=durable)
    assert store.get("crops/a.jpg") == b"\xff\xd8crop"  # atomic and readable either way
    assert len(synced) == (1 if durable else 0)
    assert _files(store.root) == ["crops/a.jpg"]
