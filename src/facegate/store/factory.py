"""Pick the store and the blob store named by configuration."""

from __future__ import annotations

from facegate.config import S3BlobSettings, Settings
from facegate.store.base import Repository
from facegate.store.blobs import BlobStore, FileBlobStore
from facegate.store.repository import SQLRepository


def build_blob_store(settings: Settings) -> BlobStore:
    if isinstance(settings.blobs, S3BlobSettings):
        from facegate.store.s3_blobs import S3BlobStore  # boto3 is imported only by deployments that use S3

        return S3BlobStore(settings.blobs)
    return FileBlobStore(settings.blob_path)


def build_repository(settings: Settings) -> Repository:
    """The store of people, faces and history: SQL (SQLite or PostgreSQL, by FACEGATE_DATABASE__URL)."""
    return SQLRepository(settings.database, settings.database_url)
