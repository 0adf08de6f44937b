"""Where settings come from, and which FACEGATE_* names exist.

Precedence, highest first. A higher layer wins per variable; nested values merge across layers (the database URL
from a secret and `FACEGATE_DATABASE__POOL_SIZE` from the environment both apply):

1. keyword arguments: `Settings(port=9000)` (code and tests)
2. environment variables: `FACEGATE_PORT=9000`; nested with "__": `FACEGATE_DATABASE__URL=...`
3. `*_FILE` variables: `FACEGATE_DATABASE__URL_FILE=/run/secrets/db_url` supplies `FACEGATE_DATABASE__URL` from
   that file's contents (trailing newlines stripped), as Docker and Kubernetes mount secrets
4. the secrets directory, `FACEGATE_SECRETS_DIR` (default /run/secrets when it exists; empty for none): a file
   named like a variable (`FACEGATE_DATABASE__URL`) supplies its value; files not named FACEGATE_* are ignored
5. AWS Secrets Manager: `FACEGATE_AWS_SECRETS__SECRET_ID` (+ `__REGION`, `__ENDPOINT_URL`) names a secret whose
   SecretString is a JSON object of variable names to values: `{"FACEGATE_DATABASE__URL": "postgresql+psycopg://..."}`
6. a `.env` file in the working directory
7. defaults

`FACEGATE_SECRETS_DIR` and `FACEGATE_AWS_SECRETS__*` are read from the layers above the one they configure, and
from `.env`.

Every FACEGATE_* name in layers 2-6 must name a setting (any member of a backend union counts): a typo such as
`FACEGATE_DATABSE__URL` would otherwise be silently ignored, so it is a configuration error with a "did you mean",
or only a warning with `FACEGATE_ALLOW_UNKNOWN_ENV=true` (environments shared with other programs). Variables that
facegate reads outside the settings by design are in `READ_OUTSIDE_SETTINGS`.

A secret that cannot be read is a configuration error naming the variable or secret and the fix. Secret values
never appear in messages. Nothing here raises: the sources collect their problems, and `ReportSource` hands them,
with the unknown names and where each variable came from, to the Settings validation, which reports everything
in one `ConfigurationError`.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ModelWrapValidatorHandler, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from facegate.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

logger = logging.getLogger(__name__)
SettingsT = TypeVar("SettingsT", bound=BaseModel)

PREFIX = "FACEGATE_"
DELIMITER = "__"
FILE_SUFFIX = "_FILE"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
# Read with os.environ by the tests and benchmarks, not by the service.
READ_OUTSIDE_SETTINGS = frozenset({"FACEGATE_DEV_FACES", "FACEGATE_FACES", "FACEGATE_BENCH_CACHE"})
# The key under which `ReportSource` passes its `SourceReport` to the Settings validation.
REPORT_KEY = "__facegate_source_report__"
# A Kubernetes or Docker secret is small; anything bigger is a wrong path (a log file, a device).
MAX_SECRET_BYTES = 1024 * 1024


@dataclass
class SourceReport:
    """What the sources found besides values: problems reading secrets, unknown names, where each name came from."""

    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # Variable name (upper case) -> where its winning value came from ("" for the environment itself).
    origins: dict[str, str] = field(default_factory=dict)
    # The same names as warnings, when FACEGATE_ALLOW_UNKNOWN_ENV=true.
    ignored: list[str] = field(default_factory=list)
    # Top-level keyword arguments of Settings(...): their values came from code, not from variables.
    init_keys: frozenset[str] = frozenset()

    def describe(self, name: str) -> str:
        """`name` with where its value came from, when that is not the environment: for messages."""
        parts = name.split(DELIMITER)
        # The value may come from the variable itself or from a parent given as JSON (FACEGATE_DATABASE='{...}').
        for end in range(len(parts), 0, -1):
            origin = self.origins.get(DELIMITER.join(parts[:end]))
            if origin is not None:
                return f"{name} ({origin})" if origin else name
        return name


@dataclass(frozen=True)
class _Entry:
    name: str  # the variable it supplies, upper case: FACEGATE_DATABASE__URL
    written: str  # as the user wrote it, for messages: FACEGATE_DATABASE__URL_FILE
    origin: str  # "" for the environment, else "from ..."


# --- Which names exist -------------------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold: itself, or the members of a (discriminated) union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _is_open_mapping(annotation: Any) -> bool:
    """A dict-like field takes any sub-name (FACEGATE_X__ANY_KEY)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_open_mapping(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_open_mapping(arg) for arg in typing.get_args(annotation))
    return annotation is Any or annotation is dict or origin in (dict, Mapping)


class SettingNames:
    """Every variable name a settings class reads: each field at every depth, a field valid in any member of a
    union counting, plus sub-names of dict fields."""

    def __init__(self, settings_cls: type[BaseModel]) -> None:
        self.names: set[str] = set()
        self.open_prefixes: set[str] = set()
        self._walk(settings_cls.model_fields, PREFIX)

    def _walk(self, fields: Mapping[str, FieldInfo], prefix: str) -> None:
        for field_name, info in fields.items():
            name = prefix + field_name.upper()
            self.names.add(name)
            if _is_open_mapping(info.annotation):
                self.open_prefixes.add(name + DELIMITER)
            for model in _models_in(info.annotation):
                self._walk(model.model_fields, name + DELIMITER)

    def __contains__(self, name: str) -> bool:
        return name in self.names or any(name.startswith(p) for p in self.open_prefixes)

    def suggestion(self, name: str) -> str | None:
        """The closest known name, compared without the common prefix so that it does not inflate the score."""
        short = {known.removeprefix(PREFIX): known for known in self.names}
        close = difflib.get_close_matches(name.removeprefix(PREFIX), list(short), n=1, cutoff=0.6)
        return short[close[0]] if close else None


def _unknown_lines(entry: _Entry, known: SettingNames) -> tuple[str, str]:
    """The message for a name no setting has: as an error (with what to do) and as a warning."""
    where = f"{entry.written} ({entry.origin})" if entry.origin else entry.written
    suggestion = known.suggestion(entry.name)
    if entry.written != entry.name:  # FACEGATE_X_FILE naming an unknown FACEGATE_X
        line = f"{where}: unknown setting {entry.name}"
        suggestion = suggestion and suggestion + FILE_SUFFIX
    elif entry.origin and entry.name.endswith(FILE_SUFFIX) and entry.name.removesuffix(FILE_SUFFIX) in known:
        line = f"{where}: *{FILE_SUFFIX} variables are read from the environment only; set {entry.name[:-5]} here"
        return line, line
    else:
        line = f"{where}: unknown setting"
    if suggestion:
        line = f"{line}, did you mean {suggestion}?"
        return line, line
    return f"{line} (if another program reads it, set FACEGATE_ALLOW_UNKNOWN_ENV=true)", line


# --- Sources -----------------------------------------------------------------------------------------------------


def _read_secret_file(path: Path) -> str:
    """A secret file's text without its trailing newlines; OSError or ValueError with a short reason."""
    if not path.is_file():
        raise ValueError("no such file" if not path.exists() else "not a regular file")
    if path.stat().st_size > MAX_SECRET_BYTES:
        raise ValueError(f"larger than {MAX_SECRET_BYTES} bytes, not a secret")
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def _os_reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else type(exc).__name__


def _state_value(state: Any, *keys: str) -> Any:
    """state[keys[0]][keys[1]]..., where a level may be a dict or an already built model (keyword arguments)."""
    for key in keys:
        state = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
        if state is None:
            return None
    return state


class _EntriesSource(EnvSettingsSource):
    """Values given as a flat mapping of variable names, parsed like environment variables (nesting with "__",
    JSON for whole sections). Subclasses fill `entries` and `problems` when called, not when built: the location
    of their secrets may come from a layer above them (`current_state`) or from .env."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: DotEnvSettingsSource) -> None:
        self.entries: dict[str, tuple[_Entry, str]] = {}
        self.unknown: list[_Entry] = []  # names no setting has: reported, not read
        self.problems: list[str] = []
        self._known = SettingNames(settings_cls)
        self._dotenv = dotenv
        self._dotenv_state: dict[str, Any] | None = None
        super().__init__(settings_cls, case_sensitive=False, env_prefix=PREFIX, env_nested_delimiter=DELIMITER)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {}

    def _collect(self) -> None:
        raise NotImplementedError

    def _offer(self, entry: _Entry, value: str | Path) -> None:
        """Take the value (or read the file) of a known name; a problem reading it becomes a message naming it."""
        if entry.name not in self._known:
            self.unknown.append(entry)
            return
        try:
            self.entries.setdefault(entry.name, (entry, value if isinstance(value, str) else _read_secret_file(value)))
        except (OSError, ValueError) as exc:
            reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
            self.problems.append(self._read_problem(entry, reason))

    def _read_problem(self, entry: _Entry, reason: str) -> str:
        return f"{entry.written}: {reason}"

    def _bootstrap(self, *keys: str) -> Any:
        """A setting that configures this source, from the layers above it, else from .env."""
        value = _state_value(self.current_state, *keys)
        if value is None:
            if self._dotenv_state is None:
                self._dotenv_state = self._dotenv()
            value = _state_value(self._dotenv_state, *keys)
        return value

    def __call__(self) -> dict[str, Any]:
        self.entries, self.unknown, self.problems, self._dotenv_state = {}, [], [], None
        self._collect()
        self.env_vars = parse_env_vars({name: value for name, (_, value) in self.entries.items()}, False, False, None)
        return super().__call__()


class FileVariablesSource(_EntriesSource):
    """`FACEGATE_X__Y_FILE=/path` supplies `FACEGATE_X__Y` from the file (the Docker / Kubernetes convention)."""

    def _collect(self) -> None:
        for written, path in sorted(os.environ.items()):
            upper = written.upper()
            if not upper.startswith(PREFIX) or not upper.endswith(FILE_SUFFIX) or upper in self._known:
                continue
            name = upper.removesuffix(FILE_SUFFIX)
            if name in READ_OUTSIDE_SETTINGS:
                continue
            if not path:
                self.problems.append(f"{written}: empty; set it to the path of a file holding {name}")
                continue
            self._offer(_Entry(name, written, f"from {path} via {written}"), Path(path))

    def _read_problem(self, entry: _Entry, reason: str) -> str:
        path = os.environ[entry.written]
        return f"{entry.written}: cannot read {path}: {reason}; mount the secret there, fix the path, or unset it"


class SecretsDirSource(_EntriesSource):
    """Files named like the variables in a directory (`/run/secrets/FACEGATE_DATABASE__URL`)."""

    def _directory(self) -> Path | None:
        configured = self._bootstrap("secrets_dir")
        if configured is None:  # unset: the Docker / Kubernetes default, if this machine has it
            return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None
        if str(configured) == "":
            return None
        directory = Path(configured).expanduser()
        if not directory.is_dir():
            self.problems.append(
                f"FACEGATE_SECRETS_DIR: {directory} is not a directory; create it, fix the path, or unset the variable"
            )
            return None
        return directory

    def _collect(self) -> None:
        directory = self._directory()
        if directory is None:
            return
        try:
            # Hidden entries are Kubernetes' ..data bookkeeping; other programs' secrets are not ours to check.
            paths = sorted(p for p in directory.iterdir() if p.name.upper().startswith(PREFIX))
        except OSError as exc:
            self.problems.append(f"FACEGATE_SECRETS_DIR: cannot list {directory}: {_os_reason(exc)}")
            return
        for path in paths:
            self._offer(_Entry(path.name.upper(), path.name, f"from {path}"), path)

    def _read_problem(self, entry: _Entry, reason: str) -> str:
        return f"{entry.written} ({entry.origin}): cannot read it: {reason}; fix or remove the file"


class AWSSecretsSource(_EntriesSource):
    """One AWS Secrets Manager secret holding a JSON object of FACEGATE_* names to values."""

    def _collect(self) -> None:
        secret_id = self._bootstrap("aws_secrets", "secret_id")
        if not secret_id or not isinstance(secret_id, str):
            return  # not configured (an invalid configuration is reported by the Settings validation)
        region = self._bootstrap("aws_secrets", "region") or None
        endpoint_url = self._bootstrap("aws_secrets", "endpoint_url") or None
        text = self._fetch(secret_id, region, endpoint_url)
        if text is None:
            return
        where = f"the AWS secret {secret_id!r}"
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            self.problems.append(
                f"FACEGATE_AWS_SECRETS__SECRET_ID: {where} is not a JSON object; store its SecretString as "
                '{"FACEGATE_DATABASE__URL": "...", ...}'
            )
            return
        for written, value in values.items():
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            self._offer(_Entry(str(written).upper(), str(written), f"from {where}"), text)

    def _fetch(self, secret_id: str, region: str | None, endpoint_url: str | None) -> str | None:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
        )

        subject = f"FACEGATE_AWS_SECRETS__SECRET_ID: cannot read the AWS secret {secret_id!r}"
        try:
            client = boto3.session.Session().client(
                "secretsmanager",
                region_name=region,
                endpoint_url=endpoint_url,
                config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"}),
            )
            response = client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code == "ResourceNotFoundException":
                hint = (
                    "no such secret in this account and region: check the name or ARN and FACEGATE_AWS_SECRETS__REGION"
                )
            elif code in ("AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"):
                hint = (
                    f"{code}: the AWS credentials may not read it; grant secretsmanager:GetSecretValue "
                    "(and kms:Decrypt for its key)"
                )
            else:
                hint = f"{code}: {error.get('Message', '')}".rstrip(": ")
            self.problems.append(f"{subject}: {hint}")
            return None
        except NoCredentialsError:
            self.problems.append(
                f"{subject}: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
                "or run with an instance or task role"
            )
            return None
        except NoRegionError:
            self.problems.append(f"{subject}: no AWS region; set FACEGATE_AWS_SECRETS__REGION or AWS_DEFAULT_REGION")
            return None
        except EndpointConnectionError as exc:
            self.problems.append(
                f"{subject}: cannot connect to {exc.kwargs.get('endpoint_url', endpoint_url)}; check "
                "FACEGATE_AWS_SECRETS__ENDPOINT_URL and the network"
            )
            return None
        except (BotoCoreError, ValueError) as exc:  # ValueError: a malformed endpoint URL
            self.problems.append(f"{subject}: {exc}")
            return None
        text = response.get("SecretString")
        if not isinstance(text, str):
            self.problems.append(
                f"{subject}: it holds a binary value; store a JSON object of FACEGATE_* names as its SecretString"
            )
            return None
        return text


class ReportSource(PydanticBaseSettingsSource):
    """Runs last: checks every name the layers supplied and records where each came from (see `SourceReport`)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: InitSettingsSource,
        files: FileVariablesSource,
        secrets_dir: SecretsDirSource,
        aws: AWSSecretsSource,
        dotenv: DotEnvSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._init, self._files, self._secrets_dir, self._aws, self._dotenv = init, files, secrets_dir, aws, dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # contributes no values

    def _layers(self, known: SettingNames) -> list[list[_Entry]]:
        """The entries of layers 2-6, in precedence order."""
        environment = [
            _Entry(name.upper(), name, "")
            for name in os.environ
            if name.upper().startswith(PREFIX) and (name.upper() in known or not name.upper().endswith(FILE_SUFFIX))
        ]
        dotenv_file = self._dotenv.env_file
        label = f"from {dotenv_file}" if isinstance(dotenv_file, str | Path) else "from .env"
        dotenv = [
            _Entry(name.upper(), name.upper(), label)
            for name in self._dotenv.env_vars
            if name.upper().startswith(PREFIX)
        ]
        sources = (self._files, self._secrets_dir, self._aws)
        return [environment, *([*(entry for entry, _ in s.entries.values()), *s.unknown] for s in sources), dotenv]

    def __call__(self) -> dict[str, Any]:
        known = SettingNames(self.settings_cls)
        report = SourceReport(
            problems=[*self._files.problems, *self._secrets_dir.problems, *self._aws.problems],
            init_keys=frozenset(self._init.init_kwargs),
        )
        for layer in self._layers(known):
            for entry in layer:
                report.origins.setdefault(entry.name, entry.origin)
                if entry.name not in known and entry.name not in READ_OUTSIDE_SETTINGS:
                    error, warning = _unknown_lines(entry, known)
                    report.unknown.append(error)
                    report.ignored.append(warning)
        return {REPORT_KEY: report}


def layered_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources in precedence order, for `BaseSettings.settings_customise_sources`."""
    if not isinstance(init_settings, InitSettingsSource) or not isinstance(dotenv_settings, DotEnvSettingsSource):
        raise TypeError("expected pydantic-settings' own init and .env sources")
    files = FileVariablesSource(settings_cls, dotenv_settings)
    secrets_dir = SecretsDirSource(settings_cls, dotenv_settings)
    aws = AWSSecretsSource(settings_cls, dotenv_settings)
    report = ReportSource(settings_cls, init_settings, files, secrets_dir, aws, dotenv_settings)
    return init_settings, env_settings, files, secrets_dir, aws, dotenv_settings, report


# --- Validation: one message per problem, naming the variable -------------------------------------------------


def _field_path(settings_cls: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[list[str], list[type[BaseModel]]]:
    """The field names along an error location (union tags and member labels skipped), and the models that can
    sit at its end (several for a union)."""
    path: list[str] = []
    models: list[type[BaseModel]] = [settings_cls]
    for item in loc:
        fields = {name: info for model in models for name, info in model.model_fields.items()}
        if not isinstance(item, str):
            break  # a list index: the variable is the list itself
        if item in fields:
            path.append(item)
            models = _models_in(fields[item].annotation)
            if not models:
                break
        # else: a union tag ('dlib') or member label: not part of the variable name
    return path, models


def _quoted_choices(choices: list[str]) -> str:
    quoted = [f"'{c}'" for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _tags(models: list[type[BaseModel]], discriminator: str) -> list[str]:
    return [str(arg) for model in models for arg in typing.get_args(model.model_fields[discriminator].annotation)]


def _validation_lines(exc: ValidationError, settings_cls: type[BaseModel], report: SourceReport) -> list[str]:
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        path, models = _field_path(settings_cls, error["loc"])
        kind, ctx = error["type"], error.get("ctx", {})
        message = error["msg"][:1].lower() + error["msg"][1:]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            discriminator = str(ctx.get("discriminator", "type")).strip("'")
            path = [*path, discriminator]
            choices = _quoted_choices(_tags(models, discriminator))
            message = f"input should be {choices}"
            given = _member_keys(error["input"], models)  # keys only: values may be secret
            if kind == "union_tag_not_found" and given:
                names = ", ".join(PREFIX + DELIMITER.join([*path[:-1], key]).upper() for key in given)
                message = f"required with {names}; {message}"
        elif kind == "missing":
            message = "required, not set"
        env_name = PREFIX + DELIMITER.join(path).upper() if path else "settings"
        described = report.describe(env_name)
        if described == env_name and env_name not in report.origins and path and path[0] in report.init_keys:
            described = f"{'.'.join(path)} (keyword argument)"  # Settings(port=...) in code, not a variable
        line = f"{described}: {message}"
        if line not in lines:
            lines.append(line)
    return lines


def _member_keys(value: Any, models: list[type[BaseModel]]) -> list[str]:
    """The keys of a backend section that some backend has (others are reported as unknown names)."""
    fields = {name for model in models for name in model.model_fields}
    return [key for key in value if key in fields] if isinstance(value, dict) else []


def _default_backend_types(settings_cls: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """A backend section given without its `type` (FACEGATE_INDEX__EF_SEARCH=100 alone) means the default
    backend, when every key given belongs to it; otherwise the type stays missing and is reported as such (it
    would be a guess: FACEGATE_BLOBS__BUCKET alone wants s3, not the default files)."""
    for name, info in settings_cls.model_fields.items():
        value, discriminator = data.get(name), info.discriminator
        if not isinstance(discriminator, str) or not isinstance(value, dict) or discriminator in value:
            continue
        default = info.get_default(call_default_factory=True)
        given = _member_keys(value, _models_in(info.annotation))
        if isinstance(default, BaseModel) and set(given) <= set(type(default).model_fields):
            data = {**data, name: {**value, discriminator: getattr(default, discriminator)}}
    return data


def _unknown_allowed(data: dict[str, Any], settings: BaseModel | None) -> bool:
    if settings is not None:
        return bool(getattr(settings, "allow_unknown_env", False))
    try:  # the settings failed validation: read the flag on its own
        return TypeAdapter(bool).validate_python(data.get("allow_unknown_env", False))
    except ValidationError:
        return False


def validate_with_report(
    settings_cls: type[SettingsT], data: Any, handler: ModelWrapValidatorHandler[SettingsT]
) -> SettingsT:
    """Validate settings built by `layered_sources` and report every problem at once as a `ConfigurationError`
    (secrets that could not be read, unknown names, invalid values), or unknown names as warnings when
    `allow_unknown_env`. Settings validated without the sources (model_validate) are validated as usual."""
    if not isinstance(data, dict):
        return handler(data)
    data = _default_backend_types(settings_cls, dict(data))
    report = data.pop(REPORT_KEY, None)
    if not isinstance(report, SourceReport):
        return handler(data)
    settings: SettingsT | None = None
    invalid: list[str] = []
    try:
        settings = handler(data)
    except ValidationError as exc:
        invalid = _validation_lines(exc, settings_cls, report)
        cause: Exception | None = exc
    else:
        cause = None
    unknown_allowed = _unknown_allowed(data, settings)
    problems = [*report.problems, *([] if unknown_allowed else report.unknown), *invalid]
    if problems:
        raise ConfigurationError(problems) from cause
    for line in report.ignored:
        logger.warning("ignored %s", line)
    assert settings is not None
    return settings


__all__ = [
    "DEFAULT_SECRETS_DIR",
    "READ_OUTSIDE_SETTINGS",
    "REPORT_KEY",
    "SettingNames",
    "SourceReport",
    "layered_sources",
    "validate_with_report",
]
