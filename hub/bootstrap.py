"""Bring the warehouse's schema up to date (hub/migrations) and grant the application role."""

from __future__ import annotations

import contextlib
import logging

import psycopg
from psycopg import sql

from hub.migrations import migrate

log = logging.getLogger(__name__)

# What the API may do once it has switched to the application role: read what it serves,
# append audit events, count requests and failed sign-ins (the limits every API instance
# shares). No UPDATE or DELETE anywhere in `audit`. The quarantine is read by
# GET /datasets/{id}/quarantine, for the owning department's engineers only. Public
# releases are read by the open routes (api/routes/open_data.py).
APP_GRANTS = """
grant usage on schema shared, history, hub, audit, quarantine, releases to {role};
grant select on releases.versions to {role};
grant select on all tables in schema shared to {role};
alter default privileges in schema shared grant select on tables to {role};
grant select on all tables in schema history to {role};
alter default privileges in schema history grant select on tables to {role};
grant select on all tables in schema quarantine to {role};
alter default privileges in schema quarantine grant select on tables to {role};
grant select on hub.dataset_versions, hub.clients, hub.validation_reports, hub.runs to {role};
grant select, insert, update on hub.contracts to {role};
grant select, insert on hub.notifications to {role};
grant usage on sequence hub.notifications_notification_id_seq to {role};
grant select, insert on hub.revoked_tokens to {role};
grant select on hub.users to {role};
grant select, insert, update on hub.auth_codes to {role};
grant select, insert, update on hub.access_requests to {role};
grant select, insert on audit.events to {role};
grant usage on sequence audit.events_event_id_seq to {role};
grant select on audit.chain, audit.checkpoints, audit.archives to {role};
grant select, insert, update on hub.feedback to {role};
grant select, insert, update, delete on hub.rate_limits to {role};
grant select, insert, delete on hub.signin_failures to {role};
"""


def bootstrap(url: str, app_role: str = "hub_app") -> None:
    """Apply the migrations not yet applied and the application role's grants, in one
    transaction; safe to run on every start. Raises MigrationError when the warehouse's
    record disagrees with the migration files."""
    with psycopg.connect(url) as conn:
        # Serialise concurrent first starts (hub serve + hub run) on one advisory lock.
        conn.execute("select pg_advisory_xact_lock(hashtext('civic-data-hub bootstrap'))")
        outcome = migrate(conn)
        if outcome.adopted:
            log.warning("adopted a warehouse made before migrations were recorded: %s",
                        ", ".join(m.path.name for m in outcome.applied))
        ensure_role(conn, app_role)
        conn.execute(sql.SQL(APP_GRANTS).format(role=sql.Identifier(app_role)))


def ensure_role(conn: psycopg.Connection, role: str) -> None:
    # Roles are cluster-wide: another database's bootstrap may create it at the same time.
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone()
    if not exists:
        # A savepoint: losing the race to a concurrent create must not abort our transaction.
        with contextlib.suppress(psycopg.errors.DuplicateObject), conn.transaction():
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
    # The hub's own user must be able to `set role` to it (implicit for superusers).
    conn.execute(sql.SQL("grant {} to current_user").format(sql.Identifier(role)))
