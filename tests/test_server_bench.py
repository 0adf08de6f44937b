"""`facegate bench URL PHOTOS`: the thin client-side benchmark, against a stand-in server on a real socket (what it
sends, how it counts; no timing is asserted)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from facegate.cli import app

runner = CliRunner()
KEY = "k-123"


class _StandIn(BaseHTTPRequestHandler):
    """Answers identify and enroll like facegate does; records what it was sent."""

    seen: list[tuple[str, str | None, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers.get("X-API-Key"), body))
        if self.headers.get("X-API-Key") != KEY:
            self._answer(401, {"error": {"code": "unauthorized", "message": "no"}})
        elif self.path == "/api/v1/identify":
            match = {"person_id": "p1", "name": "ann", "distance": 0.2, "confidence": 0.9}
            self._answer(200, {"faces": [{"box": {}, "match": match, "candidates": []}]})
        elif self.path == "/api/v1/enroll":
            self._answer(201, {"person": {"id": "p1"}, "faces": [{"id": "f1"}], "rejected": []})
        else:
            self._answer(404, {"error": {"code": "not_found", "message": "no"}})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def stand_in() -> Iterator[tuple[str, list[tuple[str, str | None, bytes]]]]:
    seen: list[tuple[str, str | None, bytes]] = []
    handler = type("Handler", (_StandIn,), {"seen": seen, "protocol_version": "HTTP/1.1"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _photos(root: Path) -> Path:
    for rel in ("a.jpg", "sub/b.png", "notes.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"photo " + rel.encode())
    return root


def test_bench_reports_rate_latency_and_answers(
    tmp_path: Path, stand_in: tuple[str, list[tuple[str, str | None, bytes]]]
) -> None:
    url, seen = stand_in
    photos = _photos(tmp_path / "photos")
    args = ["bench", url, str(photos), "--api-key", KEY, "--requests", "7", "--warmup", "2", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["requests"] == 7 and report["photos"] == 2  # notes.txt is not a photo
    assert report["statuses"] == {"200": 7}
    assert report["faces"] == 7 and report["matched"] == 7
    assert report["images_per_s"] > 0
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "mean", "max"}
    assert len(seen) == 9  # 2 warm-up + 7 timed
    assert all(path == "/api/v1/identify" and key == KEY for path, key, _ in seen)
    # Both photos are sent, each as the multipart field "image" with its own bytes (which request carries which
    # depends on the two clients' timing).
    for name in (b"a.jpg", b"b.png"):
        assert any(b'name="image"; filename="' + name + b'"' in body and name in body for _, _, body in seen)


def test_bench_enrolls_a_gallery_first(
    tmp_path: Path, stand_in: tuple[str, list[tuple[str, str | None, bytes]]]
) -> None:
    url, seen = stand_in
    photos = _photos(tmp_path / "photos")
    gallery = tmp_path / "gallery"
    for person in ("ann", "bob"):
        (gallery / person).mkdir(parents=True)
        (gallery / person / "1.jpg").write_bytes(b"x")
        (gallery / person / "2.jpg").write_bytes(b"y")
    result = runner.invoke(app, ["bench", url, str(photos), "--api-key", KEY, "--enroll", str(gallery), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["enroll"]["people"] == 2 and report["enroll"]["failed"] == {}
    enrolls = [body for path, _, body in seen if path == "/api/v1/enroll"]
    assert len(enrolls) == 2
    assert b'name="name"\r\n\r\nann\r\n' in enrolls[0] and enrolls[0].count(b'name="image"') == 2


def test_bench_says_when_the_key_is_refused(
    tmp_path: Path, stand_in: tuple[str, list[tuple[str, str | None, bytes]]]
) -> None:
    url, _ = stand_in
    result = runner.invoke(app, ["bench", url, str(_photos(tmp_path / "photos")), "--api-key", "wrong"])
    assert result.exit_code == 1
    assert "unauthorized" in result.output


def test_bench_says_when_the_server_is_unreachable(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "http://127.0.0.1:9", str(_photos(tmp_path / "photos"))])
    assert result.exit_code == 1
    assert "server_unreachable" in result.output
