"""Secrets: *_FILE variables, the secrets directory, AWS Secrets Manager (a real moto server), and precedence."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from facegate import config_sources
from facegate.cli import app
from facegate.config import Settings
from facegate.errors import ConfigurationError

runner = CliRunner()
DB_URL = "postgresql+psycopg://facegate:s3cret-pw@db.internal/facegate"


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


@pytest.fixture
def secret(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Points the settings at a new AWS Secrets Manager secret on the session's moto server; the test puts its
    SecretString with `put`."""
    name = f"facegate/test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("FACEGATE_AWS_SECRETS__SECRET_ID", name)
    monkeypatch.setenv("FACEGATE_AWS_SECRETS__ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("FACEGATE_AWS_SECRETS__REGION", "us-east-1")
    return {"name": name, "endpoint": s3_endpoint}


def put(secret: dict[str, str], value: object) -> None:
    client = boto3.session.Session().client("secretsmanager", endpoint_url=secret["endpoint"], region_name="us-east-1")
    text = value if isinstance(value, str) else json.dumps(value)
    client.create_secret(Name=secret["name"], SecretString=text)


def problems() -> list[str]:
    with pytest.raises(ConfigurationError) as raised:
        Settings()
    return raised.value.problems


# --- AWS Secrets Manager ---------------------------------------------------------------------------------------


def test_database_url_from_an_aws_secret_merges_with_the_environment(
    secret: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    put(secret, {"FACEGATE_DATABASE__URL": DB_URL, "FACEGATE_WORKERS": 3, "FACEGATE_IDENTIFY": {"top_k": 7}})
    monkeypatch.setenv("FACEGATE_DATABASE__POOL_SIZE", "20")
    settings = Settings()
    assert settings.database.url == DB_URL and settings.database.pool_size == 20
    assert settings.workers == 3 and settings.identify.top_k == 7
    assert settings.aws_secrets is not None and settings.aws_secrets.secret_id == secret["name"]


def test_the_environment_beats_the_secret_and_the_secret_beats_dotenv(
    secret: dict[str, str], monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    put(secret, {"FACEGATE_DATABASE__URL": DB_URL, "FACEGATE_PORT": "9001"})
    (workdir / ".env").write_text("FACEGATE_PORT=9002\nFACEGATE_HOST=0.0.0.0\n")
    monkeypatch.setenv("FACEGATE_DATABASE__URL", "sqlite:///from-env.db")
    settings = Settings()
    assert settings.database.url == "sqlite:///from-env.db"
    assert settings.port == 9001 and settings.host == "0.0.0.0"


def test_a_missing_secret_is_one_clear_error(secret: dict[str, str]) -> None:
    assert problems() == [
        f"FACEGATE_AWS_SECRETS__SECRET_ID: cannot read the AWS secret {secret['name']!r}: no such secret in this "
        "account and region: check the name or ARN and FACEGATE_AWS_SECRETS__REGION"
    ]
    result = runner.invoke(app, ["people", "list"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: {problems()[0]}"]


def test_a_secret_that_is_not_a_json_object_is_reported_without_its_value(secret: dict[str, str]) -> None:
    put(secret, DB_URL)
    [line] = problems()
    assert line.startswith(f"FACEGATE_AWS_SECRETS__SECRET_ID: the AWS secret {secret['name']!r} is not a JSON object")
    assert "s3cret-pw" not in line


def test_bad_values_and_unknown_names_in_the_secret_name_it_without_the_value(secret: dict[str, str]) -> None:
    put(secret, {"FACEGATE_PORT": "s3cret-pw", "FACEGATE_DATABSE__URL": DB_URL})
    where = f"(from the AWS secret {secret['name']!r})"
    assert problems() == [
        f"FACEGATE_DATABSE__URL {where}: unknown setting, did you mean FACEGATE_DATABASE__URL?",
        f"FACEGATE_PORT {where}: input should be a valid integer, unable to parse string as an integer",
    ]


def test_an_unreachable_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("FACEGATE_AWS_SECRETS__SECRET_ID", "facegate/prod")
    monkeypatch.setenv("FACEGATE_AWS_SECRETS__ENDPOINT_URL", url)
    monkeypatch.setenv("FACEGATE_AWS_SECRETS__REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    [line] = problems()
    assert line.startswith(
        "FACEGATE_AWS_SECRETS__SECRET_ID: cannot read the AWS secret 'facegate/prod': cannot connect"
    )
    assert "FACEGATE_AWS_SECRETS__ENDPOINT_URL" in line


# --- *_FILE variables and the secrets directory ------------------------------------------------------------------


def test_a_file_variable_supplies_a_nested_field(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "db_url").write_text(DB_URL + "\n")
    monkeypatch.setenv("FACEGATE_DATABASE__URL_FILE", str(workdir / "db_url"))
    assert Settings().database.url == DB_URL


def test_file_variable_problems_name_the_variable(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEGATE_DATABASE__URL_FILE", str(workdir / "missing"))
    monkeypatch.setenv("FACEGATE_DATABSE__URL_FILE", str(workdir / "also-missing"))  # the typo is the problem
    assert problems() == [
        f"FACEGATE_DATABASE__URL_FILE: cannot read {workdir / 'missing'}: no such file; mount the secret there, "
        "fix the path, or unset it",
        f"FACEGATE_DATABSE__URL_FILE (from {workdir / 'also-missing'} via FACEGATE_DATABSE__URL_FILE): unknown "
        "setting FACEGATE_DATABSE__URL, did you mean FACEGATE_DATABASE__URL_FILE?",
    ]
    monkeypatch.setenv("FACEGATE_DATABASE__URL_FILE", str(workdir))
    assert problems()[0].startswith(f"FACEGATE_DATABASE__URL_FILE: cannot read {workdir}: not a regular file;")


def test_the_secrets_directory_supplies_variables_by_file_name(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = workdir / "secrets"
    secrets.mkdir()
    (secrets / "FACEGATE_DATABASE__URL").write_text(DB_URL + "\n")
    (secrets / "FACEGATE_INDEX__TYPE").write_text("pgvector")
    (secrets / "postgres_password").write_text("not ours")  # other programs' secrets are left alone
    (secrets / "..data").mkdir()  # Kubernetes' bookkeeping
    monkeypatch.setenv("FACEGATE_SECRETS_DIR", str(secrets))
    settings = Settings()
    assert settings.database.url == DB_URL and settings.index.type == "pgvector"

    (secrets / "FACEGATE_INDEX__TPYE").write_text("hnsw")
    assert problems() == [
        f"FACEGATE_INDEX__TPYE (from {secrets / 'FACEGATE_INDEX__TPYE'}): unknown setting, "
        "did you mean FACEGATE_INDEX__TYPE?"
    ]


def test_the_default_secrets_directory_is_used_when_it_exists(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEGATE_SECRETS_DIR")
    monkeypatch.setattr(config_sources, "DEFAULT_SECRETS_DIR", workdir / "run-secrets")
    assert Settings().port == 8000  # absent: nothing to read, no error
    (workdir / "run-secrets").mkdir()
    (workdir / "run-secrets" / "FACEGATE_PORT").write_text("9100\n")
    assert Settings().port == 9100
    monkeypatch.setenv("FACEGATE_SECRETS_DIR", "")  # empty: no secrets directory at all
    assert Settings().port == 8000


def test_a_configured_secrets_directory_must_exist(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEGATE_SECRETS_DIR", str(workdir / "nope"))
    assert problems() == [
        f"FACEGATE_SECRETS_DIR: {workdir / 'nope'} is not a directory; create it, fix the path, or unset the variable"
    ]


def test_where_secrets_are_is_itself_read_from_files_and_dotenv(
    secret: dict[str, str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(secret, {"FACEGATE_DATABASE__URL": DB_URL})
    (workdir / "secret_id").write_text(secret["name"] + "\n")
    monkeypatch.delenv("FACEGATE_AWS_SECRETS__SECRET_ID")
    monkeypatch.setenv("FACEGATE_AWS_SECRETS__SECRET_ID_FILE", str(workdir / "secret_id"))
    assert Settings().database.url == DB_URL

    secrets = workdir / "secrets"
    secrets.mkdir()
    (secrets / "FACEGATE_WORKERS").write_text("5")
    monkeypatch.delenv("FACEGATE_SECRETS_DIR")
    (workdir / ".env").write_text(f"FACEGATE_SECRETS_DIR={secrets}\n")
    assert Settings().workers == 5


def test_precedence_from_keyword_arguments_down_to_defaults(
    secret: dict[str, str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One setting given in every layer; taking the layers away from the top shows each in turn."""
    put(secret, {"FACEGATE_HOST": "aws"})
    (workdir / ".env").write_text("FACEGATE_HOST=dotenv\n")
    secrets = workdir / "secrets"
    secrets.mkdir()
    (secrets / "FACEGATE_HOST").write_text("secrets-dir")
    monkeypatch.setenv("FACEGATE_SECRETS_DIR", str(secrets))
    (workdir / "host").write_text("file-variable")
    monkeypatch.setenv("FACEGATE_HOST_FILE", str(workdir / "host"))
    monkeypatch.setenv("FACEGATE_HOST", "environment")

    assert Settings(host="keyword").host == "keyword"
    assert Settings().host == "environment"
    monkeypatch.delenv("FACEGATE_HOST")
    assert Settings().host == "file-variable"
    monkeypatch.delenv("FACEGATE_HOST_FILE")
    assert Settings().host == "secrets-dir"
    (secrets / "FACEGATE_HOST").unlink()
    assert Settings().host == "aws"
    monkeypatch.delenv("FACEGATE_AWS_SECRETS__SECRET_ID")
    monkeypatch.delenv("FACEGATE_AWS_SECRETS__ENDPOINT_URL")
    monkeypatch.delenv("FACEGATE_AWS_SECRETS__REGION")
    assert Settings().host == "dotenv"
    (workdir / ".env").unlink()
    assert Settings().host == "127.0.0.1"
