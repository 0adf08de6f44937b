"""Pick the blob store named by configuration."""

from __future__ import annotations

from facegate.config import Settings
from facegate.store.blobs import BlobStore, FileBlobStore


def build_blob_store(settings: Settings) -> BlobStore:
    return FileBlobStore(settings.blob_path)
