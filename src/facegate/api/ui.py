"""The web client: static files from the package (src/facegate/web), served at /ui when settings.ui.enabled.

The client is plain ES modules and CSS with no build step; it calls only the public HTTP API with the user's
key, so serving it needs no key (the files hold no data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_ROOT = Path(str(resources.files("facegate") / "web"))


class UiFiles(StaticFiles):
    """Static files that the browser revalidates (ETag) before each use: after an upgrade, no page runs a mix
    of old and new modules."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def static_files() -> StaticFiles:
    """index.html at /ui/, every module and stylesheet beside it."""
    return UiFiles(directory=WEB_ROOT, html=True)
