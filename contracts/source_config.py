"""The `hubSource` custom property: where and how the hub pulls a dataset from.

Settings are untrusted (departments register contracts), so secrets are only ever named by
variable, and only variables of the `HUB_SOURCE_` family: a contract cannot point the hub
at its own credentials (HUB_DATABASE_URL, keys) and have them sent to a source.
"""

from __future__ import annotations

import re
from typing import Any

from contracts.model import SourceConfig

SECRET_ENV = re.compile(r"^HUB_SOURCE_[A-Z0-9_]+$")
KINDS = {
    # kind -> (required keys, optional keys)
    # sql reads the table's columns by the contract's names: no `columns` mapping there
    "sql": ({"connectionEnv", "table", "cursorColumn"}, set()),
    "rest": ({"cursorColumn"}, {"url", "connectionEnv", "recordsPath", "pagination", "params",
                                "sinceParam", "sinceFormat", "auth", "columns"}),
    "files": (set(), {"url", "connectionEnv", "pattern", "columns"}),
    "mqtt": ({"topic"}, {"url", "connectionEnv", "qos", "clientId", "idleSeconds", "columns"}),
}
COMMON = {"kind", "batchSize", "schedule", "sample", "system"}
PAGINATION = {"type", "pageSize", "limitParam", "offsetParam", "pageParam", "cursorParam",
              "nextCursorPath"}
Problems = list[tuple[str, str]]
WHERE = "customProperties.hubSource"


def parse_source(value: Any, columns: list[str], problems: Problems) -> SourceConfig | None:
    """A SourceConfig, or None with the problems found."""
    if not isinstance(value, dict) or value.get("kind") not in KINDS:
        problems.append((WHERE, f"write a mapping with kind: one of {sorted(KINDS)}"))
        return None
    required, optional = KINDS[value["kind"]]
    before = len(problems)
    _check_keys(value, required, optional, problems)
    _check_secrets(value, problems)
    fields = _fields(value.get("columns") or {}, columns, problems)
    if len(problems) > before:
        return None
    options = {k: v for k, v in value.items() if k in required | optional and k != "url"}
    return SourceConfig(
        kind=value["kind"], connection_env=value.get("connectionEnv", ""),
        url=value.get("url", ""), table=value.get("table", ""),
        cursor_column=value.get("cursorColumn", ""),
        batch_size=int(value.get("batchSize", 5000)), schedule=value.get("schedule"),
        sample=value.get("sample"), system=value.get("system", ""), fields=fields,
        options=options)


def _check_keys(value: dict, required: set, optional: set, problems: Problems) -> None:
    missing = sorted(required - set(value))
    if missing:
        problems.append((WHERE, f"missing {', '.join(missing)} (kind: {value['kind']})"))
    unknown = sorted(set(value) - required - optional - COMMON)
    if unknown:
        problems.append((WHERE, f"unknown key(s) {', '.join(unknown)} for kind "
                         f"{value['kind']}; known: {', '.join(sorted(required | optional))}"))
    if value["kind"] != "sql" and not (value.get("url") or value.get("connectionEnv")):
        problems.append((WHERE, "give url (no secrets in it) or connectionEnv (a variable "
                         "holding the URL)"))
    pagination = value.get("pagination") or {}
    if not isinstance(pagination, dict) or set(pagination) - PAGINATION:
        problems.append((f"{WHERE}.pagination", f"write a mapping of {sorted(PAGINATION)}"))


def _check_secrets(value: dict, problems: Problems) -> None:
    auth = value.get("auth") or {}
    names = [("connectionEnv", value.get("connectionEnv"))]
    names += [(f"auth.{k}", v) for k, v in auth.items() if k.endswith("Env")]
    for key, name in names:
        if name is not None and not SECRET_ENV.match(str(name)):
            problems.append((f"{WHERE}.{key}", f"got {name!r}; secrets are read only from "
                             "variables named HUB_SOURCE_<NAME> (never the hub's own)"))
    if auth and auth.get("type") not in ("api_key", "oauth2"):
        problems.append((f"{WHERE}.auth.type", "write api_key (header, keyEnv) or oauth2 "
                         "(tokenUrl, clientIdEnv, clientSecretEnv)"))
    if _has_password(value):
        problems.append((f"{WHERE}.url", "has credentials in it; put the URL in a "
                         "HUB_SOURCE_ variable named by connectionEnv"))


def _has_password(value: dict) -> bool:
    url = str(value.get("url", ""))
    netloc = url.split("//", 1)[1].split("/", 1)[0] if "//" in url else ""
    return "@" in netloc


def _fields(mapping: Any, columns: list[str], problems: Problems) -> tuple[tuple[str, str], ...]:
    """(contract column, name in the source) for every column; unmapped names are equal."""
    if not isinstance(mapping, dict):
        problems.append((f"{WHERE}.columns", "write a mapping of contract column: source name"))
        return ()
    unknown = sorted(set(mapping) - set(columns))
    if unknown:
        problems.append((f"{WHERE}.columns", f"{', '.join(unknown)}: not columns of the "
                         "contract"))
    return tuple((c, str(mapping.get(c, c))) for c in columns)
