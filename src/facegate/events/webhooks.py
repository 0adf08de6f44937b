"""Webhooks (FACEGATE_EVENTS__WEBHOOKS): every event is POSTed as JSON to each URL, whatever the broker type.

Headers: `X-Facegate-Event: <type>`, `X-Facegate-Delivery: <event id>` (the same on every retry: receivers
drop duplicates by it), `X-Facegate-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with
FACEGATE_EVENTS__WEBHOOK_SECRET>`. A 2xx answer delivers; 5xx, 408, 429, timeouts and connection errors are
retried with exponential backoff (bounded attempts); any other answer (4xx, a redirect) is a refusal and not
retried. Each URL has its own queue and thread, so a slow receiver delays only its own deliveries.

The standard library's HTTP client is enough for one POST at a time per URL (no new dependency).
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from typing import Any

from facegate import __version__
from facegate.events.base import Event
from facegate.events.delivery import PermanentError, display_url

RETRIED_STATUSES = frozenset({408, 425, 429})
# Enough of an answer to finish the exchange; receivers have nothing to say back.
MAX_ANSWER_BYTES = 64 * 1024


def signature(secret: bytes, body: bytes) -> str:
    """The X-Facegate-Signature value for a body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect of a POST as a GET without the body; a moved receiver is a configuration
    error to report, not to guess around."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookTransport:
    backend = "webhook"

    def __init__(self, url: str, secret: bytes, *, timeout: float) -> None:
        self.url = url
        self.target = display_url(url)
        self.secret = secret
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def connect(self) -> None:
        """Nothing to hold open: one request per delivery."""

    def send(self, event: Event) -> None:
        body = event.to_json()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"facegate/{__version__}",
                "X-Facegate-Event": event.type,
                "X-Facegate-Delivery": event.id,
                "X-Facegate-Signature": signature(self.secret, body),
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                answer.read(MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code >= 500 or exc.code in RETRIED_STATUSES:
                raise ConnectionError(f"HTTP {exc.code}") from exc
            raise PermanentError(f"HTTP {exc.code}") from exc

    def disconnect(self) -> None:
        pass
