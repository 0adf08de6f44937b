// The API's error and reason codes, in plain words.

const ENROLL_REASONS = {
  no_face: "No face was found in this photo.",
  multiple_faces: "There are several faces and none stands out. Use a photo of this person alone.",
  face_too_small: "The face is too small. Use a closer or larger photo.",
  blurry: "The face is blurred. Use a sharper photo.",
  low_quality: "The face is not clear enough. Use a brighter, sharper photo, facing the camera.",
  duplicate_image: "This photo is already enrolled for this person.",
  unreadable_image: "This file is not an image that can be read.",
  unsupported_image: "This file is not a supported image (JPEG, PNG, WebP, BMP, TIFF or GIF).",
  image_too_large: "This photo has too many pixels. Use a smaller one.",
  engine_timeout: "This photo took too long to analyse.",
  image_crashed_engine: "This photo could not be analysed.",
};

const UNKNOWN_REASONS = {
  no_candidate: "nobody is enrolled yet to compare with",
  above_threshold: "the nearest person is not close enough to be sure",
  low_quality: "the face is too small, blurred or faint to be sure; try a better photo",
};

const CODES = {
  ...ENROLL_REASONS,
  server_unreachable: "The server could not be reached. Check that facegate is running and try again.",
  missing_api_key: "An API key is needed. Sign in with your key.",
  invalid_api_key: "This API key is not valid: it is unknown, revoked or expired.",
  missing_scope: "Your key is not allowed to do this.",
  payload_too_large: "The upload is too large. Use smaller or fewer photos.",
  too_many_images: "Too many photos at once. Send fewer.",
  person_not_found: "This person no longer exists.",
  face_not_found: "This face no longer exists.",
  match_not_found: "This entry is no longer in the history.",
  crop_not_found: "The face picture for this entry is no longer kept.",
  external_id_taken: "Another person already has this external id.",
  invalid_name: "Please enter a name.",
  name_or_person_id: "Give either a new name or an existing person.",
  same_person: "That is the same person.",
  engine_unavailable: "The face engine is busy or restarting. Try again in a few seconds.",
  engine_restarted: "The face engine restarted while working on this. Try again.",
  rate_limited: "Too many requests.",
};

const STATUS = {
  400: "The request was not valid.",
  401: "This API key is not valid: it is unknown, revoked or expired.",
  403: "Your key is not allowed to do this.",
  404: "Not found: it may have been deleted.",
  405: "This server does not offer that yet.",
  409: "That clashes with what is stored.",
  413: "The upload is too large. Use smaller or fewer photos.",
  415: "This file is not a supported image (JPEG, PNG, WebP, BMP, TIFF or GIF).",
  422: "That could not be used.",
  429: "Too many requests.",
  500: "The server failed. Try again; if it goes on, tell whoever runs facegate.",
  502: "The server could not be reached through the proxy.",
  503: "The server is busy. Try again in a few seconds.",
  504: "The server took too long to answer.",
};

export function enrollReason(code, fallback) {
  return ENROLL_REASONS[code] || fallback || code;
}

export function unknownReason(code) {
  return UNKNOWN_REASONS[code] || "no enrolled person is close enough";
}

export function errorText(error) {
  let text = CODES[error.code] || STATUS[error.status] || error.message || "Something went wrong.";
  if (error.status === 422 && !CODES[error.code] && error.message) text = error.message;
  if (error.status === 429 || (error.status === 503 && error.retryAfter)) {
    text += error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Wait a moment and try again.";
  }
  return text;
}

// Percent for a confidence in [0, 1].
export function percent(confidence) {
  return `${Math.round((confidence ?? 0) * 100)}%`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
