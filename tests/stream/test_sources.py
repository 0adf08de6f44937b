"""stream.sources: files, a real HTTP (MJPEG) stream that drops and reconnects, the bounded drop-oldest queue,
and clear errors for sources that cannot be opened."""

from __future__ import annotations

import http.server
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.services.streams import URL_SCHEMES
from facegate.services.streams import check_source as check_stream_source
from facegate.stream.sources import DropOldestQueue, Frame, SourceError, open_source, source_kind

CROWD_FRAMES = 105  # video.csv
CROWD_FPS = 25.0


def frame(index: int) -> Frame:
    return Frame(image=np.zeros((2, 2, 3), np.uint8), index=index, ts=index / 25, captured=time.monotonic())


def test_a_full_live_queue_drops_the_oldest_frames_and_counts_them() -> None:
    queue = DropOldestQueue(3, drop_oldest=True)
    stop = threading.Event()
    for i in range(10):
        queue.put(frame(i), stop)  # never blocks
    assert len(queue) == 3
    assert queue.dropped == 7
    got = [queue.get(timeout=0.1) for _ in range(3)]
    assert [f.index for f in got if f] == [7, 8, 9]
    assert queue.get(timeout=0.01) is None


def test_a_file_queue_waits_for_room_instead_of_dropping() -> None:
    queue = DropOldestQueue(2, drop_oldest=False)
    stop = threading.Event()
    queue.put(frame(0), stop)
    queue.put(frame(1), stop)
    writer = threading.Thread(target=queue.put, args=(frame(2), stop))
    writer.start()
    time.sleep(0.2)
    assert writer.is_alive()  # blocked: the queue is full
    first = queue.get(timeout=1)
    writer.join(timeout=2)
    assert not writer.is_alive()
    assert first is not None and first.index == 0
    assert queue.dropped == 0
    queue.close()
    assert [f.index for f in iter(lambda: queue.get(0.01), None)] == [1, 2]
    assert queue.closed


def test_kinds_of_sources() -> None:
    assert source_kind("0") == "camera"
    assert source_kind("rtsp://cam.local/stream") == "network"
    assert source_kind("HTTP://cam.local/video.mjpg") == "network"
    assert source_kind("/videos/door.mp4") == "file"


def test_every_scheme_the_streams_api_accepts_is_read_as_a_network_source() -> None:
    """One list of live-video schemes (services.streams.URL_SCHEMES) for the API's check and the reader."""
    for scheme in URL_SCHEMES:
        source = f"{scheme}://cam.local/stream"
        assert check_stream_source(source) == source
        assert source_kind(source) == "network"


def test_a_file_gives_every_frame_with_media_timestamps(dev: Path) -> None:
    video = open_source(str(dev / "video" / "crowd_walking.mp4"))
    assert not video.live
    assert (video.width, video.height, video.fps) == (1920, 1080, CROWD_FPS)
    frames = list(video.frames(threading.Event()))
    video.close()
    assert len(frames) == CROWD_FRAMES
    assert [f.index for f in frames] == list(range(CROWD_FRAMES))
    assert frames[0].ts == 0.0
    assert frames[-1].ts == pytest.approx((CROWD_FRAMES - 1) / CROWD_FPS, abs=0.01)
    assert all(b.ts > a.ts for a, b in itertools.pairwise(frames))
    assert video.state == "ended" and video.dropped == 0


def test_a_looped_file_goes_on_with_increasing_timestamps(dev: Path) -> None:
    video = open_source(str(dev / "video" / "crowd_walking.mp4"), loop=True)
    stop = threading.Event()
    frames = []
    for f in video.frames(stop):
        frames.append(f.ts)
        if len(frames) == 2 * CROWD_FRAMES + 10:
            stop.set()
    video.close()
    assert len(frames) == 2 * CROWD_FRAMES + 10
    assert all(b > a for a, b in itertools.pairwise(frames))
    assert frames[CROWD_FRAMES] == pytest.approx(CROWD_FRAMES / CROWD_FPS, abs=0.01)


def test_a_file_played_in_real_time_is_paced_and_drops_for_a_slow_reader(dev: Path) -> None:
    video = open_source(str(dev / "video" / "crowd_walking.mp4"), realtime=True, queue_size=2)
    assert video.live
    started = time.monotonic()
    seen = []
    for f in video.frames(threading.Event()):
        seen.append(f)
        time.sleep(0.1)  # a reader at ~10 fps behind a 25 fps source
    elapsed = time.monotonic() - started
    video.close()
    assert elapsed >= 4.0  # the clip lasts 4.2 s
    assert video.dropped > 0
    assert len(seen) + video.dropped == CROWD_FRAMES
    # The newest frames win: the last frame of the clip is among those seen.
    assert seen[-1].index == CROWD_FRAMES - 1


def test_missing_file_and_unopenable_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as missing:
        open_source(str(tmp_path / "nope.mp4"))
    assert missing.value.code == "source_not_found"
    assert "nope.mp4" in missing.value.message

    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    with pytest.raises(SourceError) as garbage:
        open_source(str(not_video))
    assert garbage.value.code == "source_unopenable"

    with pytest.raises(SourceError) as refused:  # nothing listens on port 9 (discard) here
        open_source("rtsp://127.0.0.1:9/stream", open_timeout_seconds=2)
    assert refused.value.code == "source_unopenable"


@pytest.fixture
def mjpeg_server(dev: Path) -> Iterator[tuple[str, list[int]]]:
    """A real HTTP MJPEG camera that sends 15 frames per connection and then hangs up."""
    capture = cv2.VideoCapture(str(dev / "video" / "short_hamilton_clip.mp4"))
    jpegs = [cv2.imencode(".jpg", capture.read()[1])[1].tobytes() for _ in range(15)]
    capture.release()
    connections: list[int] = []

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            connections.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpeg in jpegs:
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                self.wfile.write(head + jpeg + b"\r\n")
                time.sleep(0.02)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg", connections
    server.shutdown()
    server.server_close()


def test_a_dropped_network_stream_reconnects(mjpeg_server: tuple[str, list[int]]) -> None:
    url, connections = mjpeg_server
    video = open_source(url, open_timeout_seconds=3, reconnect_initial_seconds=0.1, queue_size=64)
    assert video.live and video.kind == "network"
    stop = threading.Event()
    frames = []
    for f in video.frames(stop):
        frames.append(f)
        if len(frames) >= 40:
            stop.set()
    video.close()
    assert len(connections) >= 3  # 15 frames per connection: it came back twice
    assert video.reconnects >= 2
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(b.ts >= a.ts for a, b in itertools.pairwise(frames))
