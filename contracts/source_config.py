"""The `hubSource` custom property: where and how the hub pulls a dataset from.

One model per kind of source, chosen by `kind`; every model refuses keys it does not know,
so a misspelt setting is an error at lint time instead of a default silently used.

Settings are untrusted (departments register contracts), so secrets are only ever named by
variable, and only variables of the `HUB_SOURCE_` family: a contract cannot point the hub
at its own credentials (HUB_DATABASE_URL, keys) and have them sent to a source.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from contracts.model_errors import Problems, closest, problems_of

SECRET_ENV = re.compile(r"^HUB_SOURCE_[A-Z0-9_]+$")
WHERE = "customProperties.hubSource"


def _secret_name(name: str) -> str:
    if name and not SECRET_ENV.match(name):
        raise ValueError(f"got {name!r}; secrets are read only from variables named "
                         "HUB_SOURCE_<NAME> (never the hub's own)")
    return name


def _no_credentials(url: str) -> str:
    netloc = url.split("//", 1)[1].split("/", 1)[0] if "//" in url else ""
    if "@" in netloc:
        raise ValueError("has credentials in it; put the URL in a HUB_SOURCE_ variable named "
                         "by connectionEnv")
    return url


def _cursor_template(template: str) -> str:
    try:  # the cursor is text: `{value.year}` would fail at the first incremental read
        template.format(value="")
    except (AttributeError, KeyError, IndexError, ValueError):
        raise ValueError(f"got {template!r}; write a template whose only placeholder is "
                         "{value}, e.g. date > '{value}'") from None
    return template


SecretEnv = Annotated[str, AfterValidator(_secret_name)]
PlainUrl = Annotated[str, AfterValidator(_no_credentials)]


class _Spec(BaseModel):
    # Keys as ODCS writes them (camelCase); types as YAML gives them: no coercion, so
    # `batchSize: "many"` or a quoted number is refused rather than guessed at.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, alias_generator=to_camel)


class Pagination(_Spec):
    """How a REST API pages its records (flows.sources.rest.Pagination takes these)."""

    type: Literal["offset", "page", "cursor", "link", "none"] = "offset"
    page_size: int = Field(1000, gt=0, description="write the number of records per page")
    limit_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"  # where the body names the next cursor


class ApiKeyAuth(_Spec):
    type: Literal["api_key"]
    header: str = "X-Api-Key"
    key_env: SecretEnv = Field(description="name the HUB_SOURCE_ variable holding the key")


class OAuth2Auth(_Spec):
    """OAuth2 client credentials (RFC 6749 4.4)."""

    type: Literal["oauth2"]
    token_url: PlainUrl = Field(description="write the token endpoint's URL")
    client_id_env: SecretEnv = Field(description="name the HUB_SOURCE_ variable holding "
                                                 "the client id")
    client_secret_env: SecretEnv = Field(description="name the HUB_SOURCE_ variable holding "
                                                     "the client secret")


class _Source(_Spec):
    """What every kind of source has."""

    batch_size: int = Field(5000, gt=0, description="write the number of rows loaded per "
                                                    "transaction, e.g. 5000")
    schedule: str | None = Field(None, description="write a cron expression in quotes, "
                                                   "e.g. \"*/15 * * * *\"")
    sample: str | None = None  # bundled sample data to provision in demo mode
    system: str = ""  # source system, for the per-system concurrency limit


class SqlConfig(_Source):
    """A database table, read by the contract's column names (so no `columns` mapping)."""

    kind: Literal["sql"]
    connection_env: SecretEnv = Field(description="name the HUB_SOURCE_ variable holding "
                                                  "the database URL")
    table: str = Field(min_length=1, description="name the source table")
    cursor_column: str = Field(min_length=1, description="name the column that grows with "
                                                         "every change, e.g. updated_at")


class _Remote(_Source):
    """A source found by URL: in the contract when it carries no secret, else in a variable."""

    connection_env: SecretEnv = ""
    url: PlainUrl = ""
    # contract column -> name in the source, where they differ
    columns: dict[str, str] = Field(default_factory=dict, description="write a mapping of "
                                    "contract column: name in the source")

    @model_validator(mode="after")
    def _located(self) -> _Remote:
        if not (self.url or self.connection_env):
            raise ValueError("give url (no secrets in it) or connectionEnv (a variable "
                             "holding the URL)")
        return self


class RestConfig(_Remote):
    kind: Literal["rest"]
    cursor_column: str = Field(min_length=1, description="name the column that grows with "
                                                         "every change, e.g. updated_at")
    records_path: str = ""  # dotted path to the list of records; "" for a bare JSON array
    pagination: Pagination = Pagination()
    params: dict[str, str] = Field(default_factory=dict, description="write a mapping of "
                                   "query parameter: value")
    since_param: str | None = None  # query parameter carrying the incremental cursor
    since_format: Annotated[str, AfterValidator(_cursor_template)] = "{value}"
    auth: Annotated[ApiKeyAuth | OAuth2Auth, Field(discriminator="type")] | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _params_as_text(cls, params: Any) -> Any:
        # A query string is text: `$limit: 100` means "100", as it would in a URL.
        if isinstance(params, dict):
            return {k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                    for k, v in params.items()}
        return params


class FilesConfig(_Remote):
    kind: Literal["files"]
    pattern: str = "*"  # which files of the drop folder are deliveries


class MqttConfig(_Remote):
    kind: Literal["mqtt"]
    topic: str = Field(min_length=1, description="name the topic to subscribe to")
    qos: Literal[0, 1, 2] = 1
    client_id: str = ""  # the broker session's id; "" derives one from the dataset
    idle_seconds: float = Field(2.0, gt=0, description="write how many seconds of a quiet "
                                                       "feed end a pass, e.g. 2")


SourceConfig = Annotated[SqlConfig | RestConfig | FilesConfig | MqttConfig,
                         Field(discriminator="kind")]
_SOURCE: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def parse_source(value: Any, columns: list[str], problems: Problems) -> SourceConfig | None:
    """The source a contract describes, or None with the problems found in it."""
    try:
        source = _SOURCE.validate_python(value)
    except ValidationError as exc:
        problems += problems_of(exc, SourceConfig, WHERE)
        return None
    found = _against_contract(source, columns)
    problems += found
    return None if found else source


def _against_contract(source: SourceConfig, columns: list[str]) -> Problems:
    """Names of contract columns in the source settings that the contract does not have."""
    found = []
    mapping = source.columns if isinstance(source, _Remote) else {}
    for name in sorted(set(mapping) - set(columns)):
        found.append((f"{WHERE}.columns.{name}", f"not a column of the contract"
                      f"{closest(name, columns)}"))
    cursor = source.cursor_column if isinstance(source, SqlConfig | RestConfig) else None
    if cursor is not None and cursor not in columns:
        found.append((f"{WHERE}.cursorColumn", f"{cursor!r} is not a column of the contract"
                      f"{closest(cursor, columns)}"))
    return found
