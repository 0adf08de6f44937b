"""Fixtures of the harness's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dev() -> Path:
    """FACEGATE_DEV_FACES, else ../shared/faces/dev beside the checkout, else the workplace's copy (as the
    product's tests find it, tests/conftest.py)."""
    configured = os.environ.get("FACEGATE_DEV_FACES")
    beside = REPO.parent / "shared" / "faces" / "dev"
    path = Path(configured) if configured else beside if beside.is_dir() else Path("/work/shared/faces/dev")
    if not path.is_dir():
        pytest.fail(f"dev face set not found at {path}; set FACEGATE_DEV_FACES to its folder")
    return path
