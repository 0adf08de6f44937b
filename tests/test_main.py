"""The `facegate` command's entry (facegate/__main__.py): the installed console script and `python -m facegate` run
the command line, and re-running the script as a spawned process's main module (what multiprocessing does in
every engine worker) imports nothing of it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("facegate")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


def test_the_console_script_is_the_lazy_entry() -> None:
    (script,) = entry_points(group="console_scripts", name="facegate")
    assert script.value == "facegate.__main__:main"


def test_the_console_script_and_python_m_run_the_command_line() -> None:
    for command in ([str(SCRIPT), "--help"], [sys.executable, "-m", "facegate", "--help"]):
        done = _run(*command)
        assert done.returncode == 0, done.stderr
        assert "Usage: facegate" in done.stdout
        assert "serve" in done.stdout


def test_a_spawned_process_rerunning_the_script_imports_no_command_line() -> None:
    # multiprocessing's spawn runs the parent's main module again in each child: runpy.run_path(path,
    # run_name="__mp_main__") (multiprocessing.spawn._fixup_main_from_path). The console script is that module.
    probe = textwrap.dedent(
        f"""
        import runpy, sys
        runpy.run_path({str(SCRIPT)!r}, run_name="__mp_main__")
        heavy = ("facegate.cli", "facegate.services", "sqlalchemy", "typer", "rich")
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    done = _run(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
