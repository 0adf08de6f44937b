"""One error shape everywhere: {"error": {"code": "snake_case", "message": "human text"}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate.errors import (
    Conflict,
    FacegateError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedImage,
)

STATUS_OF: dict[type[FacegateError], int] = {
    InvalidInput: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedImage: 415,
    Unprocessable: 422,
    RateLimited: 429,
    Unavailable: 503,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def _absent_not_null(schema: dict[str, Any]) -> None:
    """An optional key that is left out when unused: its schema has no `default: null`."""
    schema.pop("default", None)


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `body.name` or `query.limit`")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable snake_case code, for programs", examples=["person_not_found"])
    message: str = Field(description="Human text, for people", examples=["No person with id 3f2c...."])
    # Only request validation errors (422) carry these two; the keys are absent otherwise, never null.
    field: str | SkipJsonSchema[None] = Field(
        None,
        description="422 validation errors only: the first invalid field",
        examples=["name"],
        json_schema_extra=_absent_not_null,
    )
    details: list[FieldError] | SkipJsonSchema[None] = Field(
        None, description="422 validation errors only: every invalid field", json_schema_extra=_absent_not_null
    )


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


class NotReadyDetail(ErrorDetail):
    parts: dict[str, bool] = Field(description="Each part (store, blobs, engine, index, ...) and whether it is usable")


class NotReadyBody(BaseModel):
    """/ready's 503: the error shape, naming which parts are not usable."""

    error: NotReadyDetail


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def status_of(exc: FacegateError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def error_headers(exc: FacegateError) -> dict[str, str]:
    """Headers an error implies: when to retry (429, a busy engine's 503), how to authenticate (401)."""
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after_seconds", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="facegate", ApiKey header="X-API-Key"'
    return headers


async def _facegate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FacegateError)
    return JSONResponse(error_body(exc.code, exc.message), status_code=status_of(exc), headers=error_headers(exc))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    missing = first.get("type") == "missing"
    code = "missing_field" if missing else "invalid_field"
    message = f"{field}: {'field required' if missing else first.get('msg', 'invalid value')}"
    details = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg")} for e in errors]
    return JSONResponse(error_body(code, message, field=field, details=details), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path)) or headers.get("Allow", "")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at `path`. Starlette's 405 names only the methods of the first route
    whose path matched (GET for /api/v1/keys, which also takes POST): `Allow` must list them all."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(path) and route.methods:
            methods |= route.methods
    return sorted(methods)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this response, so the server still logs the traceback;
    # the client gets the error shape of the contract, without internals.
    return JSONResponse(error_body("internal_error", "An unexpected error occurred."), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_exception_handler(FacegateError, _facegate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
