"""Errors that carry a stable snake_case code; the HTTP layer maps each class to a status."""

from __future__ import annotations


class FacegateError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(FacegateError):
    """The request itself is malformed (bad field value, bad JSON)."""

    code = "invalid_input"


class NotFound(FacegateError):
    code = "not_found"


class Conflict(FacegateError):
    """The request clashes with stored state (e.g. an external_id already in use)."""

    code = "conflict"


class PayloadTooLarge(FacegateError):
    """Too many bytes, or an image with more pixels than allowed (checked from its header)."""

    code = "payload_too_large"


class UnsupportedImage(FacegateError):
    """Not an image, an image format we cannot decode, or a truncated file."""

    code = "unreadable_image"


class Unprocessable(FacegateError):
    """Well-formed but unusable, e.g. no usable face in any image."""

    code = "unprocessable"


class Unavailable(FacegateError):
    """A backing part (store, blobs, engine, index) is not usable right now."""

    code = "unavailable"


class Unauthorized(FacegateError):
    """No credentials, or credentials that are not a valid, live API key."""

    code = "unauthorized"


class Forbidden(FacegateError):
    """A valid key without the scope the operation needs."""

    code = "forbidden"


class RateLimited(FacegateError):
    """Too many requests for this key (or, for failed credentials, this client address)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_seconds = retry_after_seconds


class ConfigurationError(FacegateError):
    """The settings cannot be used (bad value, unknown FACEGATE_* name, unreadable secret): one line per problem."""

    code = "invalid_configuration"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
