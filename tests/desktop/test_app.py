"""`facegate-desktop`, the installed console script, starts its window and keeps running (offscreen)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

COMMAND = str(Path(sys.executable).with_name("facegate-desktop"))


def test_the_command_starts_the_app(tmp_path: Path) -> None:
    # Its own settings directory: the developer's remembered server and key stay out of it.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    process = subprocess.Popen([COMMAND], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(4)  # long enough to import Qt, build the window and enter the event loop
        assert process.poll() is None, process.communicate()[0].decode(errors="replace")
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode(errors="replace")
    assert "Traceback" not in output, output
