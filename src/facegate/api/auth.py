"""Authentication and authorization: an API key as `X-API-Key` or `Authorization: Bearer`, scopes per
operation, rate limits per key, and failed attempts limited per client address.

Every route declares its scope with `Depends(require(scope))` (or `AUTHENTICATED` for any valid key); the
test suite walks the app's route table and fails for a route without one, except the public few.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from facegate.api.rate_limit import RateLimiter
from facegate.config import Scope, Settings
from facegate.errors import Forbidden, Unauthorized
from facegate.services import keys as keys_service
from facegate.services.audit import Actor
from facegate.services.runtime import Runtime

API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="ApiKey", description="An API key (`facegate keys create`)."
)
BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer", description="The same API key as a bearer token.")


@dataclass(frozen=True)
class Principal:
    key_id: str
    scopes: list[str]
    address: str | None

    @property
    def actor(self) -> Actor:
        return Actor(key_id=self.key_id, address=self.address)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def require(scope: Scope | None) -> Callable[..., Principal]:
    """A dependency that admits a live key holding `scope` (admin holds every scope; None: any key)."""

    def authenticate(
        request: Request,
        response: Response,
        api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    ) -> Principal:
        rt: Runtime = request.app.state.runtime
        limiter: RateLimiter = request.app.state.rate_limiter
        address = client_address(request)
        limiter.check_address(address)
        presented = api_key or (bearer.credentials if bearer else None)
        if not presented:
            limiter.failed_auth(address)
            raise Unauthorized(
                "An API key is required: send it as X-API-Key or Authorization: Bearer.", code="missing_api_key"
            )
        key = keys_service.authenticate(rt, presented)
        if key is None:
            limiter.failed_auth(address)
            raise Unauthorized("The API key is not valid (unknown, revoked or expired).", code="invalid_api_key")
        if not keys_service.allows(key, scope):
            raise Forbidden(f"This API key lacks the {scope!r} scope.", code="missing_scope")
        status = limiter.hit_key(key.id, scope)
        if status is not None:
            response.headers.update(status.headers())
        principal = Principal(key_id=key.id, scopes=key.scopes, address=address)
        request.state.principal = principal
        return principal

    authenticate.required_scope = scope  # type: ignore[attr-defined]  # read by the route-table test
    return authenticate


def require_unless_public(scope: Scope | None, public: Callable[[Settings], bool]) -> Callable[..., Principal | None]:
    """Like `require`, except when the deployment made the route public (e.g. /metrics, /openapi.json)."""
    check = require(scope)

    def authenticate_unless_public(
        request: Request,
        response: Response,
        api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    ) -> Principal | None:
        rt: Runtime = request.app.state.runtime
        if public(rt.settings):
            return None
        return check(request, response, api_key, bearer)

    authenticate_unless_public.required_scope = scope  # type: ignore[attr-defined]
    authenticate_unless_public.public_when = public  # type: ignore[attr-defined]
    return authenticate_unless_public


READ = require("read")
ENROLL = require("enroll")
IDENTIFY = require("identify")
ADMIN = require("admin")
AUTHENTICATED = require(None)

ReadKey = Annotated[Principal, Security(READ)]
EnrollKey = Annotated[Principal, Security(ENROLL)]
IdentifyKey = Annotated[Principal, Security(IDENTIFY)]
AdminKey = Annotated[Principal, Security(ADMIN)]
AnyKey = Annotated[Principal, Security(AUTHENTICATED)]
MetricsKey = Annotated[Principal | None, Security(require_unless_public("read", lambda s: s.auth.public_metrics))]
DocsKey = Annotated[Principal | None, Security(require_unless_public(None, lambda s: s.auth.public_docs))]
