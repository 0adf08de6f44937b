"""OpenAPI document and interactive docs. The Swagger UI assets come from the installed `fastapi-offline`
package, not a CDN, so /docs works where there is no internet. The page needs no key (it holds nothing);
the document it loads does, unless FACEGATE_AUTH__PUBLIC_DOCS=true."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from facegate.api.auth import DocsKey

router = APIRouter(include_in_schema=False)

# Swagger UI's bundle and stylesheet, mounted at /docs/assets by the app.
SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>facegate API</title>
  <link rel="icon" href="/docs/assets/favicon.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/facegate.js"></script>
</body>
</html>
"""


@router.get("/openapi.json")
def openapi(request: Request, principal: DocsKey) -> JSONResponse:
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get("/docs")
def docs() -> HTMLResponse:
    return HTMLResponse(_PAGE)


@router.get("/docs/facegate.js")
def docs_script() -> Response:
    script = (resources.files("facegate") / "web" / "docs.js").read_text()
    return Response(script, media_type="text/javascript")
