"""store.s3_blobs against a real S3 API (a moto server process): keys under the prefix, errors as ours."""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from facegate.config import S3BlobSettings, Settings
from facegate.errors import InvalidInput, NotFound, Unavailable
from facegate.store.blobs import FileBlobStore
from facegate.store.factory import build_blob_store
from facegate.store.s3_blobs import S3BlobStore


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    """A plain boto3 client, to look at the bucket from outside the store."""
    return boto3.session.Session().client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def store(s3_settings: S3BlobSettings) -> S3BlobStore:
    blobs = S3BlobStore(s3_settings)
    blobs.open()
    return blobs


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


@pytest.fixture
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests are signed before they are sent: without credentials nothing reaches the network."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_put_get_exists_delete(store: S3BlobStore) -> None:
    store.put("images/p1/a.jpg", b"\xff\xd8data")
    assert store.exists("images/p1/a.jpg")
    assert store.get("images/p1/a.jpg") == b"\xff\xd8data"
    store.delete("images/p1/a.jpg")
    assert not store.exists("images/p1/a.jpg")
    store.delete("images/p1/a.jpg")  # deleting twice is fine


def test_objects_sit_under_the_prefix(store: S3BlobStore, s3: Any, s3_settings: S3BlobSettings) -> None:
    store.put("images/p1/a.jpg", b"a")
    store.put("crops/2024/01/01/r-0.jpg", b"c")
    assert _objects(s3, s3_settings.bucket) == {
        "facegate/images/p1/a.jpg": b"a",
        "facegate/crops/2024/01/01/r-0.jpg": b"c",
    }


@pytest.mark.parametrize(
    ("prefix", "stored_as"),
    [("facegate", "facegate/k"), ("/facegate//", "facegate/k"), ("a/b/", "a/b/k"), ("", "k")],
)
def test_prefix_is_normalised(s3_settings: S3BlobSettings, s3: Any, prefix: str, stored_as: str) -> None:
    blobs = S3BlobStore(s3_settings.model_copy(update={"prefix": prefix}))
    blobs.open()
    blobs.put("k", b"x")
    assert list(_objects(s3, s3_settings.bucket)) == [stored_as]
    assert blobs.get("k") == b"x"


def test_put_replaces_whole(store: S3BlobStore) -> None:
    store.put("k.bin", b"old" * 1000)
    store.put("k.bin", b"new")
    assert store.get("k.bin") == b"new"


def test_get_missing_is_not_found(store: S3BlobStore) -> None:
    with pytest.raises(NotFound) as raised:
        store.get("images/none.jpg")
    assert raised.value.code == "blob_not_found"


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../outside.jpg", "images/../../outside.jpg", "images/../b.jpg", "a//b", "./a", "a/"],
)
def test_bad_keys_are_refused(store: S3BlobStore, s3: Any, s3_settings: S3BlobSettings, key: str) -> None:
    for operation in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.delete(key),
        lambda: store.exists(key),
    ):
        with pytest.raises(InvalidInput):
            operation()
    assert _objects(s3, s3_settings.bucket) == {}


def test_constructor_does_no_io() -> None:
    # Nothing listens there, and the bucket does not exist: only open() may find out.
    blobs = S3BlobStore(S3BlobSettings(bucket="no-such-bucket", endpoint_url=f"http://127.0.0.1:{_unused_port()}"))
    assert not blobs.ready()


def test_open_on_a_missing_bucket_says_what_to_fix(s3_endpoint: str, s3: Any) -> None:
    blobs = S3BlobStore(S3BlobSettings(bucket="facegate-missing", endpoint_url=s3_endpoint))
    with pytest.raises(Unavailable) as raised:
        blobs.open()
    message = raised.value.message
    assert "facegate-missing" in message
    assert s3_endpoint in message
    assert "FACEGATE_BLOBS__BUCKET" in message
    assert not blobs.ready()
    # The store never creates buckets.
    assert "facegate-missing" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_open_without_credentials_says_what_to_fix(
    s3_settings: S3BlobSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups off EC2
    with pytest.raises(Unavailable) as raised:
        S3BlobStore(s3_settings).open()
    assert "AWS_ACCESS_KEY_ID" in raised.value.message


@pytest.mark.usefixtures("dummy_credentials")
def test_unreachable_endpoint_is_unavailable_and_not_ready() -> None:
    endpoint = f"http://127.0.0.1:{_unused_port()}"
    blobs = S3BlobStore(S3BlobSettings(bucket="facegate-any", endpoint_url=endpoint), connect_timeout=0.5)
    with pytest.raises(Unavailable) as raised:
        blobs.open()
    assert endpoint in raised.value.message
    assert "FACEGATE_BLOBS__ENDPOINT_URL" in raised.value.message
    started = time.perf_counter()
    assert not blobs.ready()
    assert time.perf_counter() - started < 1.0  # one attempt, no retries: fit for a readiness probe


@pytest.mark.parametrize("endpoint", ["not a url", "ftp://127.0.0.1:9"])
def test_malformed_endpoint_is_unavailable(endpoint: str) -> None:
    with pytest.raises(Unavailable) as raised:
        S3BlobStore(S3BlobSettings(bucket="facegate-any", endpoint_url=endpoint)).open()
    assert "FACEGATE_BLOBS__ENDPOINT_URL" in raised.value.message


def test_s3_errors_surface_as_unavailable_with_the_code(store: S3BlobStore, s3: Any) -> None:
    assert store.ready()
    store.put("k", b"x")
    s3.delete_object(Bucket=store.bucket, Key="facegate/k")
    s3.delete_bucket(Bucket=store.bucket)
    assert not store.ready()
    for operation in (lambda: store.put("k", b"x"), lambda: store.get("k"), lambda: store.delete("k")):
        with pytest.raises(Unavailable) as raised:
            operation()
        assert "NoSuchBucket" in raised.value.message


def test_concurrent_puts_all_land(
    store: S3BlobStore, s3: Any, s3_settings: S3BlobSettings, caplog: pytest.LogCaptureFixture
) -> None:
    payloads = {f"images/p{i}/{i}.jpg": bytes([i]) * (1000 + i) for i in range(20)}
    with caplog.at_level(logging.WARNING, logger="urllib3"), ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda item: store.put(*item), payloads.items()))
    assert _objects(s3, s3_settings.bucket) == {f"facegate/{key}": data for key, data in payloads.items()}
    # urllib3 warns when the pool is too small for the threads and it drops connections.
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_factory_picks_s3_from_settings(s3_settings: S3BlobSettings, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        blobs={"type": "s3", "bucket": s3_settings.bucket, "prefix": "x/", "endpoint_url": s3_settings.endpoint_url},
    )
    blobs = build_blob_store(settings)
    assert isinstance(blobs, S3BlobStore)
    blobs.open()
    blobs.put("k", b"x")
    assert blobs.get("k") == b"x"


def test_factory_picks_s3_from_environment(
    s3_settings: S3BlobSettings, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert s3_settings.endpoint_url is not None
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACEGATE_BLOBS__TYPE", "s3")
    monkeypatch.setenv("FACEGATE_BLOBS__BUCKET", s3_settings.bucket)
    monkeypatch.setenv("FACEGATE_BLOBS__PREFIX", "from-env")
    monkeypatch.setenv("FACEGATE_BLOBS__ENDPOINT_URL", s3_settings.endpoint_url)
    blobs = build_blob_store(Settings())
    assert isinstance(blobs, S3BlobStore)
    blobs.open()
    blobs.put("k", b"x")
    assert list(_objects(s3, s3_settings.bucket)) == ["from-env/k"]


def test_factory_defaults_to_files(tmp_path: Path) -> None:
    blobs = build_blob_store(Settings(data_dir=tmp_path))
    assert isinstance(blobs, FileBlobStore)
    assert blobs.root == tmp_path / "blobs"
