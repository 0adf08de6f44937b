"""The desktop app driven as a person uses it (typing, clicking, confirming), offscreen, against a real server:
connect, enroll real photos, identify with names drawn on the photo, search and delete people, and the errors
a user meets. Screenshots of the main screens are saved (see conftest)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt, QTimer
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMessageBox

from facegate_desktop.camera import CameraDialog
from facegate_desktop.client import Box, FacegateClient
from facegate_desktop.enroll_page import THUMB
from facegate_desktop.photo import KNOWN, UNKNOWN, decode
from facegate_desktop.window import MainWindow
from tests.desktop.conftest import MAX_IMAGE_PIXELS, SLOW_S, connect, wait_until
from tests.e2e.conftest import ADMIN_KEY, Server, files_deployment, free_port, module_processes


def texts(win: MainWindow) -> list[str]:
    faces = win.identify_page.faces
    return [faces.item(i).text() for i in range(faces.count())]


def banner(win: MainWindow) -> tuple[str, str]:
    return (win.banner.text(), str(win.banner.property("kind"))) if win.banner.isVisible() else ("", "")


def near(color: QColor, expected: QColor) -> bool:
    return all(abs(a - b) <= 40 for a, b in zip(color.getRgb()[:3], expected.getRgb()[:3], strict=True))


def edge_color(image: QImage, box: Box, scale: float) -> QColor:
    """The colour drawn on the middle of a face box's left edge."""
    return image.pixelColor(round(box.left * scale), round((box.top + box.height / 2) * scale))


def identify_file(win: MainWindow, path: Path) -> None:
    win.tabs.setCurrentWidget(win.identify_page)
    win.identify_page.open_file(path)
    wait_until(lambda: win.session.runner.idle(), what=f"identify of {path.name}")


def enroll_files(win: MainWindow, name: str, paths: list[Path]) -> None:
    page = win.enroll_page
    win.tabs.setCurrentWidget(page)
    page.name.setText(name)
    page.add_files(paths)
    assert page.enroll_button.isEnabled()
    page.enroll_button.click()
    wait_until(lambda: page.result is not None or banner(win)[1] == "error", what=f"enroll of {name}")
    wait_until(lambda: win.session.runner.idle(), what="the people list after enroll")


@pytest.fixture
def people(api: FacegateClient) -> Iterator[list[str]]:
    """Names a test enrolls (unique to the test); whoever is left is deleted after it."""
    names: list[str] = []
    yield names
    for name in names:
        for person in api.people(name=name).items:
            api.delete_person(person.id)


def test_connect_enroll_identify_search_and_delete(
    window: MainWindow,
    server: Server,
    api: FacegateClient,
    identities: dict[str, list[Path]],
    dev: Path,
    screenshot_dir: Path,
    people: list[str],
) -> None:
    # Plain names (the screenshots are the README's): no other test of this server enrolls them.
    obama, biden = "Barack Obama", "Joe Biden"
    people += [obama, biden]
    noface = sorted((dev / "noface").glob("*.jpg"))[0]

    connect(window, server.url)
    assert window.session.key is not None and "bootstrap admin" in window.status.text()
    assert banner(window) == ("", "")

    enroll_files(window, obama, [*identities["barack_obama"][:3], noface])
    assert banner(window) == (f"Enrolled {obama}: 3 face(s) taken, 1 refused.", "info")
    items = [window.enroll_page.list.item(i).text() for i in range(window.enroll_page.list.count())]
    assert items[:3] == [f"✓ {p.name}" for p in identities["barack_obama"][:3]]
    assert items[3] == f"✗ {noface.name}: no face was found in this photo"
    window.grab().save(str(screenshot_dir / "desktop-enroll.png"))
    enroll_files(window, biden, identities["joe_biden"][:2])
    assert [(p.name, p.face_count) for p in api.people(name=obama).items] == [(obama, 3)]
    assert [(p.name, p.face_count) for p in api.people(name=biden).items] == [(biden, 2)]
    # The enrolled photos' thumbnails show the face that was taken.
    thumb = window.enroll_page.list.item(0).icon().pixmap(THUMB).toImage()
    first, enrolled = window.enroll_page.photos[0], window.enroll_page.result
    assert enrolled is not None
    face = next(f for f in enrolled.faces if f.filename == first.filename)
    full = decode(first.data)
    assert near(edge_color(thumb, face.box, thumb.width() / full.width()), KNOWN)

    # Identify a group photo: both named in the list and on the photo, the third face unknown.
    identify_file(window, dev / "multi" / "obama_and_biden.jpg")
    result = window.identify_page.result
    assert result is not None
    lines = texts(window)
    assert len(lines) == len(result.faces) == 3
    assert {line.split(":")[0].split(". ", 1)[1] for line in lines} == {obama, biden, "unknown"}
    image = window.identify_page.view.image()
    scale = image.width() / result.width
    for face in result.faces:
        assert near(edge_color(image, face.box, scale), KNOWN if face.match else UNKNOWN), face
    # Click Obama's face on the photo: chosen in the list, his box drawn thicker, his nearest people shown.
    view = window.identify_page.view
    target = view.image_rect()
    n = next(i for i, f in enumerate(result.faces) if f.match and f.match.name == obama)
    box = result.faces[n].box
    shown = target.width() / result.width
    centre = QPoint(
        target.left() + round((box.left + box.width / 2) * shown),
        target.top() + round((box.top + box.height / 2) * shown),
    )
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    assert window.identify_page.faces.currentRow() == n
    details = window.identify_page.details.text()
    assert details.startswith(f"Face {n + 1}, nearest people:\n{obama}: ") and biden in details
    thick = view.image()
    inside = round(box.left * scale) + max(2, round(max(thick.width(), thick.height()) / 300)) + 1
    assert near(thick.pixelColor(inside, round((box.top + box.height / 2) * scale)), KNOWN)
    window.grab().save(str(screenshot_dir / "desktop-identify.png"))

    # People: everyone, then a search; delete, cancelling first.
    page = window.people_page
    window.tabs.setCurrentWidget(page)
    wait_until(lambda: window.session.runner.idle() and page.page is not None, what="the people list")
    assert {obama, biden} <= {page.table.item(r, 0).text() for r in range(page.table.rowCount())}
    window.grab().save(str(screenshot_dir / "desktop-people.png"))
    page.search.setText("biden")
    wait_until(lambda: page.query == "biden" and window.session.runner.idle(), what="the search")
    assert [page.table.item(r, 0).text() for r in range(page.table.rowCount())] == [biden]
    assert page.range_label.text() == "1 to 1 of 1"
    page.table.selectRow(0)
    assert page.delete_button.isEnabled()

    answer_next_dialog(QMessageBox.StandardButton.Cancel)
    page.delete_button.click()
    wait_until(lambda: window.session.runner.idle())
    assert api.people(name=biden).total == 1

    answer_next_dialog(QMessageBox.StandardButton.Yes)
    page.delete_button.click()
    wait_until(lambda: api.people(name=biden).total == 0 and window.session.runner.idle(), what="the delete")
    assert banner(window) == (f"Deleted {biden}.", "info")
    assert page.table.rowCount() == 0 and page.range_label.text() == "Nobody matches this search."
    assert api.people(name=obama).total == 1


def answer_next_dialog(button: QMessageBox.StandardButton) -> None:
    """Click `button` in the confirmation box the next click opens (it runs its own event loop)."""

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        assert "cannot be undone" in box.informativeText()
        box.button(button).click()

    QTimer.singleShot(0, answer)


def test_a_bad_key_shows_an_error_and_enables_nothing(window: MainWindow, server: Server, screenshot_dir: Path) -> None:
    connect(window, server.url, "fg_wrong-key-0000000000000000000000000")
    assert banner(window) == ("This API key is not valid: it is unknown, revoked or expired.", "error")
    assert window.session.client is None and window.status.text().startswith("Not connected")
    assert not any(page.isEnabled() for page in (window.identify_page, window.enroll_page, window.people_page))
    window.grab().save(str(screenshot_dir / "desktop-bad-key.png"))


def test_a_key_revoked_while_connected_disconnects(window: MainWindow, server: Server, dev: Path) -> None:
    with server.client() as admin:
        created = admin.post("/api/v1/keys", json={"name": "temp", "scopes": ["identify", "read"]}).json()
    connect(window, server.url, created["secret"])
    assert window.identify_page.isEnabled()
    with server.client() as admin:
        assert admin.delete(f"/api/v1/keys/{created['key']['id']}").status_code == 204
    identify_file(window, dev / "multi" / "obama_and_biden.jpg")
    assert banner(window) == ("This API key is not valid: it is unknown, revoked or expired.", "error")
    assert window.session.client is None and window.status.text().startswith("Not connected")
    assert not window.identify_page.isEnabled()


def test_no_server_at_the_address_says_so(window: MainWindow) -> None:
    connect(window, f"http://127.0.0.1:{free_port()}")
    text, kind = banner(window)
    assert kind == "error" and text.startswith("The server could not be reached.")


def test_a_key_without_scopes_for_a_page_disables_it(window: MainWindow, server: Server) -> None:
    with server.client() as admin:
        secret = admin.post("/api/v1/keys", json={"name": "kiosk", "scopes": ["identify"]}).json()["secret"]
    connect(window, server.url, secret)
    assert window.identify_page.isEnabled()
    assert not window.enroll_page.isEnabled() and not window.people_page.isEnabled()
    assert window.tabs.tabToolTip(window.tabs.indexOf(window.enroll_page)) == "Your key has no “enroll” scope"


def test_a_photo_without_faces_and_a_huge_photo(window: MainWindow, server: Server, dev: Path, tmp_path: Path) -> None:
    connect(window, server.url)
    identify_file(window, sorted((dev / "noface").glob("*.jpg"))[0])
    assert texts(window) == ["No face was found in this photo."] and banner(window) == ("", "")

    huge = tmp_path / "huge.jpg"
    cv2.imwrite(str(huge), np.zeros((3000, MAX_IMAGE_PIXELS // 3000 + 100, 3), np.uint8))
    identify_file(window, huge)
    text, kind = banner(window)
    assert kind == "error" and ("too many pixels" in text.lower() or "too large" in text.lower()), text
    assert texts(window) == [] and window.identify_page.open_button.isEnabled()


def test_the_window_stays_live_while_the_server_works(
    window: MainWindow, server: Server, identities: dict[str, list[Path]]
) -> None:
    connect(window, server.url)
    ticks: list[int] = []
    timer = QTimer(interval=10)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    window.identify_page.open_file(max(identities["barack_obama"], key=lambda p: p.stat().st_size))
    # The request is on a worker thread: the progress shows and the event loop keeps turning meanwhile.
    assert window.progress.isVisible() and window.busy.text().startswith("Identifying")
    assert not window.identify_page.open_button.isEnabled()
    wait_until(lambda: window.session.runner.idle())
    timer.stop()
    assert len(ticks) >= 3
    assert not window.progress.isVisible() and window.identify_page.result is not None


def use_camera(take: bool) -> None:
    """In the camera dialog the next click opens: wait for the picture, then take it (or cancel). A dialog
    with no picture after SLOW_S is cancelled, so the test fails rather than hangs."""
    deadline = time.monotonic() + SLOW_S

    def act() -> None:
        dialog = QApplication.activeModalWidget()
        waiting = take and isinstance(dialog, CameraDialog) and not dialog.take_button.isEnabled()
        if isinstance(dialog, CameraDialog) and waiting and time.monotonic() > deadline:
            dialog.reject()
            return
        if not isinstance(dialog, CameraDialog) or waiting:
            QTimer.singleShot(20, act)
            return
        (dialog.take_button if take else dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel)).click()

    QTimer.singleShot(0, act)


def test_a_camera_photo_is_identified_and_enrolled(window: MainWindow, server: Server, dev: Path) -> None:
    # No webcam here: OpenCV reads a video file through the same VideoCapture a camera index uses.
    connect(window, server.url)
    clip = str(dev / "video" / "short_hamilton_clip.mp4")
    window.identify_page.camera_source = window.enroll_page.camera_source = clip
    use_camera(take=True)
    window.identify_page.camera_button.click()
    wait_until(lambda: window.session.runner.idle(), what="identify of the camera photo")
    photo = window.identify_page.photo
    assert photo is not None and photo.filename.startswith("camera-") and photo.data[:2] == b"\xff\xd8"
    assert window.identify_page.result is not None and banner(window) == ("", "")

    window.tabs.setCurrentWidget(window.enroll_page)
    use_camera(take=False)
    window.enroll_page.camera_button.click()
    assert window.enroll_page.photos == []  # cancelled: nothing added
    use_camera(take=True)
    window.enroll_page.camera_button.click()
    assert [p.filename for p in window.enroll_page.photos] == [window.enroll_page.list.item(0).text()]


def test_the_connection_is_remembered_and_the_key_only_when_asked(
    qapp: QApplication, server: Server, settings_file: Path
) -> None:
    for remember in (True, False):
        first = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat))
        first.remember.setChecked(remember)
        connect(first, server.url)
        assert first.session.key is not None
        first.close()
        assert (settings_file.stat().st_mode & 0o777) == 0o600
        second = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat))
        assert second.url.text() == server.url
        assert second.key.text() == (ADMIN_KEY if remember else "")
        assert (ADMIN_KEY in settings_file.read_text()) is remember
        second.close()


def test_rate_limited_says_when_to_try_again(
    request: pytest.FixtureRequest, window: MainWindow, tmp_path: Path
) -> None:
    processes = module_processes(request, tmp_path / "logs")
    deployment = files_deployment(
        tmp_path / "data", FACEGATE_RATE_LIMIT__DEFAULT="1/minute", FACEGATE_ENGINE__TYPE="opencv"
    )
    try:
        limited = processes.start_server("desktop-limited", deployment.env)
        # Counted per key and scope: the key check (any scope) and the people list (read) take this minute's one.
        connect(window, limited.url)
        assert window.session.key is not None
        window.people_page.refresh_button.click()
        wait_until(lambda: window.session.runner.idle())
        text, kind = banner(window)
        assert kind == "error" and text.startswith("Too many requests. Try again in "), text
    finally:
        processes.close()
