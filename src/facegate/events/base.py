"""The event and the publisher protocol every backend implements."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

# A video track is `appeared` once, `updated` each time the vote over its frames changes who it is (unknown
# -> named, or one person -> another), and `left` once with its final identity.
EventType = Literal["appeared", "updated", "left", "unknown_person_recurring"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Event:
    """One event. `data` is JSON-ready; the published body is `{"type": ..., "at": ..., **data}`. `id` is not in
    the body: it travels beside it (webhook delivery header, NATS message id, Redis field, SSE `id:`), the same
    for every delivery of this event, so receivers can drop the duplicates a retry may cause."""

    type: EventType
    data: dict[str, Any]
    at: str = field(default_factory=_now)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "at": self.at, **self.data}

    @classmethod
    def from_body(cls, body: dict[str, Any], id: str) -> Event:
        """The event another process published (its body as received from a broker)."""
        data = {k: v for k, v in body.items() if k not in ("type", "at")}
        return cls(body["type"], data, at=body["at"], id=id)

    def to_json(self) -> bytes:
        return json.dumps(self.body(), separators=(",", ":"), sort_keys=True).encode()


class EventPublisher(Protocol):
    """Sends events somewhere. `publish` must not block the caller for long and must not raise: delivery problems
    are logged and counted (a broker being down never stops recognition)."""

    def open(self) -> None: ...

    def publish(self, event: Event) -> None: ...

    def close(self) -> None: ...
