"""Settings: defaults, one clear line per configuration problem naming the variable, unknown FACEGATE_* names."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from facegate.cli import app
from facegate.config import DlibEngineSettings, HNSWIndexSettings, Settings
from facegate.config_sources import SettingNames
from facegate.errors import ConfigurationError

runner = CliRunner()


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No FACEGATE_* variable of the developer's, no secrets directory of this machine, and a working directory
    whose .env is the test's own."""
    for name in list(os.environ):
        if name.upper().startswith("FACEGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FACEGATE_SECRETS_DIR", "")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems(**env: str) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(ConfigurationError) as raised:
            Settings()
    return raised.value.problems


def test_defaults_and_keyword_arguments_are_unchanged(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.port == 8000 and settings.engine.type == "fusion" and settings.index.type == "hnsw"
    assert settings.aws_secrets is None and settings.secrets_dir is None and not settings.allow_unknown_env

    custom = Settings(data_dir=tmp_path, workers=2, database={"url": "sqlite:///x.db", "auto_migrate": True})
    assert custom.database_url == "sqlite:///x.db" and custom.worker_count == 2 and custom.data_dir == tmp_path


def test_bad_values_are_one_line_each_naming_the_variable() -> None:
    assert problems(FACEGATE_PORT="abc", FACEGATE_ENGINE__TYPE="foo") == [
        "FACEGATE_PORT: input should be a valid integer, unable to parse string as an integer",
        "FACEGATE_ENGINE__TYPE: input should be 'opencv', 'dlib' or 'fusion'",
    ]
    # Inside a backend (the union's tag is not part of the variable name).
    assert problems(FACEGATE_ENGINE__TYPE="dlib", FACEGATE_ENGINE__DETECTOR="gpu") == [
        "FACEGATE_ENGINE__DETECTOR: input should be 'hog' or 'cnn'"
    ]
    assert problems(FACEGATE_BLOBS__TYPE="s3") == ["FACEGATE_BLOBS__BUCKET: required, not set"]
    assert problems(FACEGATE_AWS_SECRETS__REGION="eu-west-1") == ["FACEGATE_AWS_SECRETS__SECRET_ID: required, not set"]


def test_a_bad_keyword_argument_is_named_as_such() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings(port="abc")
    assert raised.value.problems == [
        "port (keyword argument): input should be a valid integer, unable to parse string as an integer"
    ]


def test_a_backend_section_without_type_means_the_default_backend_when_it_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACEGATE_INDEX__EF_SEARCH", "100")
    index = Settings().index
    assert isinstance(index, HNSWIndexSettings) and index.ef_search == 100
    # A setting only another backend has: choosing one would be a guess.
    assert problems(FACEGATE_BLOBS__BUCKET="photos") == [
        "FACEGATE_BLOBS__TYPE: required with FACEGATE_BLOBS__BUCKET; input should be 'files' or 's3'"
    ]
    monkeypatch.setenv("FACEGATE_ENGINE__TYPE", "dlib")
    monkeypatch.setenv("FACEGATE_ENGINE__DETECTOR", "cnn")
    engine = Settings().engine
    assert isinstance(engine, DlibEngineSettings) and engine.detector == "cnn"


def test_unknown_names_are_errors_with_a_suggestion() -> None:
    assert problems(FACEGATE_DATABSE__URL="postgresql+psycopg://db/x", FACEGATE_INDEX__TPYE="pgvector") == [
        "FACEGATE_DATABSE__URL: unknown setting, did you mean FACEGATE_DATABASE__URL?",
        "FACEGATE_INDEX__TPYE: unknown setting, did you mean FACEGATE_INDEX__TYPE?",
    ]
    assert problems(FACEGATE_ZZZ="1") == [
        "FACEGATE_ZZZ: unknown setting (if another program reads it, set FACEGATE_ALLOW_UNKNOWN_ENV=true)"
    ]
    # Together with invalid values: everything at once.
    assert problems(FACEGATE_PORT="abc", FACEGATE_WORKRES="2") == [
        "FACEGATE_WORKRES: unknown setting, did you mean FACEGATE_WORKERS?",
        "FACEGATE_PORT: input should be a valid integer, unable to parse string as an integer",
    ]


def test_known_names_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # A field of any member of a backend union counts; so do whole sections as JSON and variables that tests
    # and benchmarks read themselves.
    monkeypatch.setenv("FACEGATE_ENGINE__TYPE", "opencv")
    monkeypatch.setenv("FACEGATE_ENGINE__DETECTOR", "cnn")
    monkeypatch.setenv("FACEGATE_DATABASE", '{"url": "sqlite:///j.db"}')
    monkeypatch.setenv("FACEGATE_DEV_FACES", "/somewhere")
    monkeypatch.setenv("facegate_workers", "3")  # names are case-insensitive
    settings = Settings()
    assert settings.database.url == "sqlite:///j.db" and settings.workers == 3


def test_setting_names_walk_nested_models_unions_and_dicts() -> None:
    class A(BaseModel):
        type: str = "a"
        alpha: int = 0

    class B(BaseModel):
        type: str = "b"
        beta: int = 0

    class Inner(BaseModel):
        choice: A | B = Field(default_factory=A)
        labels: dict[str, str] = Field(default_factory=dict)

    class Outer(BaseModel):
        inner: Inner = Field(default_factory=Inner)
        plain: int = 0

    names = SettingNames(Outer)
    for known in ("FACEGATE_INNER", "FACEGATE_INNER__CHOICE__ALPHA", "FACEGATE_INNER__CHOICE__BETA"):
        assert known in names
    assert "FACEGATE_INNER__LABELS__ANY_KEY" in names and "FACEGATE_PLAIN" in names
    assert "FACEGATE_INNER__GAMMA" not in names and "FACEGATE_PLAIN__X" not in names
    assert names.suggestion("FACEGATE_INNER__CHOICE__BETTA") == "FACEGATE_INNER__CHOICE__BETA"


def test_allow_unknown_env_downgrades_to_warnings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FACEGATE_ALLOW_UNKNOWN_ENV", "true")
    monkeypatch.setenv("FACEGATE_DATABSE__URL", "postgresql+psycopg://db/x")
    with caplog.at_level(logging.WARNING, logger="facegate.config_sources"):
        settings = Settings()
    assert settings.allow_unknown_env and settings.database.url == ""
    assert caplog.messages == ["ignored FACEGATE_DATABSE__URL: unknown setting, did you mean FACEGATE_DATABASE__URL?"]
    # Invalid values stay errors.
    assert problems(FACEGATE_PORT="abc") == [
        "FACEGATE_PORT: input should be a valid integer, unable to parse string as an integer"
    ]


def test_dotenv_values_and_names_are_checked_too(workdir: Path) -> None:
    (workdir / ".env").write_text(
        "FACEGATE_WORKERS=3\nCOMPOSE_PROJECT_NAME=other\nFACEGATE_INDX__TYPE=hnsw\nFACEGATE_DATABASE__URL_FILE=/x\n"
    )
    assert problems() == [
        "FACEGATE_INDX__TYPE (from .env): unknown setting, did you mean FACEGATE_INDEX__TYPE?",
        "FACEGATE_DATABASE__URL_FILE (from .env): *_FILE variables are read from the environment only; "
        "set FACEGATE_DATABASE__URL here",
    ]
    (workdir / ".env").write_text("FACEGATE_WORKERS=3\nCOMPOSE_PROJECT_NAME=other\nFACEGATE_PORT=eighty\n")
    assert problems() == [
        "FACEGATE_PORT (from .env): input should be a valid integer, unable to parse string as an integer"
    ]
    (workdir / ".env").write_text("FACEGATE_WORKERS=3\n")
    assert Settings().workers == 3


def test_every_command_reports_configuration_errors_in_one_line_each_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACEGATE_ENGINE__TYPE", "foo")
    monkeypatch.setenv("FACEGATE_DATABSE__URL", "sqlite:///x.db")
    expected = [
        "error: FACEGATE_DATABSE__URL: unknown setting, did you mean FACEGATE_DATABASE__URL?",
        "error: FACEGATE_ENGINE__TYPE: input should be 'opencv', 'dlib' or 'fusion'",
    ]
    for command in (["serve"], ["migrate"], ["purge"], ["people", "list"], ["identify", __file__]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert result.output.splitlines() == expected, command


def test_the_installed_command_prints_no_traceback(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FACEGATE_")}
    env.update(FACEGATE_PORT="abc", FACEGATE_SECRETS_DIR="", FACEGATE_DATA_DIR=str(workdir / "data"))
    facegate = Path(sys.executable).parent / "facegate"
    done = subprocess.run([str(facegate), "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: FACEGATE_PORT: input should be a valid integer, unable to parse string as an integer"
    ]
    assert done.stdout == ""
