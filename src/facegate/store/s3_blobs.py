"""Blob store on any S3 API (AWS S3, MinIO, Ceph, moto): FACEGATE_BLOBS__TYPE=s3.

Replicas share one bucket, so this is the blob store of the scale-out deployment. Keys live under the
configured prefix. PutObject replaces an object whole or not at all, so a crash never leaves a partial
blob to read. Credentials come from the standard AWS chain (environment, shared files, instance roles),
never from our settings. Every S3 failure other than a missing key surfaces as Unavailable (HTTP 503)
with the S3 error code in its message, never as a botocore exception.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from facegate.config import S3BlobSettings
from facegate.errors import InvalidInput, NotFound, Unavailable

# Codes S3 APIs answer for a key or bucket that does not exist (HEAD responses carry only the status).
_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset({"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


class S3BlobStore:
    """Blobs as objects `<prefix><key>` in one existing bucket; the bucket is never created here."""

    def __init__(
        self,
        settings: S3BlobSettings,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        probe_timeout: float = 2.0,
        max_pool_connections: int = 32,
    ) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        stripped = settings.prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._probe_timeout = probe_timeout
        self._max_pool_connections = max_pool_connections
        self._client: Any = None
        self._probe: Any = None

    @property
    def _where(self) -> str:
        endpoint = self.settings.endpoint_url or "AWS S3"
        return f"bucket {self.bucket!r} at {endpoint}"

    def _config(self, *, timeout: float, read_timeout: float, attempts: int, pool: int) -> Config:
        # Custom endpoints (MinIO, Ceph, moto, compose service names) rarely resolve
        # `<bucket>.<host>`, so they get path-style addressing; AWS keeps botocore's default.
        addressing = "path" if self.settings.endpoint_url else "auto"
        return Config(
            region_name=self.settings.region,
            retries={"mode": "standard", "max_attempts": attempts},
            max_pool_connections=pool,
            connect_timeout=timeout,
            read_timeout=read_timeout,
            s3={"addressing_style": addressing},
        )

    def open(self) -> None:
        # A session of our own: boto3's default session is shared module state and not thread-safe
        # while clients are being created.
        endpoint = self.settings.endpoint_url
        try:
            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                endpoint_url=endpoint,
                config=self._config(
                    timeout=self._connect_timeout,
                    read_timeout=self._read_timeout,
                    attempts=3,
                    pool=self._max_pool_connections,
                ),
            )
            # Readiness probes must answer within the orchestrator's probe timeout (1 s by default in
            # Kubernetes), so they use a client of their own: one attempt, short timeouts.
            self._probe = session.client(
                "s3",
                endpoint_url=endpoint,
                config=self._config(timeout=self._probe_timeout, read_timeout=self._probe_timeout, attempts=1, pool=2),
            )
        except (BotoCoreError, ValueError) as exc:  # a malformed endpoint URL, an unknown AWS_PROFILE
            raise Unavailable(
                f"S3 blob store unusable: {self._where}: {exc}; check FACEGATE_BLOBS__ENDPOINT_URL, "
                "FACEGATE_BLOBS__REGION and the AWS configuration (AWS_PROFILE)."
            ) from exc
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _MISSING_BUCKET:
                hint = (
                    "it does not exist: create it, or set FACEGATE_BLOBS__BUCKET to an existing bucket "
                    "(and FACEGATE_BLOBS__ENDPOINT_URL if it is not on AWS)"
                )
            elif code in _DENIED:
                hint = (
                    "access denied: check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                    "or AWS_PROFILE) and their permissions on the bucket"
                )
            elif code in {"301", "PermanentRedirect"}:
                hint = "the bucket is in another region: set FACEGATE_BLOBS__REGION"
            else:
                hint = "check FACEGATE_BLOBS__BUCKET, FACEGATE_BLOBS__ENDPOINT_URL and the AWS credentials"
            raise Unavailable(f"S3 blob store unusable: {self._where}: {code}: {hint}.") from exc
        except NoCredentialsError as exc:
            raise Unavailable(
                f"S3 blob store unusable: {self._where}: no AWS credentials found; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role)."
            ) from exc
        except BotoCoreError as exc:
            raise Unavailable(
                f"S3 blob store unusable: {self._where}: cannot reach the endpoint ({exc}); "
                "check FACEGATE_BLOBS__ENDPOINT_URL and the network."
            ) from exc

    def _key(self, key: str) -> str:
        # S3 does not normalise keys: "a/../b", "a//b" and "a/./b" would be objects of their own, and
        # different files in the file store. Refusing them keeps one key naming one blob in both stores.
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise InvalidInput(f"Invalid blob key {key!r}.")
        return self.prefix + key

    def _s3(self) -> Any:
        if self._client is None:
            raise Unavailable("S3 blob store used before open().")
        return self._client

    def _unavailable(self, operation: str, key: str, exc: Exception) -> Unavailable:
        if isinstance(exc, ClientError):
            detail = f"{_error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return Unavailable(f"S3 {operation} of blob {key!r} in {self._where} failed: {detail}")

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        name = self._key(key)  # an acknowledged PutObject is durable either way
        try:
            self._s3().put_object(Bucket=self.bucket, Key=name, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("PutObject", key, exc) from exc

    def get(self, key: str) -> bytes:
        name = self._key(key)
        try:
            response = self._s3().get_object(Bucket=self.bucket, Key=name)
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in _MISSING_KEY:
                raise NotFound(f"Blob {key} does not exist.", code="blob_not_found") from exc
            raise self._unavailable("GetObject", key, exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("GetObject", key, exc) from exc
        return body

    def delete(self, key: str) -> None:
        # DeleteObject of a missing key succeeds (204), which is what the protocol asks for.
        name = self._key(key)
        try:
            self._s3().delete_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("DeleteObject", key, exc) from exc

    def exists(self, key: str) -> bool:
        name = self._key(key)
        try:
            self._s3().head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            # A HEAD of a missing key is a bare 404; a missing bucket is also 404 on HEAD, which S3
            # cannot tell apart here; open() and ready() check the bucket.
            if _error_code(exc) in _MISSING_KEY:
                return False
            raise self._unavailable("HeadObject", key, exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("HeadObject", key, exc) from exc
        return True

    def ready(self) -> bool:
        if self._probe is None:
            return False
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except Exception:  # a readiness probe answers False, whatever the failure
            return False
        return True
