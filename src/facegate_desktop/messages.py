"""The API's error and reason codes in plain words, as the desktop app shows them."""

from __future__ import annotations

from facegate_desktop.client import ApiError

REJECTIONS = {
    "no_face": "no face was found in this photo",
    "multiple_faces": "several faces and none stands out; use a photo of this person alone",
    "face_too_small": "the face is too small; use a closer or larger photo",
    "blurry": "the face is blurred; use a sharper photo",
    "low_quality": "the face is not clear enough; use a brighter, sharper photo, facing the camera",
    "duplicate_image": "this photo is already enrolled for this person",
    "unreadable_image": "this file is not an image that can be read",
    "unsupported_image": "not a supported image (JPEG, PNG, WebP, BMP, TIFF or GIF)",
    "image_too_large": "this photo has too many pixels; use a smaller one",
    "engine_timeout": "this photo took too long to analyse",
    "image_crashed_engine": "this photo could not be analysed",
}

UNKNOWN_REASONS = {
    "no_candidate": "nobody is enrolled yet to compare with",
    "above_threshold": "the nearest person is not close enough to be sure",
    "low_quality": "the face is too small, blurred or faint to be sure",
    "rejected_lookalike": "this face was marked as not the nearest person",
}

ERRORS = {
    "server_unreachable": "The server could not be reached. Check the address and that facegate is running.",
    "server_timeout": "The server took too long to answer. Try again.",
    "invalid_url": "That is not a server address. Use one like http://127.0.0.1:8000.",
    "bad_answer": "That address did not answer like a facegate server.",
    "missing_api_key": "An API key is needed. Enter your key and connect.",
    "invalid_api_key": "This API key is not valid: it is unknown, revoked or expired.",
    "missing_scope": "Your key is not allowed to do this.",
    "payload_too_large": "The upload is too large. Use smaller or fewer photos.",
    "too_many_images": "Too many photos at once. Send fewer.",
    "person_not_found": "This person no longer exists.",
    "invalid_name": "Please enter a name.",
    "engine_unavailable": "The face engine is busy or restarting. Try again in a few seconds.",
    "engine_restarted": "The face engine restarted while working on this. Try again.",
    "rate_limited": "Too many requests.",
}

STATUSES = {
    400: "The request was not valid.",
    401: "This API key is not valid: it is unknown, revoked or expired.",
    403: "Your key is not allowed to do this.",
    404: "Not found: it may have been deleted.",
    413: "The upload is too large. Use smaller or fewer photos.",
    415: "This file is not a supported image (JPEG, PNG, WebP, BMP, TIFF or GIF).",
    429: "Too many requests.",
    500: "The server failed. Try again; if it goes on, tell whoever runs facegate.",
    503: "The server is busy. Try again in a few seconds.",
}


def rejection(code: str, fallback: str = "") -> str:
    return REJECTIONS.get(code) or fallback or code


def unknown_reason(code: str | None) -> str:
    return UNKNOWN_REASONS.get(code or "", "no enrolled person is close enough")


def error_text(error: ApiError) -> str:
    """One sentence for the error banner: ours for the codes we know, the server's own for a 422 we do not
    (it names what is unusable), else the status's."""
    if error.code in REJECTIONS:
        text = REJECTIONS[error.code].capitalize() + "."
    elif error.code in ERRORS:
        text = ERRORS[error.code]
    elif error.status == 422 and error.message:
        text = error.message
    else:
        text = STATUSES.get(error.status or 0) or error.message or "Something went wrong."
    if error.status == 429 or (error.status == 503 and error.retry_after is not None):
        text += f" Try again in {error.retry_after:.0f} s." if error.retry_after else " Wait a moment and try again."
    return text
