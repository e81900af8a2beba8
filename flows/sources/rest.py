"""REST/JSON API source: pages of records, read incrementally.

A plain generator with no Prefect code. Pagination by offset, page number, an opaque
cursor in the body, or the RFC 8288 `Link: <...>; rel="next"` header. Authentication by an
API key header or OAuth2 client credentials, with secrets read from variables the caller
resolved. 429 and 5xx answers are retried with exponential backoff, honouring Retry-After.
Redirects are not followed: a redirect could carry the request, and its credentials, to
a host the guard never checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from flows.sources.base import Batch, Cursor, SourceError, check_drift, key_columns
from flows.sources.guard import check_url

RETRIED = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Pagination:
    type: str = "offset"  # offset | page | cursor | link | none
    page_size: int = 1000
    limit_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"  # where the body names the next cursor


@dataclass(frozen=True)
class RestSource:
    url: str
    fields: dict[str, str]  # contract column -> field name in the records
    records_path: str = ""  # dotted path to the list of records; "" for a bare JSON array
    pagination: Pagination = field(default_factory=Pagination)
    params: dict[str, str] = field(default_factory=dict)
    since_param: str | None = None  # query parameter carrying the incremental cursor
    since_format: str = "{value}"  # e.g. "date > '{value}'" for Socrata's $where
    headers: dict[str, str] = field(default_factory=dict)  # e.g. the API key header
    token: Callable[[httpx.Client], str] | None = None  # OAuth2: returns an access token
    allowed_hosts: tuple[str, ...] = ()
    retries: int = 4
    backoff_seconds: float = 0.5


def read_records(source: RestSource, *, cursor_column: str, key_column: str | Sequence[str],
                 after: Cursor | None = None, client: httpx.Client | None = None
                 ) -> Iterator[Batch]:
    """Yield one batch per page of records changed after `after`, in the contract's order
    (`key_column`: the key, or the columns of a composite key)."""
    keys = key_columns(key_column)
    check_url(source.url, source.allowed_hosts)
    own = client is None
    client = client or httpx.Client(timeout=30, follow_redirects=False)
    try:
        checked = False
        for records in _pages(client, source, after):
            if records and not checked:
                # APIs such as Socrata leave null fields out of a record: the fields of a
                # whole page, not of its first record, are the source's columns.
                seen = list(dict.fromkeys(name for record in records for name in record))
                check_drift(f"API {source.url}", seen, list(source.fields.values()))
                checked = True
            rows = _rows(records, source.fields, cursor_column, keys, after)
            if rows:  # the furthest row, whatever order the server sent them in
                columns = list(source.fields)
                yield Batch(rows, max(_cursor(r, columns, cursor_column, keys) for r in rows))
    finally:
        if own:
            client.close()


def _pages(client: httpx.Client, source: RestSource, after: Cursor | None
           ) -> Iterator[list[dict[str, Any]]]:
    page, url, params = 0, source.url, _first_params(source, after)
    while url is not None:
        response = _get(client, source, url, params)
        records = _records(response.json(), source.records_path, url)
        yield records
        page += 1
        url, params = _next(source, response, records, url, params, page)


def _first_params(source: RestSource, after: Cursor | None) -> dict[str, Any]:
    params = dict(source.params)
    pages = source.pagination
    if pages.type in ("offset", "page", "cursor"):
        params[pages.limit_param] = pages.page_size
    if pages.type == "offset":
        params[pages.offset_param] = 0
    if pages.type == "page":
        params[pages.page_param] = 1
    if source.since_param and after is not None:
        params[source.since_param] = source.since_format.format(value=after.value)
    return params


def _next(source: RestSource, response: httpx.Response, records: list, url: str,
          params: dict[str, Any], page: int) -> tuple[str | None, dict[str, Any]]:
    pages = source.pagination
    if pages.type == "link":
        link = response.links.get("next", {}).get("url")
        return (urljoin(url, link), {}) if link else (None, {})
    if pages.type == "none" or len(records) < pages.page_size:
        return None, params
    if pages.type == "offset":
        return url, {**params, pages.offset_param: page * pages.page_size}
    if pages.type == "page":
        return url, {**params, pages.page_param: page + 1}
    token = _dig(response.json(), pages.next_cursor_path)
    return (url, {**params, pages.cursor_param: token}) if token else (None, params)


def _get(client: httpx.Client, source: RestSource, url: str, params: dict) -> httpx.Response:
    check_url(url, source.allowed_hosts)  # a Link header may point anywhere
    for attempt in range(source.retries + 1):
        headers = dict(source.headers)
        if source.token is not None:
            headers["Authorization"] = f"Bearer {source.token(client)}"
        # params=None, not {}: httpx replaces the query of a Link URL with an empty mapping
        response = client.get(url, params=params or None, headers=headers)
        if response.status_code not in RETRIED or attempt == source.retries:
            break
        time.sleep(_wait(response, attempt, source.backoff_seconds))
    if response.is_redirect:
        raise SourceError(f"{url} redirects to {response.headers.get('location')!r}; "
                          "configure the final URL (redirects are not followed)")
    if response.status_code >= 400:
        raise SourceError(f"{url} answered {response.status_code} after {attempt + 1} "
                          f"attempt(s): {response.text[:200]}")
    return response


def _wait(response: httpx.Response, attempt: int, backoff: float) -> float:
    """Retry-After in seconds when the server gives it (capped), else exponential backoff."""
    given = response.headers.get("retry-after", "")
    if given.isdigit():
        return min(float(given), 60.0)
    return backoff * 2 ** attempt


def _records(body: Any, path: str, url: str) -> list[dict[str, Any]]:
    found = _dig(body, path) if path else body
    if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
        where = f"at {path!r}" if path else "at the top level"
        raise SourceError(f"{url}: expected a list of JSON objects {where}; set "
                          "hubSource.recordsPath to where the records are")
    return found


def _dig(body: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        body = body.get(part) if isinstance(body, dict) else None
    return body


def _rows(records: list[dict], fields: dict[str, str], cursor_column: str, keys: list[str],
          after: Cursor | None) -> list[tuple]:
    names = list(fields.values())
    rows = [tuple(record.get(name) for name in names) for record in records]
    if after is None:
        return rows
    # The server's filter may be inclusive or missing: keep only what is past the cursor.
    columns = list(fields)
    return [r for r in rows if _cursor(r, columns, cursor_column, keys) > after]


def _cursor(row: tuple, columns: Sequence[str], cursor_column: str, keys: list[str]) -> Cursor:
    return Cursor.of(_text(row[columns.index(cursor_column)]),
                     [_text(row[columns.index(k)]) for k in keys])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def client_credentials(token_url: str, client_id: str, client_secret: str,
                       allowed_hosts: tuple[str, ...] = ()) -> Callable[[httpx.Client], str]:
    """An OAuth2 client-credentials token getter (RFC 6749 4.4), reusing a token until
    shortly before it expires."""
    held: dict[str, Any] = {"token": None, "until": 0.0}

    def token(client: httpx.Client) -> str:
        if held["token"] and time.monotonic() < held["until"]:
            return held["token"]
        check_url(token_url, allowed_hosts)
        response = client.post(token_url, data={"grant_type": "client_credentials",
                                                 "client_id": client_id,
                                                 "client_secret": client_secret})
        if response.status_code != 200:
            raise SourceError(f"{token_url} refused the client credentials "
                              f"({response.status_code}): check the client id and secret")
        body = response.json()
        held["token"] = body["access_token"]
        held["until"] = time.monotonic() + max(int(body.get("expires_in", 60)) - 10, 1)
        return held["token"]

    return token
