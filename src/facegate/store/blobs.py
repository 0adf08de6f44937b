"""Blob storage for original images and face crops: the protocol, and local files (the default).

Blobs are written before the rows that point at them and deleted after those rows are gone; the store
tracks each in-between state (pending blobs), so a crash leaves neither orphans nor dangling rows.
`get` of a missing key raises NotFound(code="blob_not_found"); `delete` of a missing key is fine."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Protocol

from facegate.errors import InvalidInput, NotFound


class BlobStore(Protocol):
    def open(self) -> None: ...

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store `data` under `key`, atomically. `durable`: on stable storage before returning (power-loss
        safe); otherwise safe from a process crash only, which is cheaper (see IdentifySettings.durable_crops)."""
        ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def ready(self) -> bool: ...


class FileBlobStore:
    """Keys are relative paths under a root directory; writes are atomic (temp file, fsync when durable, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved_root = root.resolve()

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        """The file of `key`, a relative path that must stay under the root. Checked on its text, as a safe
        join does (normalised, not absolute, no leading `..`): every identify writes a crop, and resolving
        the path on disk cost a system call per directory."""
        normal = os.path.normpath(key) if key else ""
        if not normal or "\0" in normal or os.path.isabs(normal) or normal in (".", "..") or normal.startswith("../"):
            raise InvalidInput(f"Invalid blob key {key!r}.")
        return self._resolved_root / normal

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        path = self._path(key)
        # Named after the blob, so that deleting the key also finds the temporary file of a write killed
        # before its rename (the sweep settles a crashed write by deleting its key).
        prefix = f".tmp-{path.name}."
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
        except FileNotFoundError:  # the key's directory is new (or was removed): once more after making it
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"Blob {key} does not exist.", code="blob_not_found") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        for leftover in path.parent.glob(f".tmp-{glob.escape(path.name)}.*"):
            leftover.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def ready(self) -> bool:
        probe = self.root / ".ready-probe"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError:
            return False
        return True
