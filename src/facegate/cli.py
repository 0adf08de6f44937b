"""Command line: serve, enroll, identify, people, eval, bench."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from facegate import calibration, server_bench
from facegate.config import DlibEngineSettings, FusionEngineSettings, OpenCVEngineSettings, Settings
from facegate.errors import ConfigurationError, Conflict, FacegateError, InvalidInput, Unprocessable
from facegate.services import audit, maintenance
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import keys as keys_service
from facegate.services import people as people_service
from facegate.services import reindex as reindex_service
from facegate.services import suggestions as suggestions_service
from facegate.services.runtime import Runtime, StoreRuntime
from facegate.services.schemas import PersonSplit, PersonUpdate, Upload
from facegate.store.factory import build_repository
from facegate.vision.images import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from facegate.services import evaluation


class _Commands(TyperGroup):
    """Runs every command (sub-groups included) so that a configuration error (a bad FACEGATE_* value, an
    unknown name, an unreadable secret) is one line per problem and exit code 2, like a bad option, not a
    traceback."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's Context type lives in its private, vendored click
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            for line in exc.problems:
                typer.echo(f"error: {line}", err=True)  # plain echo: rich would wrap a long line
            raise typer.Exit(code=2) from None


app = typer.Typer(
    cls=_Commands, help="facegate: enroll people from photos, identify them in photos and video.", no_args_is_help=True
)
people_app = typer.Typer(help="List, show, rename and delete enrolled people.", no_args_is_help=True)
app.add_typer(people_app, name="people")
suggestions_app = typer.Typer(
    help="People seen again and again but never enrolled: list, show, enroll, dismiss, regroup.", no_args_is_help=True
)
app.add_typer(suggestions_app, name="suggestions")
console = Console()
err_console = Console(stderr=True)

EngineOption = Annotated[
    str | None,
    typer.Option("--engine", help="opencv (default), dlib or fusion; overrides FACEGATE_ENGINE__TYPE"),
]


def _settings(engine: str | None = None) -> Settings:
    """The settings of every command; a ConfigurationError raised here is reported by `_Commands`."""
    settings = Settings()
    if engine == "dlib":
        settings.engine = DlibEngineSettings()
    elif engine == "opencv":
        settings.engine = OpenCVEngineSettings()
    elif engine == "fusion":
        settings.engine = FusionEngineSettings()
    elif engine is not None:
        raise typer.BadParameter("engine must be opencv, dlib or fusion")
    return settings


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )


@contextmanager
def _runtime(engine: str | None = None, settings: Settings | None = None) -> Iterator[Runtime]:
    """`settings`: already adjusted by the command (e.g. `purge --older-than-days`); else read afresh."""
    settings = settings or _settings(engine)
    rt = Runtime(settings)
    rt.engine.when_full = "wait"  # a batch command waits for a busy engine; a service refuses
    try:
        with err_console.status(f"Starting the {settings.engine.type} engine ({settings.worker_count} workers)..."):
            rt.open()
    except FacegateError as exc:  # e.g. a server database on an old schema: the message says what to do
        rt.close()
        raise _fail(exc) from exc
    try:
        yield rt
    finally:
        rt.close()


@contextmanager
def _store_only(*, blobs: bool = False) -> Iterator[StoreRuntime]:
    """For commands that manage people, keys and history: the store (and with `blobs`, the blob store) without
    the engine, the index or the blob sweep. A change to faces reaches running servers through the change log."""
    rt = StoreRuntime(_settings())
    try:
        if blobs:
            rt.open()
        else:
            rt.open_store()
    except FacegateError as exc:
        rt.close()
        raise _fail(exc) from exc
    try:
        yield rt
    finally:
        rt.close()


def _fail(exc: FacegateError) -> typer.Exit:
    err_console.print(f"[red]error[/red] {exc.code}: {escape(exc.message)}")
    return typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (FACEGATE_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (FACEGATE_PORT)")] = None,
) -> None:
    """Start the HTTP service (OpenAPI docs at /docs)."""
    from facegate.app import create_app, run_server

    settings = _settings()
    settings.host, settings.port = host or settings.host, port or settings.port
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    err_console.print(f"facegate data in {settings.data_dir}; engine {settings.engine.type}")
    run_server(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # h11 even where httptools is installed: it refuses a request head over 16 KiB (431/400), httptools
        # takes a 1 MB header (tests/e2e/test_hostile_inputs.py).
        http="h11",
    )


@app.command()
def worker(
    worker_id: Annotated[
        str | None, typer.Option("--id", help="This worker's id among the workers (default: host-pid-random)")
    ] = None,
    role: Annotated[
        str,
        typer.Option(
            help="all: whole streams; ingest: read, sample and publish frames; recognize: the pipeline on them; "
            "webhooks: deliver events from NATS to the webhooks (FACEGATE_EVENTS__WEBHOOK_DELIVERY=workers)"
        ),
    ] = "all",
    max_streams: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="Streams this worker runs at most (FACEGATE_STREAMS__MAX_STREAMS)"),
    ] = None,
) -> None:
    """Run video streams as one of several workers sharing them through NATS (FACEGATE_STREAMS__NATS_URL); a
    dead worker's streams are taken over by the others. Streams are added with POST /api/v1/streams on a server
    (FACEGATE_STREAMS__RUN_IN_SERVER=false there) sharing this worker's store. A split deployment runs ingest
    and recognize workers (each stream's frames go from one to the other over NATS), and webhook workers may
    deliver the events. Stops on SIGTERM or Ctrl-C."""
    from facegate.stream.worker import ROLES, run_worker

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if role == "webhooks":
        from facegate.events.webhook_worker import run_webhook_worker

        events = settings.events
        if events.type != "nats" or not events.webhooks or events.webhook_delivery != "workers":
            raise typer.BadParameter(
                "webhook workers need FACEGATE_EVENTS__TYPE=nats, FACEGATE_EVENTS__WEBHOOKS and "
                "FACEGATE_EVENTS__WEBHOOK_DELIVERY=workers (so that no other process delivers them too)",
                param_hint="--role",
            )
        run_webhook_worker(events)
        return
    if worker_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", worker_id):
        raise typer.BadParameter("letters, digits, - and _ only (at most 100)", param_hint="--id")
    chosen = next((r for r in ROLES if r == role), None)
    if chosen is None:
        raise typer.BadParameter(f"one of {', '.join(ROLES)}, webhooks", param_hint="--role")
    if max_streams is not None:
        settings.streams = settings.streams.model_copy(update={"max_streams": max_streams})
    try:
        run_worker(settings, worker_id, chosen)
    except FacegateError as exc:
        raise _fail(exc) from exc


def _person_folders(root: Path) -> list[tuple[str, list[Path]]]:
    folders = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            folders.append((folder.name, files))
    return folders


def _enroll_person(rt: Runtime, name: str, files: list[Path]) -> tuple[int, list[str]]:
    """Enroll one folder, resuming: the person is found by name and already stored photos are skipped. The index
    is not synced here: `enroll` syncs it once, after every folder (the faces wait in the store's change log)."""
    limit = rt.settings.limits.max_images_per_enroll
    added, problems = 0, []
    existing = rt.store.find_person_by_name(name)
    person_id = existing.id if existing else None
    for start in range(0, len(files), limit):
        batch = [Upload(p.name, p.read_bytes()) for p in files[start : start + limit]]
        try:
            if person_id is None:
                result = enroll_service.enroll(rt, batch, name=name, sync_index=False)
                person_id = result.person.id
            else:
                result = enroll_service.enroll(rt, batch, person_id=person_id, sync_index=False)
        except (Unprocessable, Conflict) as exc:
            # Every photo of this batch was refused; on a resumed run that is mostly "already enrolled".
            if exc.code != "duplicate_image":
                problems.append(f"{name}: {exc.message}")
            continue
        added += len(result.faces)
        problems += [f"{name}/{r.filename}: {r.reason}" for r in result.rejected if r.reason != "duplicate_image"]
    return added, problems


@app.command()
def enroll(
    folder: Annotated[Path, typer.Argument(help="Folder of <person name>/<photos>", exists=True, file_okay=False)],
    engine: EngineOption = None,
) -> None:
    """Bulk-enroll a folder of people. Resumable: photos already enrolled for a person are skipped."""
    people = _person_folders(folder)
    if not people:
        err_console.print(f"[red]No <person>/<photos> folders under {folder}[/red]")
        raise typer.Exit(code=1)
    total = sum(len(files) for _, files in people)
    added, problems = 0, []
    with _runtime(engine) as rt, _progress() as progress:
        task = progress.add_task("Enrolling", total=total)
        # Several people in flight keep every engine worker busy while another person's rows are written.
        with ThreadPoolExecutor(max_workers=rt.engine.workers * 2) as threads:
            futures = {threads.submit(_enroll_person, rt, name, files): len(files) for name, files in people}
            for future in as_completed(futures):
                n, issues = future.result()
                added += n
                problems += issues
                progress.advance(task, futures[future])
        # Once for the whole run rather than after each person (a change-log read and index inserts each time,
        # under the GIL the engine's result handling needs): the snapshot saved on close includes every face.
        rt.sync_index_after_write()
    console.print(f"Enrolled {added} new faces for {len(people)} people from {total} photos.")
    for problem in problems:
        console.print(f"  [yellow]skipped[/yellow] {problem}")


@app.command()
def identify(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    threshold: Annotated[float | None, typer.Option(help="Distance cut-off (default: the engine's)")] = None,
    top_k: Annotated[int, typer.Option(help="Candidates per face")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON result")] = False,
    engine: EngineOption = None,
) -> None:
    """Identify every face in a photo (recorded in match history, like the API)."""
    with _runtime(engine) as rt:
        try:
            result = identify_service.identify(rt, image.read_bytes(), threshold=threshold, top_k=top_k, source="cli")
        except FacegateError as exc:
            raise _fail(exc) from exc
    if as_json:
        console.print_json(result.model_dump_json())
        return
    table = Table(title=f"{image.name}: {len(result.faces)} face(s)")
    for col in ("box (l,t,w,h)", "match", "distance", "confidence", "next candidates"):
        table.add_column(col)
    for face in result.faces:
        b = face.box
        others = ", ".join(f"{c.name} {c.distance:.3f}" for c in face.candidates[1 if face.match else 0 :])
        table.add_row(
            f"{b.left},{b.top},{b.width},{b.height}",
            face.match.name if face.match else "[dim]unknown[/dim]",
            f"{face.match.distance:.3f}" if face.match else "",
            f"{face.match.confidence:.2f}" if face.match else "",
            others,
        )
    console.print(table)


@app.command()
def watch(
    source: Annotated[str, typer.Argument(help="Video file, stream URL (rtsp://, http://...) or camera index (0)")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event and line on stdout")] = False,
    name: Annotated[str | None, typer.Option(help="Stream name in events and history (default: the source)")] = None,
    sample_fps: Annotated[
        float | None, typer.Option(min=0.1, max=60.0, help="Frames analysed per second (FACEGATE_STREAMS__SAMPLE_FPS)")
    ] = None,
    realtime: Annotated[bool, typer.Option(help="Play a file at its own frame rate, as a live stream")] = False,
    loop: Annotated[bool, typer.Option(help="Start a file again at its end (until Ctrl-C)")] = False,
    engine: EngineOption = None,
) -> None:
    """Watch one video source: an event when a person appears and one when they leave, until the source ends or
    Ctrl-C. Each person seen is recorded once in match history (source video:NAME)."""
    import signal
    import threading

    from facegate.stream.pipeline import Pipeline, StreamOptions
    from facegate.stream.sources import check_source

    try:
        check_source(source)  # a typo fails at once, not after the engine has started
    except FacegateError as exc:
        raise _fail(exc) from exc
    settings = _settings(engine)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stream_name = name or (Path(source).name if Path(source).is_file() else source)
    options = StreamOptions.from_settings(settings.streams, sample_fps=sample_fps, realtime=realtime, loop=loop)
    stop = threading.Event()
    failure: list[FacegateError] = []
    with _runtime(settings=settings) as rt:
        pipeline = Pipeline(rt, stream_id=stream_name, name=stream_name, source=source, options=options)

        def run() -> None:
            try:
                pipeline.run(stop)
            except FacegateError as exc:
                failure.append(exc)

        # SIGTERM ends the watch like Ctrl-C: open tracks get their `left` event and their history row.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with rt.events.hub.subscribe() as events:
            worker = threading.Thread(target=run, name="facegate-watch", daemon=True)
            worker.start()
            try:
                while worker.is_alive():
                    event = events.get(timeout=0.2)
                    if event is not None:
                        _print_event(event.body(), as_json=as_json)
            except KeyboardInterrupt:
                stop.set()
                worker.join()
            while (event := events.get(0)) is not None:
                _print_event(event.body(), as_json=as_json)
        if failure:
            raise _fail(failure[0])
        stats = pipeline.stats()
        if stats.state == "failed":
            raise _fail(FacegateError(stats.error or "the video source failed", code="source_failed"))
        err_console.print(
            f"{stats.frames} frames, {stats.analysed_frames} analysed, {stats.dropped_frames} dropped", highlight=False
        )


def _print_event(body: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(body, separators=(",", ":"), sort_keys=True))
        return
    who = escape(body["name"]) if body.get("name") else "[dim]unknown[/dim]"
    distance = f" ({body['distance']:.3f})" if body.get("distance") is not None else ""
    offset = body.get("first_seen_offset" if body["type"] == "appeared" else "last_seen_offset") or 0.0
    console.print(f"{offset:8.1f}s  {body['type']:<8}  {who}{distance}  track {body['track'][:8]}", highlight=False)


@people_app.command("list")
def people_list(
    name: Annotated[str | None, typer.Option(help="Filter by name substring")] = None,
    limit: int = 100,
    offset: int = 0,
) -> None:
    """List enrolled people."""
    with _store_only() as rt:
        page = people_service.list_people(rt, limit=limit, offset=offset, name=name)
    table = Table(title=f"{page.total} people")
    # Ids and names are never cut: they are what the other commands take; the other columns wrap.
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("name", no_wrap=True, min_width=min(40, max((len(p.name) for p in page.items), default=4)))
    for col in ("faces", "external id", "created"):
        table.add_column(col)
    for p in page.items:
        table.add_row(p.id, p.name, str(p.face_count), p.external_id or "", f"{p.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@people_app.command("show")
def people_show(person_id: str) -> None:
    """Show one person as JSON."""
    with _store_only() as rt:
        try:
            console.print_json(people_service.get_person(rt, person_id).model_dump_json())
        except FacegateError as exc:
            raise _fail(exc) from exc


@people_app.command("rename")
def people_rename(person_id: str, name: str) -> None:
    """Change a person's name."""
    with _store_only() as rt:
        try:
            person = people_service.update_person(rt, person_id, PersonUpdate(name=name))
        except FacegateError as exc:
            raise _fail(exc) from exc
    console.print(f"Renamed {person.id} to {person.name}.")


@people_app.command("merge")
def people_merge(
    into: Annotated[str, typer.Argument(help="The person who stays")],
    source: Annotated[str, typer.Argument(help="The person whose photos, faces and history move in")],
) -> None:
    """Merge SOURCE into INTO (one person enrolled twice): SOURCE's photos, faces and match history move to
    INTO, and SOURCE is deleted."""
    with _store_only(blobs=True) as rt:
        try:
            person = people_service.merge_people(rt, into, source)
        except FacegateError as exc:
            raise _fail(exc) from exc
        audit.record(rt, audit.CLI, "person_merged", into, merged=source)
    console.print(f"Merged into {person.name} ({person.id}): {person.face_count} photos.")


@people_app.command("split")
def people_split(
    person_id: Annotated[str, typer.Argument(help="The person the faces are taken from")],
    face_ids: Annotated[list[int], typer.Argument(help="Faces to move (with every face of their photos)")],
    name: Annotated[str | None, typer.Option("--name", help="Move them to a new person of this name")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Or to this existing person (id)")] = None,
) -> None:
    """Move faces wrongly given to PERSON_ID (a wrong merge, a mislabelled photo), photos and all, to a new
    person (--name) or an existing one (--to)."""
    with _store_only(blobs=True) as rt:
        try:
            split = PersonSplit(face_ids=face_ids, name=name, person_id=to)
            person = people_service.split_person(rt, person_id, split)
        except ValidationError as exc:
            raise _fail(InvalidInput(str(exc.errors()[0]["msg"]), code="invalid_split")) from exc
        except FacegateError as exc:
            raise _fail(exc) from exc
        audit.record(rt, audit.CLI, "person_split", person_id, to=person.id, face_ids=sorted(face_ids))
    console.print(f"Moved to {person.name} ({person.id}): {person.face_count} photos.")


@people_app.command("delete")
def people_delete(person_id: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False) -> None:
    """Delete a person with all faces, images and match history."""
    if not yes:
        typer.confirm(f"Delete {person_id} and everything stored for them?", abort=True)
    with _store_only(blobs=True) as rt:
        try:
            people_service.delete_person(rt, person_id)
        except FacegateError as exc:
            raise _fail(exc) from exc
        audit.record(rt, audit.CLI, "person_deleted", person_id)
    console.print(f"Deleted {person_id}.")


@suggestions_app.command("list")
def suggestions_list(limit: int = 50, offset: int = 0) -> None:
    """List suggested people, most recently seen first."""
    with _store_only() as rt:
        info = suggestions_service.engine_space(rt.settings)
        page = suggestions_service.list_suggestions(rt, info, limit=limit, offset=offset)
    table = Table(title=f"{page.total} suggested people")
    table.add_column("id", no_wrap=True, min_width=36)
    for col in ("faces", "sightings", "first seen", "last seen", "sources"):
        table.add_column(col)
    for s in page.items:
        table.add_row(
            s.id,
            str(s.size),
            str(s.sightings),
            f"{s.first_seen:%Y-%m-%d %H:%M}",
            f"{s.last_seen:%Y-%m-%d %H:%M}",
            ", ".join(s.sources),
        )
    console.print(table)


@suggestions_app.command("show")
def suggestions_show(suggestion_id: str) -> None:
    """Show one suggestion with every face in it, as JSON."""
    with _store_only() as rt:
        try:
            info = suggestions_service.engine_space(rt.settings)
            console.print_json(suggestions_service.get_suggestion(rt, info, suggestion_id).model_dump_json())
        except FacegateError as exc:
            raise _fail(exc) from exc


@suggestions_app.command("enroll")
def suggestions_enroll(
    suggestion_id: str,
    name: Annotated[str | None, typer.Option(help="A new person's name")] = None,
    person_id: Annotated[str | None, typer.Option("--person-id", help="Or add the faces to this person")] = None,
) -> None:
    """Enroll a suggestion's best faces as a new person (--name) or onto one (--person-id)."""
    with _runtime() as rt:
        try:
            result = suggestions_service.enroll(rt, suggestion_id, name=name, person_id=person_id)
        except FacegateError as exc:
            raise _fail(exc) from exc
        audit.record(rt, audit.CLI, "suggestion_enrolled", result.person.id, suggestion_id=suggestion_id)
    console.print(f"Enrolled {result.faces_added} faces as {result.person.name} ({result.person.id}).")


@suggestions_app.command("dismiss")
def suggestions_dismiss(suggestion_id: str) -> None:
    """Dismiss a suggestion: its faces, and later faces of the same stranger, are not suggested again."""
    with _store_only() as rt:
        try:
            suggestions_service.dismiss(rt, suggestion_id)
        except FacegateError as exc:
            raise _fail(exc) from exc
        audit.record(rt, audit.CLI, "suggestion_dismissed", suggestion_id)
    console.print(f"Dismissed {suggestion_id}.")


@suggestions_app.command("regroup")
def suggestions_regroup() -> None:
    """Group every unknown face in match history anew (a running server also does this periodically)."""
    with _store_only() as rt:
        info = suggestions_service.engine_space(rt.settings)
        grouping = suggestions_service.Grouping(rt.store, info, rt.settings.suggestions)
        with err_console.status("Regrouping the unknown faces in match history..."):
            changed = grouping.regroup()
        page = suggestions_service.list_suggestions(rt, info, limit=1, offset=0)
    console.print(f"{changed} faces changed group; {page.total} suggested people.")


@app.command()
def migrate() -> None:
    """Apply the database migrations and exit (the one explicit step before starting replicas on a server
    database; safe to run from several places at once)."""
    settings = Settings()
    store = build_repository(settings)
    try:
        with err_console.status("Migrating..."):
            store.migrate()
    finally:
        store.close()
    console.print(f"The database at {_redacted(settings.database_url)} has the newest schema.")


def _redacted(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def purge(
    older_than_days: Annotated[
        float | None,
        typer.Option(help="Delete match history older than this (default: FACEGATE_RETENTION__MATCH_DAYS)"),
    ] = None,
) -> None:
    """Delete old match history (rows and crops) and settle blobs left by interrupted operations."""
    settings = Settings()
    if older_than_days is not None:
        if older_than_days <= 0:  # a negative age puts the cut-off in the future: all history would go
            raise typer.BadParameter("must be more than 0 days", param_hint="--older-than-days")
        settings.retention.match_days = older_than_days
    if not settings.retention.match_days:
        err_console.print("No retention set: pass --older-than-days or set FACEGATE_RETENTION__MATCH_DAYS.")
        raise typer.Exit(code=1)
    with _runtime(settings=settings) as rt:
        result = maintenance.run(rt)
    console.print(
        f"Purged {result.matches_purged} matches; settled {result.blobs_settled} pending blobs; "
        f"trimmed {result.changes_trimmed} change-log entries."
    )


@app.command()
def reindex(engine: EngineOption = None) -> None:
    """Embed stored photos with the current engine (after switching engines or model versions)."""
    with _runtime(engine) as rt:
        pending = len(reindex_service.missing_embeddings(rt))
        with _progress() as progress:
            task = progress.add_task("Re-embedding", total=pending)
            result = reindex_service.reindex(rt, progress=lambda n: progress.advance(task, n))
    console.print(f"Added {result.added} embeddings from {result.images} photos for engine {rt.engine.info.label}.")
    for failure in result.failed:
        console.print(f"  [yellow]skipped[/yellow] {failure}")


def _cell(measure: dict[str, Any] | None) -> str:
    if not measure or measure.get("value") is None:
        return "-"
    ci = measure.get("ci95")
    text = f"{measure['value']:.3f}"
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else text


def _print_accuracy(title: str, report: dict[str, Any]) -> None:
    from facegate.services import evaluation

    engines = [name for name in evaluation.SYSTEMS if name in report]
    table = Table(title=title)
    table.add_column("measure (95% interval, resampling people)")
    for name in engines:
        table.add_column(name)
    table.add_row("threshold", *(str(report[n]["threshold"]) for n in engines))
    for n in evaluation.PHOTOS_PER_PERSON:
        key = f"{n}_photos"
        rows = {
            f"open-set rank-1 at threshold, {n} photo(s)/person": "rank1_identified_at_threshold",
            f"false accepts on unknown people, {n} photo(s)": "false_accepts_unknown",
            f"closed-set rank-1, {n} photo(s)": "closed_set_rank1",
        }
        for label, measure in rows.items():
            table.add_row(label, *(_cell(report[e]["open_set"][key][measure]) for e in engines))
    table.add_row("pairs accuracy at threshold", *(_cell(report[e]["pairs_accuracy_at_threshold"]) for e in engines))
    table.add_row("TAR at FAR 0.1%", *(_cell(report[e]["tar_at_far_0.001"]) for e in engines))
    share = [str(report[e]["open_set"]["1_photos"]["second_descriptor_share"]) for e in engines]
    table.add_row("probes needing the second descriptor", *share)
    console.print(table)


CacheOption = Annotated[
    Path | None, typer.Option(help="Keep the embeddings in this folder and reuse them on the next run")
]


def _measure(faceset: Path, settings: Settings, cache: Path | None) -> tuple[evaluation.FaceSet, evaluation.Distances]:
    # The accuracy commands' modules (and the dlib engine they load) are imported by them alone: every other
    # command starts without them.
    from facegate.services import evaluation

    try:
        data = evaluation.load_faceset(faceset)
    except FacegateError as exc:
        raise _fail(exc) from exc
    photos = sum(len(v) for v in data.photos.values())
    with _progress() as progress:
        task = progress.add_task("Embedding (fused engine, then dlib)", total=2 * photos)
        distances = evaluation.measure(data, settings, cache=cache, progress=lambda n: progress.advance(task, n))
    return data, distances


def _write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"Report written to {path}")


@app.command("eval")
def eval_command(
    faceset: Annotated[Path, typer.Argument(help="Folder of <identity>/<photos>, optionally with pairs.csv")],
    cross_validate: Annotated[
        bool,
        typer.Option(help="Fit thresholds on 4/5 of the people and measure on the rest (for the calibration set)"),
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write the JSON report here")] = None,
    cache: CacheOption = None,
) -> None:
    """Accuracy of every engine at the shipped thresholds: open-set identification with 1, 3 and 5 photos per
    person, closed-set rank-1, pairs accuracy, TAR at FAR 0.1%, with 95% intervals."""
    from facegate.services import calibration as calibration_service
    from facegate.services import evaluation

    settings = _settings()
    data, distances = _measure(faceset, settings, cache)
    shipped_calibration = calibration.shipped()
    if cross_validate:
        results = calibration_service.cross_validate(
            distances,
            false_accepts=shipped_calibration.false_accepts,
            gallery_people=shipped_calibration.gallery_people,
            template=settings.identify.template,
        )
    else:
        results = evaluation.evaluate(distances, shipped_calibration, settings.identify.template)
    report = {
        "faceset": evaluation.describe(data, distances),
        "calibration": shipped_calibration.model_dump(),
        "cross_validated": cross_validate,
        "template": settings.identify.template,
        "engines": results,
    }
    kind = "cross-validated" if cross_validate else "shipped thresholds"
    _print_accuracy(f"{data.root} ({kind})", results)
    _write_json(output, report)


@app.command("calibrate")
def calibrate_command(
    faceset: Annotated[Path, typer.Argument(help="Labelled face set to fit on (never the photos you test on)")],
    false_accepts: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="Share of unknown faces that may be taken for someone")
    ] = 0.01,
    gallery: Annotated[int, typer.Option(min=1, help="...with this many people enrolled, one photo each")] = 100,
    output: Annotated[
        Path, typer.Option(help="Where the calibration goes (default: the file the package reads)")
    ] = calibration.SHIPPED,
    report: Annotated[Path | None, typer.Option(help="Also write the cross-validation report here")] = None,
    cache: CacheOption = None,
) -> None:
    """Fit every engine's threshold (and the fused engine's normalisation and band) for an operating point,
    cross-validated by people, and write what the package ships."""
    from facegate.services import calibration as calibration_service
    from facegate.services import evaluation

    settings = _settings()
    data, distances = _measure(faceset, settings, cache)
    fitted = calibration_service.fit(distances, false_accepts=false_accepts, gallery_people=gallery)
    checked = calibration_service.cross_validate(
        distances, false_accepts=false_accepts, gallery_people=gallery, template=settings.identify.template
    )
    output.write_text(fitted.model_dump_json(indent=2) + "\n")
    console.print(f"{fitted.operating_point}. Calibration written to {output}")
    _print_accuracy(f"{data.root} (cross-validated: fitted on 4/5 of the people, measured on the rest)", checked)
    _write_json(
        report,
        {
            "faceset": evaluation.describe(data, distances),
            "calibration": fitted.model_dump(),
            "cross_validated": checked,
        },
    )


@app.command("bench")
def bench_command(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8000")],
    photos: Annotated[Path, typer.Argument(help="Folder of photos to identify (sub-folders too)")],
    api_key: Annotated[str | None, typer.Option(help="Key with the identify scope (enroll too for --enroll)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Clients sending requests at once")] = 2,
    requests: Annotated[int, typer.Option(min=0, help="Identify requests, cycling the photos; 0: each once")] = 0,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed requests first")] = 4,
    enroll: Annotated[
        Path | None,
        typer.Option(help="First enroll this folder of <person name>/<photos> (one new person per sub-folder)"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
) -> None:
    """Identify throughput (images/s) and latency (p50/p95/p99) of a running server, with your own photos."""
    try:
        files = server_bench.photos_in(photos)
        enrolled = server_bench.enroll_gallery(url, enroll, api_key=api_key) if enroll else None
        result = server_bench.identify_bench(
            url, files, api_key=api_key, concurrency=concurrency, requests=requests, warmup=warmup
        )
    except FacegateError as exc:
        raise _fail(exc) from exc
    if json_output:
        out = result.as_dict()
        if enrolled is not None:
            out["enroll"] = dataclasses.asdict(enrolled)
        typer.echo(json.dumps(out, indent=2))
        return
    if enrolled is not None:
        console.print(
            f"Enrolled {enrolled.people} people ({enrolled.faces} faces, {enrolled.rejected_photos} photos rejected)"
            f" in {enrolled.seconds:.1f}s" + (f"; failed: {enrolled.failed}" if enrolled.failed else "")
        )
    table = Table(title=f"identify: {result.requests} requests, {result.concurrency} clients", caption=result.url)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("images/s", f"{result.images_per_s:.2f}")
    for name, ms in result.latency_ms.items():
        table.add_row(f"latency {name} ms", f"{ms:.1f}")
    table.add_row("answers", ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items())))
    table.add_row("faces found / named", f"{result.faces} / {result.matched}")
    console.print(table)


keys_app = typer.Typer(help="Create, list and revoke API keys (on the same store as the server).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'front door camera'")],
    scope: Annotated[list[str], typer.Option("--scope", help="admin, enroll, identify or read; repeat for several")],
    expires_in_days: Annotated[float | None, typer.Option(min=0.001, help="The key stops working then")] = None,
) -> None:
    """Create an API key. The key is printed once, as the last line of standard output."""
    allowed = ("admin", "enroll", "identify", "read")
    unknown = [s for s in scope if s not in allowed]
    if unknown:
        raise typer.BadParameter(f"unknown scope {', '.join(unknown)}; use {', '.join(allowed)}", param_hint="--scope")
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with _store_only() as rt:
        try:
            created = keys_service.create_key(rt, name=name, scopes=scope, expires_at=expires)  # type: ignore[arg-type]
        except FacegateError as exc:
            raise _fail(exc) from exc
        audit.record(rt, audit.CLI, "key_created", created.key.id, name=name, scopes=sorted(set(scope)))
    err_console.print(f"Created key {created.key.id} ({name}; scopes {', '.join(created.key.scopes)}). Shown once:")
    typer.echo(created.secret)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never the keys themselves)."""
    with _store_only() as rt:
        keys = keys_service.list_keys(rt)
    table = Table(title=f"{len(keys)} keys")
    for col in ("id", "name", "scopes", "starts with", "created", "last used", "expires", "revoked"):
        table.add_column(col, overflow="fold")

    def when(value: datetime | None) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    for k in keys:
        table.add_row(
            k.id,
            k.name,
            ",".join(k.scopes),
            k.prefix,
            when(k.created_at),
            when(k.last_used_at),
            when(k.expires_at),
            when(k.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key: it stops working at once, on every replica."""
    with _store_only() as rt:
        try:
            keys_service.revoke_key(rt, key_id)
        except FacegateError as exc:
            raise _fail(exc) from exc
        audit.record(rt, audit.CLI, "key_revoked", key_id)
    console.print(f"Revoked {key_id}.")
