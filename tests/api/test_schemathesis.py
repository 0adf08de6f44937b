"""schemathesis against the app's own OpenAPI document: examples, coverage and fuzzing cases for every
operation, then stateful sequences that follow the document's links (enroll -> person -> faces, identify ->
match, create key -> revoke). Every answer is checked: no 5xx, a status the operation declares, a body that
fits the declared schema, a declared media type, declared headers.

Uploads carry real photos from the dev set (and some bytes that are no image): a JPEG or PNG strategy is
registered for the image media types the document declares for upload fields.

One runtime on SQLite with the session's engine pool serves the whole module. Rate limits are off (1,000+
requests from one key and one address would otherwise be refused) and are tested in test_auth.py.
Set FUZZ_SEED to explore other cases than CI's.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from facegate.app import create_app
from facegate.config import Settings
from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime
from facegate.vision.pool import EnginePool

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FUZZ_SEED", "20261125"))
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    allow_header_conformance,
]
# Fuzzing examples per operation; each upload costs the engine a photo or two, so those get fewer.
MAX_EXAMPLES = 100
MAX_EXAMPLES_UPLOADS = 40
STATEFUL_SCENARIOS = 150
STATEFUL_STEPS = 6
# Steps (requests) the stateful phase must reach, over at most this many suites (see test_stateful).
STATEFUL_MIN_STEPS = 500
MAX_STATEFUL_SUITES = 5

# Cases run, per phase, and the operations they covered (for test_case_count).
cases: Counter[str] = Counter()
operations: set[str] = set()


def _photos(dev: Path) -> tuple[list[bytes], list[bytes]]:
    """(JPEGs, PNGs): single faces of several people, a photo with no face, a cut-off file."""
    faces = [dev / name for name in ("colin_powell/1.jpg", "colin_powell/2.jpg", "george_w_bush/1.jpg")]
    jpegs = [p.read_bytes() for p in faces] + [(dev / "noface" / "banana.jpg").read_bytes()]
    jpegs.append(jpegs[0][: len(jpegs[0]) // 2])
    buf = io.BytesIO()
    with Image.open(dev / "ariel_sharon" / "1.jpg") as img:
        img.save(buf, format="PNG")
    return jpegs, [buf.getvalue()]


# The document needs no runtime, so it is loaded at import, where schemathesis builds one test per operation;
# requests go to an app over the module's runtime (the `app` fixture), with this admin key.
KEY = keys_service.generate_key()
schema = schemathesis.openapi.from_dict(
    create_app().openapi(),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"X-API-Key": KEY},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "operations": [
                *(
                    {"include-name": name, "generation": {"max-examples": MAX_EXAMPLES_UPLOADS}}
                    for name in ("POST /api/v1/enroll", "POST /api/v1/identify", "POST /api/v1/compare")
                ),
                # The event stream stays open until the client leaves: every case bounds it (its filters, auth
                # and other parameters are still fuzzed).
                {"include-name": "GET /api/v1/events", "parameters": {"query.max_seconds": 0.01}},
            ],
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        }
    ),
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, opencv_pool: EnginePool, dev: Path) -> Iterator[FastAPI]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("schemathesis"),
        workers=2,
        auth={"bootstrap_key": KEY},
        rate_limit={"default": "", "failed_auth": ""},
    )
    rt = Runtime(settings, engine=opencv_pool)
    rt.open()
    keys_service.ensure_bootstrap_key(rt)
    jpegs, pngs = _photos(dev)
    schemathesis.openapi.media_type("image/jpeg", st.sampled_from(jpegs) | st.binary(max_size=64))
    schemathesis.openapi.media_type("image/png", st.sampled_from(pngs))
    try:
        yield create_app(runtime=rt)
    finally:
        rt.close()


def _upload_lists(case: schemathesis.Case) -> None:
    """schemathesis puts one generated file in place of an array of files (enroll's `image`) when the field has
    an encoding, and then sends it as a plain form field: wrap it in a list so that it goes as a file."""
    if case.operation.label == "POST /api/v1/enroll" and isinstance(case.body, dict):
        image = case.body.get("image")
        if isinstance(image, bytes):
            case.body["image"] = [image]


@schema.parametrize()
def test_every_operation(case: schemathesis.Case, app: FastAPI) -> None:
    phase = case.meta.phase.name.value if case.meta is not None else "unknown"
    cases[phase] += 1
    _upload_lists(case)
    case.call_and_validate(checks=CHECKS, app=app)
    operations.add(case.operation.label)


def test_stateful(app: FastAPI) -> None:
    failures: list[BaseException] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            _upload_lists(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": app}

        def call(self, case: schemathesis.Case, **kwargs: Any) -> Any:
            try:
                return super().call(case, **kwargs)
            except Exception as exc:
                failures.append(exc)
                raise

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            cases["stateful"] += 1
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except Exception as exc:
                failures.append(exc)
                raise

    settings = hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS,
        stateful_step_count=STATEFUL_STEPS,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    for _ in range(MAX_STATEFUL_SUITES):
        try:
            Workflow.run(settings=settings)
        except hypothesis.errors.Flaky:
            if failures:
                raise failures[-1] from None
            # What a scenario can do depends on what earlier ones stored (links follow real answers), so
            # Hypothesis may find generation inconsistent and stop: start a new suite, as schemathesis' own
            # runner does.
            if cases["stateful"] < STATEFUL_MIN_STEPS:
                continue
        except Exception:
            # When the first step of a scenario fails, Hypothesis (6.170) trips over its own assertion while
            # printing the steps, which hides the failure: report the last one seen (the shrunk example's).
            if failures:
                raise failures[-1] from None
            raise
        break
    assert cases["stateful"] >= STATEFUL_MIN_STEPS, dict(cases)


def test_case_count() -> None:
    """At least 1,000 cases over the coverage, fuzzing and stateful phases (run after the tests above)."""
    total = sum(cases.values())
    print(f"\nschemathesis: {total} cases {dict(cases)} over {len(operations)} operations")
    if len(operations) < len(list(schema.get_all_operations())) or not cases["stateful"]:
        pytest.skip("only part of the schemathesis tests ran in this session")
    assert cases["coverage"] and cases["fuzzing"]
    assert total >= 1000, dict(cases)
