"""A client over a runtime with non-default settings (limits, policies), sharing the session engine pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facegate.app import create_app
from facegate.config import Settings
from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime
from facegate.vision.pool import EnginePool

ClientFactory = Callable[..., tuple[TestClient, Runtime]]


@pytest.fixture
def make_client(tmp_path: Path, opencv_pool: EnginePool) -> Iterator[ClientFactory]:
    """make_client(limits=LimitSettings(...), ...) -> (client, runtime), closed at teardown."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> tuple[TestClient, Runtime]:
            settings = Settings(data_dir=tmp_path / "custom", workers=2, **overrides)
            rt = Runtime(settings, engine=opencv_pool)
            rt.open()
            stack.callback(rt.close)
            key = keys_service.create_key(rt, name="tests", scopes=["admin"]).secret
            client = stack.enter_context(TestClient(create_app(runtime=rt), headers={"X-API-Key": key}))
            return client, rt

        yield make
