"""API keys, for admins: list, create (the key is shown once), revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from facegate.api.auth import AdminKey, AnyKey
from facegate.api.deps import RuntimeDep
from facegate.services import audit
from facegate.services import keys as keys_service
from facegate.services.schemas import KeyCreate, KeyCreated, KeyPublic

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])

KeyId = Annotated[str, Path(min_length=1, max_length=36)]


@router.get("", response_model=list[KeyPublic], summary="Every API key (never the keys themselves)")
def list_keys(rt: RuntimeDep, principal: AdminKey) -> list[KeyPublic]:
    return keys_service.list_keys(rt)


@router.get("/me", response_model=KeyPublic, summary="The key making this request: its name and scopes")
def my_key(rt: RuntimeDep, principal: AnyKey) -> KeyPublic:
    """Any valid key may ask about itself (the web client shows only what the key's scopes allow)."""
    return keys_service.require_key(rt, principal.key_id)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the key making this request (any key: a leaked or retired key switches itself off)",
)
def revoke_my_key(rt: RuntimeDep, principal: AnyKey) -> Response:
    # Declared before DELETE /{key_id}, which would otherwise take "me" for a key id.
    keys_service.revoke_key(rt, principal.key_id)
    audit.record(rt, principal.actor, "key_revoked", principal.key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Create an API key; the key is in this response only",
)
def create_key(rt: RuntimeDep, principal: AdminKey, body: KeyCreate) -> KeyCreated:
    created = keys_service.create_key(rt, name=body.name, scopes=body.scopes, expires_at=body.expires_at)
    audit.record(rt, principal.actor, "key_created", created.key.id, name=created.key.name, scopes=body.scopes)
    return created


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key: it stops working at once, on every replica",
)
def revoke_key(rt: RuntimeDep, principal: AdminKey, key_id: KeyId) -> Response:
    keys_service.revoke_key(rt, key_id)
    audit.record(rt, principal.actor, "key_revoked", key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
