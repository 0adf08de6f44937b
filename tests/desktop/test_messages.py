"""Error and reason codes in plain words."""

from __future__ import annotations

from facegate_desktop.client import ApiError
from facegate_desktop.messages import error_text, rejection, unknown_reason


def test_known_codes_read_as_sentences() -> None:
    assert error_text(ApiError("no_face", "x", 422)) == "No face was found in this photo."
    assert error_text(ApiError("invalid_api_key", "x", 401)).startswith("This API key is not valid")
    assert error_text(ApiError("payload_too_large", "x", 413)).startswith("The upload is too large")


def test_rate_limits_and_busy_say_when_to_try_again() -> None:
    assert error_text(ApiError("rate_limited", "x", 429, 42.0)) == "Too many requests. Try again in 42 s."
    assert error_text(ApiError("rate_limited", "x", 429)) == "Too many requests. Wait a moment and try again."
    assert error_text(ApiError("engine_unavailable", "x", 503, 2.0)).endswith("Try again in 2 s.")


def test_unknown_codes_fall_back_to_the_servers_words_or_the_status() -> None:
    assert error_text(ApiError("name_clash", "Name already used by another person.", 422)) == (
        "Name already used by another person."
    )
    assert error_text(ApiError("http_500", "Internal Server Error", 500)).startswith("The server failed.")
    assert error_text(ApiError("camera_unavailable", "No camera at '0'.")) == "No camera at '0'."


def test_reasons() -> None:
    assert rejection("multiple_faces").startswith("several faces")
    assert rejection("new_reason", "Server's own message") == "Server's own message"
    assert unknown_reason("above_threshold") == "the nearest person is not close enough to be sure"
    assert unknown_reason(None) == "no enrolled person is close enough"
