"""Video streams: add, enable or disable, remove (admin); list and show with live status, the latest frame
(read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from facegate.api.auth import AdminKey, ReadKey
from facegate.api.deps import RuntimeDep
from facegate.services import audit
from facegate.services import streams as streams_service
from facegate.services.schemas import StreamCreate, StreamPublic, StreamsPage, StreamUpdate
from facegate.services.streams import LiveStreams

router = APIRouter(prefix="/api/v1/streams", tags=["streams"])

StreamId = Annotated[str, Path(min_length=1, max_length=36)]


def get_live_streams(request: Request) -> LiveStreams | None:
    """The streams this process runs (`facegate serve` with FACEGATE_STREAMS__RUN_IN_SERVER, the default)."""
    live: LiveStreams | None = getattr(request.app.state, "streams", None)
    return live


LiveDep = Annotated[LiveStreams | None, Depends(get_live_streams)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StreamPublic,
    summary="Add a video stream (file path, rtsp/http URL or camera index); it starts within a second or two",
)
def create_stream(rt: RuntimeDep, principal: AdminKey, live: LiveDep, body: StreamCreate) -> StreamPublic:
    stream = streams_service.add_stream(rt, body, live)
    audit.record(rt, principal.actor, "stream_added", stream.id, name=stream.name)
    return stream


@router.get("", response_model=StreamsPage, summary="Every stream with its live state, fps, lag and dropped frames")
def list_streams(rt: RuntimeDep, principal: ReadKey, live: LiveDep) -> StreamsPage:
    return streams_service.list_streams(rt, live)


@router.get("/{stream_id}", response_model=StreamPublic, summary="One stream with its live status and tracks")
def get_stream(rt: RuntimeDep, principal: ReadKey, live: LiveDep, stream_id: StreamId) -> StreamPublic:
    return streams_service.get_stream(rt, stream_id, live)


@router.patch(
    "/{stream_id}",
    response_model=StreamPublic,
    summary="Enable or disable a stream: a disabled one is stopped wherever it runs and listed as disabled",
)
def update_stream(
    rt: RuntimeDep, principal: AdminKey, live: LiveDep, stream_id: StreamId, body: StreamUpdate
) -> StreamPublic:
    stream = streams_service.update_stream(rt, stream_id, body, live)
    audit.record(rt, principal.actor, "stream_enabled" if body.enabled else "stream_disabled", stream_id)
    return stream


@router.delete(
    "/{stream_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a stream: the process running it stops it",
)
def delete_stream(rt: RuntimeDep, principal: AdminKey, live: LiveDep, stream_id: StreamId) -> Response:
    streams_service.remove_stream(rt, stream_id, live)
    audit.record(rt, principal.actor, "stream_removed", stream_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{stream_id}/frame",
    response_class=Response,
    summary="The stream's last analysed frame (JPEG, tracks drawn) when this process runs it; 404 no_frame otherwise",
    responses={200: {"content": {"image/jpeg": {}}}},
)
def stream_frame(rt: RuntimeDep, principal: ReadKey, live: LiveDep, stream_id: StreamId) -> Response:
    frame = streams_service.latest_frame(rt, stream_id, live)
    # A live picture: never served from a cache.
    return Response(frame, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
