"""Anomaly flags over the audit log, for auditors. Each rule is one query over a time window.

- volume: a client read far more rows than its own usual volume (or, new, a lot at once);
- outside_grant_window: a read recorded outside the validity window of the grant it cites;
- denied_burst: many denied requests from one client or address within a minute;
- column_probes: a burst of refused filters, orders or selects naming columns the caller
  sees masked or cannot see (a caller searching out what a mask hides);
- unmasked_personal: personal columns read unmasked (legitimate for owners, worth review).

A refusal record may stand for several refusals (hub/refusals.py writes at most one per
client and reason a second): the burst rules count `detail.count`, not rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

VOLUME_FACTOR = 10  # flag at ten times the client's usual rows for a window this long
VOLUME_MIN_ROWS = 1000  # ...and never below this many rows
BASELINE = timedelta(days=28)
BURST_DENIALS = 10
BURST_SECONDS = 60
PROBE_BURST = 5  # refused probes of masked or hidden columns within BURST_SECONDS
# How many refusals a record stands for: written by hub/refusals.py, 1 for older rows.
REFUSALS = "coalesce((detail->>'count')::int, 1)"


@dataclass(frozen=True)
class Flag:
    rule: str
    client_id: str | None
    detail: dict[str, Any]


def flags(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Flag]:
    return (volume(conn, since, until) + outside_grant_window(conn, since, until)
            + denied_burst(conn, since, until) + column_probes(conn, since, until)
            + unmasked_personal(conn, since, until))


def volume(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Flag]:
    scale = (until - since) / BASELINE  # the baseline scaled to this window's length
    rows = conn.execute(
        "select client_id,"
        " sum(rows_returned) filter (where occurred_at >= %(since)s) as rows_now,"
        " coalesce(sum(rows_returned) filter (where occurred_at < %(since)s), 0) as rows_before"
        " from audit.events where kind = 'data.read' and client_id is not null"
        " and occurred_at >= %(start)s and occurred_at < %(until)s"
        " group by client_id",
        {"since": since, "until": until, "start": since - BASELINE}).fetchall()
    found = []
    for client_id, now, before in rows:
        usual = float(before) * scale
        if now and now >= VOLUME_MIN_ROWS and now > VOLUME_FACTOR * usual:
            found.append(Flag("volume", client_id, {"rows": int(now), "usual": round(usual)}))
    return found


DECIDED_ON = "coalesce((detail->>'decided_on')::date, occurred_at::date)"


def outside_grant_window(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Flag]:
    rows = conn.execute(
        "select client_id, event_id, grant_id, occurred_at from audit.events"
        " where kind = 'data.read' and decision = 'allow'"
        " and occurred_at >= %s and occurred_at < %s"
        # The day the API decided on (HUB_CLOCK may fix it); older entries: the read's day.
        " and ((detail->>'valid_until')::date < " + DECIDED_ON +
        "   or (detail->>'valid_from')::date > " + DECIDED_ON + ")", [since, until]).fetchall()
    return [Flag("outside_grant_window", c, {"event_id": e, "grant": g, "at": at.isoformat()})
            for c, e, g, at in rows]


def denied_burst(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Flag]:
    rows = _bursts(conn, "decision = 'deny'", since, until, BURST_DENIALS)
    return [Flag("denied_burst", who, {"denials_in_a_minute": n, "from": at.isoformat()})
            for who, n, at, _ in rows]


def column_probes(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Flag]:
    rows = _bursts(conn, "decision = 'deny' and detail->>'probe' in"
                   " ('masked_column', 'hidden_column')", since, until, PROBE_BURST)
    return [Flag("column_probes", who, {"probes_in_a_minute": n, "from": at.isoformat(),
                                        "columns": sorted(columns)})
            for who, n, at, columns in rows]


def _bursts(conn: psycopg.Connection, where: str, since: datetime, until: datetime,
            at_least: int) -> list[tuple]:
    """Per client (or address): the most refusals matching `where` within BURST_SECONDS,
    when at least `at_least`; when that many were reached, and the columns named."""
    return conn.execute(
        "select who, max(n), min(occurred_at) filter (where n >= %(least)s),"
        " array_remove(array_agg(distinct column_), null)"
        " from (select coalesce(client_id, source_address) as who, occurred_at,"
        f"   detail->>'column' as column_, sum({REFUSALS})"
        "   over (partition by coalesce(client_id, source_address)"
        "    order by occurred_at range between %(span)s preceding and current row) as n"
        f"  from audit.events where {where}"
        "  and occurred_at >= %(since)s and occurred_at < %(until)s) w"
        " group by who having max(n) >= %(least)s",
        {"span": timedelta(seconds=BURST_SECONDS), "since": since, "until": until,
         "least": at_least}).fetchall()


def unmasked_personal(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Flag]:
    rows = conn.execute(
        "select client_id, dataset, count(*), array_agg(distinct c) from audit.events,"
        " unnest(unmasked_personal) c where kind = 'data.read'"
        " and occurred_at >= %s and occurred_at < %s group by client_id, dataset",
        [since, until]).fetchall()
    return [Flag("unmasked_personal", c, {"dataset": d, "reads": n, "columns": sorted(cols)})
            for c, d, n, cols in rows]
