"""Pick the blob store named by configuration."""

from __future__ import annotations

from facegate.config import S3BlobSettings, Settings
from facegate.store.blobs import BlobStore, FileBlobStore
from facegate.store.s3_blobs import S3BlobStore


def build_blob_store(settings: Settings) -> BlobStore:
    if isinstance(settings.blobs, S3BlobSettings):
        return S3BlobStore(settings.blobs)
    return FileBlobStore(settings.blob_path)
