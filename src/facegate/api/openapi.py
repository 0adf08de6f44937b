"""The OpenAPI document, made to tell the truth in one place.

FastAPI documents each route's success answer. Everything else an operation can answer is derived here from
what the route is (its dependencies and parameters: a table from route kind to statuses), all in the
contract's error shape (`ErrorBody`, never FastAPI's `HTTPValidationError`), with the headers that come with
them; security only where a key is needed (as the deployment configured it); the media types of uploads; and
links from what an operation creates to the operations that use it (for clients, and for schemathesis'
stateful phase). tests/api/test_openapi.py checks the document against this table.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any, get_args

from fastapi import FastAPI, UploadFile
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from facegate.api.errors import ErrorBody, NotReadyBody
from facegate.config import Settings
from facegate.services.schemas import ENROLL_EXAMPLE, IDENTIFY_EXAMPLE


class Kind(StrEnum):
    """What a route is, as far as the errors it can answer go."""

    KEY = "key"  # needs an API key
    SCOPE = "scope"  # needs a key holding a particular scope
    INPUT = "input"  # takes parameters or a body
    TEXT = "text"  # takes text or a body: malformed, or a value the store cannot hold (NUL)
    PATH_ID = "path_id"  # names a stored thing in its path
    BODY = "body"  # has a request body
    UPLOAD = "upload"  # takes image files
    ENGINE = "engine"  # runs the face engine
    FACE_REQUIRED = "face_required"  # fails when a photo has no usable face
    REFERENCE = "reference"  # names a stored person in a field
    CONFLICT = "conflict"  # can clash with stored state
    STORED_IMAGE = "stored_image"  # serves an image from the blob store
    READINESS = "readiness"  # /ready


# Kind -> the statuses it adds, each with why. Statuses several kinds add get every reason.
STATUSES: dict[Kind, dict[int, str]] = {
    Kind.KEY: {
        401: "No API key, or not a valid one (unknown, revoked or expired)",
        429: "Rate limited: this key's limit, or too many failed keys from this address",
    },
    Kind.SCOPE: {403: "The key lacks the scope this operation needs"},
    Kind.INPUT: {422: "A parameter or field is missing or invalid (`field` and `details` name it)"},
    Kind.TEXT: {400: "Malformed request, or a value that cannot be stored (e.g. a NUL character)"},
    Kind.PATH_ID: {404: "Nothing stored under that {path_ids}"},
    Kind.BODY: {413: "The request body is larger than the byte limit"},
    Kind.UPLOAD: {
        413: "An image has more pixels than the limit (read from its header, before decoding)",
        415: "Not a supported or decodable image (`unsupported_image`, `unreadable_image`)",
    },
    Kind.ENGINE: {503: "The face engine is busy (retry after `Retry-After` seconds) or not running"},
    Kind.FACE_REQUIRED: {422: "No usable face (`no_face`, or the most specific reason: `multiple_faces`, ...)"},
    Kind.REFERENCE: {404: "The person named by `person_id` does not exist"},
    Kind.CONFLICT: {409: "Clashes with stored state (`external_id_taken`, `duplicate_image`, `stream_name_taken`)"},
    Kind.STORED_IMAGE: {503: "The blob store is unavailable"},
    Kind.READINESS: {503: "A part is not usable; `parts` says which"},
}

# What the route table cannot tell, by route name.
DECLARED: dict[str, set[Kind]] = {
    "enroll": {Kind.FACE_REQUIRED, Kind.REFERENCE, Kind.CONFLICT},
    "compare": {Kind.FACE_REQUIRED},
    "enroll_from_match": {Kind.ENGINE, Kind.FACE_REQUIRED, Kind.REFERENCE, Kind.CONFLICT},
    "update_person": {Kind.CONFLICT},
    "create_stream": {Kind.CONFLICT},
    "reject_match": {Kind.CONFLICT},
    "split_person": {Kind.REFERENCE, Kind.CONFLICT},
    "enroll_suggestion": {Kind.ENGINE, Kind.FACE_REQUIRED, Kind.REFERENCE, Kind.CONFLICT},
    "face_image": {Kind.STORED_IMAGE},
    "match_crop": {Kind.STORED_IMAGE},
    "ready": {Kind.READINESS},
}

# The error body per status where it is not ErrorBody.
SPECIAL_BODIES: dict[tuple[Kind, int], type[BaseModel]] = {(Kind.READINESS, 503): NotReadyBody}

# Formats the image decoder accepts (vision.images.SUPPORTED_FORMATS), as media types; faces' photos are served
# as the format they were uploaded in.
IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif"]

_STRING = {"schema": {"type": "string"}}
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {"description": "Requests allowed in the window (when a limit is configured)", **_STRING},
    "RateLimit-Remaining": {"description": "Requests left in the window", **_STRING},
    "RateLimit-Reset": {"description": "Seconds until the window resets", **_STRING},
}
# Headers that come with an error status, given the kind that causes it.
ERROR_HEADERS: dict[tuple[Kind, int], dict[str, Any]] = {
    (Kind.KEY, 401): {
        "WWW-Authenticate": {"description": "How to authenticate", "required": True, **_STRING},
    },
    (Kind.KEY, 429): {
        "Retry-After": {"description": "Seconds to wait before retrying", "required": True, **_STRING},
    },
    (Kind.ENGINE, 503): {
        "Retry-After": {"description": "When the engine is busy: seconds to wait before retrying", **_STRING},
    },
}

# Links from what an operation answers to the operations that use it: (operation, status) -> name ->
# (target operation, its parameters as runtime expressions).
_PERSON = {"person_id": "$response.body#/person/id"}
_FIRST_FACE = {**_PERSON, "face_id": "$response.body#/faces/0/id"}
_ENROLLED_LINKS: dict[str, tuple[str, dict[str, str]]] = {
    "GetPerson": ("get_person", _PERSON),
    "UpdatePerson": ("update_person", _PERSON),
    "ListFaces": ("list_faces", _PERSON),
    "GetFaceImage": ("face_image", _FIRST_FACE),
    "DeleteFace": ("delete_face", _FIRST_FACE),
    "DeletePerson": ("delete_person", _PERSON),
}
_MATCH = {"match_id": "$response.body#/faces/0/match_id"}
LINKS: dict[tuple[str, int], dict[str, tuple[str, dict[str, str]]]] = {
    ("enroll", 201): _ENROLLED_LINKS,
    ("enroll_from_match", 201): _ENROLLED_LINKS,
    ("identify", 200): {
        "GetMatch": ("get_match", _MATCH),
        "GetMatchCrop": ("match_crop", _MATCH),
        "EnrollFromMatch": ("enroll_from_match", _MATCH),
    },
    ("create_key", 201): {"RevokeKey": ("revoke_key", {"key_id": "$response.body#/key/id"})},
    ("create_stream", 201): {
        "GetStream": ("get_stream", {"stream_id": "$response.body#/id"}),
        "StreamFrame": ("stream_frame", {"stream_id": "$response.body#/id"}),
        "UpdateStream": ("update_stream", {"stream_id": "$response.body#/id"}),
        "DeleteStream": ("delete_stream", {"stream_id": "$response.body#/id"}),
    },
}


# Example answers per component. Added after FastAPI builds the document, which drops every null (an unknown
# face's `"match": null` included) from what it is given.
EXAMPLES: dict[str, list[dict[str, Any]]] = {"EnrollResult": [ENROLL_EXAMPLE], "IdentifyResult": [IDENTIFY_EXAMPLE]}


def operation_id(route: APIRoute) -> str:
    """Operation ids are the endpoint names (`enroll`, `get_person`): short, stable, and what links refer to."""
    return route.name


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the truthful document as `app.openapi()` (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI, settings: Settings) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # FastAPI's own 422 body ({"detail": [...]}) is never what this API answers.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for model in (ErrorBody, NotReadyBody):
        _add_component(components, model)
    for name, examples in EXAMPLES.items():
        components[name]["examples"] = examples
    _text_fields_without_null(schema)
    for route in api_routes(app):
        public = is_public(route, settings)
        for method in sorted(route.methods or ()):
            operation = schema["paths"][route.path_format][method.lower()]
            _describe(operation, route, route_kinds(route, settings))
            if public:
                operation.pop("security", None)
    return schema


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """The app's documented routes (included routers unwrapped)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route


def _auth_dependency(dependant: Dependant) -> Any:
    """The route's `require(...)` dependency (it carries `required_scope`), if any."""
    stack = list(dependant.dependencies)
    while stack:
        current = stack.pop()
        if current.call is not None and hasattr(current.call, "required_scope"):
            return current.call
        stack.extend(current.dependencies)
    return None


def is_public(route: APIRoute, settings: Settings) -> bool:
    """No key needed: no auth dependency, or one this deployment made public (FACEGATE_AUTH__PUBLIC_*)."""
    auth = _auth_dependency(route.dependant)
    if auth is None:
        return True
    public_when = getattr(auth, "public_when", None)
    return bool(public_when is not None and public_when(settings))


def _params(dependant: Dependant) -> Iterator[tuple[str, Any]]:
    """(location, field) of every request parameter and body field, dependencies included."""
    stack = [dependant]
    while stack:
        current = stack.pop()
        for location, fields in (
            ("path", current.path_params),
            ("query", current.query_params),
            ("header", current.header_params),
            ("cookie", current.cookie_params),
            ("body", current.body_params),
        ):
            for field in fields:
                yield location, field
        stack.extend(current.dependencies)


def _types(annotation: Any) -> set[Any]:
    """The types an annotation admits, one level into unions and lists (`str | None`, `list[UploadFile]`)."""
    found = {annotation}
    for arg in get_args(annotation):
        found |= {arg, *get_args(arg)}
    return found


def upload_fields(route: APIRoute) -> list[str]:
    return [
        field.alias
        for location, field in _params(route.dependant)
        if location == "body" and UploadFile in _types(field.field_info.annotation)
    ]


def route_kinds(route: APIRoute, settings: Settings) -> set[Kind]:
    kinds = set(DECLARED.get(route.name, set()))
    auth = _auth_dependency(route.dependant)
    if auth is not None and not is_public(route, settings):
        kinds.add(Kind.KEY)
        if auth.required_scope is not None:
            kinds.add(Kind.SCOPE)
    params = list(_params(route.dependant))
    if params:
        kinds.add(Kind.INPUT)
    if any(location == "path" for location, _ in params):
        kinds.add(Kind.PATH_ID)
    if any(location == "body" for location, _ in params):
        kinds |= {Kind.BODY, Kind.TEXT}
    if any(str in _types(field.field_info.annotation) for _, field in params):
        kinds.add(Kind.TEXT)
    if upload_fields(route):
        kinds |= {Kind.UPLOAD, Kind.ENGINE}
    return kinds


def error_statuses(kinds: set[Kind]) -> dict[int, list[Kind]]:
    """Status -> the kinds that cause it (in the table's order)."""
    statuses: dict[int, list[Kind]] = {}
    for kind in (k for k in Kind if k in kinds):
        for status in STATUSES[kind]:
            statuses.setdefault(status, []).append(kind)
    return dict(sorted(statuses.items()))


def _describe(operation: dict[str, Any], route: APIRoute, kinds: set[Kind]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's HTTPValidationError; rebuilt below when the route has input
    if Kind.KEY in kinds:
        for key, success in responses.items():
            if key.startswith("2"):
                success.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
    for status, causes in error_statuses(kinds).items():
        body = next((SPECIAL_BODIES[(k, status)] for k in causes if (k, status) in SPECIAL_BODIES), ErrorBody)
        headers: dict[str, Any] = {}
        for kind in causes:
            headers.update(ERROR_HEADERS.get((kind, status), {}))
        path_ids = " / ".join(f.alias for location, f in _params(route.dependant) if location == "path")
        reasons = [STATUSES[kind][status].format(path_ids=path_ids) for kind in causes]
        response = {
            "description": "; ".join([reasons[0], *(r[0].lower() + r[1:] for r in reasons[1:])]),
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}},
        }
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    operation["responses"] = dict(sorted(responses.items()))
    for field in upload_fields(route):
        form = operation["requestBody"]["content"]["multipart/form-data"]
        form.setdefault("encoding", {})[field] = {"contentType": ", ".join(IMAGE_TYPES)}
    for (name, linked_status), links in LINKS.items():
        if name == route.name:
            operation["responses"][str(linked_status)]["links"] = {
                link: {"operationId": target, "parameters": parameters} for link, (target, parameters) in links.items()
            }


def _text_fields_without_null(schema: dict[str, Any]) -> None:
    """A query parameter or form field is text (or a file), never null: one that is not sent is the None.
    FastAPI writes optional ones as `anyOf: [..., {"type": "null"}]`, which invites clients to send "null"."""
    components = schema["components"]["schemas"]
    for item in schema["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    parameter["schema"] = _without_null(parameter["schema"])
            content = operation.get("requestBody", {}).get("content", {})
            for media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
                ref = content.get(media_type, {}).get("schema", {}).get("$ref", "")
                form = components.get(ref.rsplit("/", 1)[-1], {})
                for name, prop in form.get("properties", {}).items():
                    form["properties"][name] = _without_null(prop)


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) != 1 or len(prop["anyOf"]) != 2:
        return prop
    return {**branches[0], **{k: v for k, v in prop.items() if k != "anyOf"}}


def _add_component(components: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
