-- The warehouse's fixed layout. Schemas are named for their role; each department's
-- landing schema (raw_<department>) is created from its contracts at ingest time.
create schema if not exists hub;         -- the hub's own bookkeeping
create schema if not exists staging;     -- dbt staging views: typed, deduplicated
create schema if not exists candidate;   -- dbt marts awaiting validation
create schema if not exists shared;      -- published datasets, the only ones the API serves
create schema if not exists quarantine;  -- rows held back by their contract
create schema if not exists audit;       -- who read what, allowed or denied

-- Incremental extraction: the last cursor committed with its batch, per dataset.
create table if not exists hub.ingest_cursors (
    dataset     text primary key,
    cursor      jsonb not null,
    updated_at  timestamptz not null default now()
);

-- One row per load batch, written in the same transaction as its COPY.
create table if not exists hub.load_batches (
    batch_id    uuid primary key,
    dataset     text not null,
    source      text not null,
    rows        bigint not null,
    loaded_at   timestamptz not null default now()
);

-- File drops: each file's checksum and progress, written with its rows. A complete file is
-- never read again; a changed one is reported.
create table if not exists hub.ingest_files (
    dataset     text not null,
    path        text not null,
    sha256      text not null,
    bytes       bigint not null,
    rows_done   bigint not null,
    complete    boolean not null,
    loaded_at   timestamptz not null default now(),
    primary key (dataset, path)
);

-- Records a source sent that could not be read as rows (e.g. an MQTT payload that is not
-- JSON): kept with the batch they came in, never dropped.
create table if not exists hub.rejected_records (
    reject_id   bigserial primary key,
    dataset     text not null,
    batch_id    uuid not null,
    payload     text not null,
    reason      text not null,
    received_at timestamptz not null default now()
);

-- Every pipeline pass and how it ended, with the rules that failed.
create table if not exists hub.runs (
    run_id       uuid primary key,
    dataset      text not null,
    started_at   timestamptz not null,
    finished_at  timestamptz not null default now(),
    status       text not null check (status in ('published', 'failed')),
    rows_loaded  bigint not null default 0,
    report       jsonb not null
);

-- Published versions; the API serves the newest one.
create table if not exists hub.dataset_versions (
    dataset           text not null,
    version           integer not null,
    contract_version  text not null,
    row_count         bigint not null,
    run_id            uuid not null,
    published_at      timestamptz not null default now(),
    primary key (dataset, version)
);

-- Rows the contract held back are counted per version (source = published + quarantined).
alter table hub.dataset_versions add column if not exists quarantined bigint not null default 0;

-- The contract registry: every registered version of every contract, as registered.
-- A new major version marks the older majors deprecated after a notice period.
create table if not exists hub.contracts (
    dataset           text not null,
    version           text not null,
    major             integer not null,
    department        text not null,
    source_text       text not null,   -- the ODCS YAML exactly as registered
    checksum          text not null,   -- sha256 of the parsed document (canonical JSON)
    breaking_changes  text[] not null default '{}',  -- against the version before it
    registered_by     text not null,
    registered_at     timestamptz not null default now(),
    deprecated_after  date,
    primary key (dataset, version)
);

-- One validation report per pipeline run that built a candidate: every rule, whether it
-- held, what was observed, and the row counts of the gate.
create table if not exists hub.validation_reports (
    run_id            uuid primary key,
    dataset           text not null,
    contract_version  text not null,
    passed            boolean not null,
    rows_in           bigint not null,
    rows_passed       bigint not null,
    rows_quarantined  bigint not null,
    rules             jsonb not null,
    created_at        timestamptz not null default now()
);
create index if not exists validation_reports_dataset on hub.validation_reports (dataset, created_at);

-- Notices to a department: its dataset failed a check, or a dataset it uses changed in a
-- breaking way.
create table if not exists hub.notifications (
    notification_id  bigserial primary key,
    department       text not null,
    dataset          text not null,
    kind             text not null,
    message          text not null,
    detail           jsonb not null default '{}',
    created_at       timestamptz not null default now()
);
create index if not exists notifications_department on hub.notifications (department, notification_id);

-- OAuth2 clients; secrets are stored only as scrypt hashes.
create table if not exists hub.clients (
    client_id    text primary key,
    name         text not null unique,
    role         text not null,
    secret_hash  text not null,
    created_at   timestamptz not null default now()
);

-- Access requests (POST /access-requests): pending, then approved or rejected by an admin
-- of the owning department. An approved one is a grant to the requesting client, valid
-- from its approval for the requested number of days.
create table if not exists hub.access_requests (
    request_id      uuid primary key,
    dataset         text not null,
    client_id       text not null,
    role            text not null,
    department      text not null,
    columns         text[],          -- null: every column
    purpose         text not null,
    duration_days   integer not null check (duration_days between 1 and 365),
    status          text not null default 'pending'
                    check (status in ('pending', 'approved', 'rejected')),
    decided_by      text,
    decided_at      timestamptz,
    valid_from      date,
    valid_until     date,
    created_at      timestamptz not null default now()
);

-- People who sign in to the console (authorization code with PKCE). Passwords are stored
-- only as scrypt hashes; the role comes from the access policies.
create table if not exists hub.users (
    username       text primary key,
    role           text not null,
    password_hash  text not null,
    created_at     timestamptz not null default now()
);

-- Authorization codes: single use, short lived, bound to the client, the redirect URI
-- and the PKCE challenge. Only a hash of the code is kept.
create table if not exists hub.auth_codes (
    code_hash       text primary key,
    client_id       text not null,
    username        text not null,
    redirect_uri    text not null,
    code_challenge  text not null,
    scope           text not null,
    expires_at      timestamptz not null,
    used_at         timestamptz
);

-- Revoked access tokens (RFC 7009): JWTs cannot be recalled, so their ids are denied
-- until they would have expired anyway.
create table if not exists hub.revoked_tokens (
    jti         text primary key,
    client_id   text not null,
    expires_at  timestamptz not null,
    revoked_at  timestamptz not null default now()
);

-- API workers remember which tokens they found good (api/revocations.py). Any change that
-- could make a token bad (a revoked jti, a client or user removed) tells them to forget.
create or replace function hub.notify_revocation() returns trigger language plpgsql as $$
begin
    perform pg_notify('hub_revocations', tg_table_name);
    return null;
end $$;
create or replace trigger revoked_tokens_notify after insert or update or delete or truncate
    on hub.revoked_tokens for each statement execute function hub.notify_revocation();
create or replace trigger clients_notify after update or delete or truncate
    on hub.clients for each statement execute function hub.notify_revocation();
create or replace trigger users_notify after update or delete or truncate
    on hub.users for each statement execute function hub.notify_revocation();

-- The audit log. Writers only ever INSERT here; the sealer (hub/ledger.py) then chains each
-- entry to the previous one in audit.chain and signs checkpoints, so concurrent writers never
-- wait for each other. Triggers refuse UPDATE, DELETE and TRUNCATE on all three tables.
create table if not exists audit.events (
    event_id           bigserial primary key,
    occurred_at        timestamptz not null default clock_timestamp(),
    kind               text not null,  -- data.read, data.denied, token.issued, pipeline.published...
    request_id         text,
    client_id          text,
    role               text,
    department         text,
    purpose            text,
    dataset            text,
    dataset_version    integer,
    columns            text[] not null default '{}',
    unmasked_personal  text[] not null default '{}',
    filters            jsonb not null default '{}',
    rows_returned      integer not null default 0,
    decision           text check (decision in ('allow', 'deny')),
    reason             text not null default '',
    grant_id           text,
    source_address     text,
    status_code        integer,
    detail             jsonb not null default '{}'
);
create index if not exists events_time on audit.events (occurred_at);
create index if not exists events_dataset_time on audit.events (dataset, occurred_at);

create table if not exists audit.chain (
    seq        bigint primary key,
    event_id   bigint not null unique,
    prev_hash  text not null,
    hash       text not null  -- sha256(prev_hash || canonical JSON of the event)
);

create table if not exists audit.checkpoints (
    checkpoint_id  bigserial primary key,
    last_seq       bigint not null,
    head_hash      text not null,
    signed_at      text not null,  -- kept as signed (ISO 8601 UTC), byte for byte
    key_id         text not null,
    signature      text not null  -- Ed25519 over the checkpoint's canonical JSON
);

-- Retention: entries moved to archive files (hub audit archive). The file carries the
-- chain link, so verification spans archive and database alike.
create table if not exists audit.archives (
    archive_id   bigserial primary key,
    first_seq    bigint not null,
    last_seq     bigint not null,
    first_prev   text not null,   -- the hash the archive's first entry links to
    head_hash    text not null,   -- the hash of its last entry: the database chain links to it
    file_name    text not null,
    file_sha256  text not null,
    archived_at  timestamptz not null default now()
);

create or replace function audit.refuse_change() returns trigger language plpgsql as $$
begin
    -- The one way out: a DELETE during `hub audit archive` of a row an archive now holds.
    if tg_op = 'DELETE' and current_setting('hub.audit_archiving', true) = 'on'
       and audit.archived(tg_table_name, old) then
        return old;
    end if;
    raise exception 'audit records are append-only: % on %.% refused',
        tg_op, tg_table_schema, tg_table_name;
end $$;

create or replace function audit.archived(tab text, old_row record) returns boolean
language plpgsql as $$
begin
    if tab = 'chain' then
        return exists (select 1 from audit.archives a
                       where old_row.seq between a.first_seq and a.last_seq);
    elsif tab = 'events' then
        return exists (select 1 from audit.chain c join audit.archives a
                       on c.seq between a.first_seq and a.last_seq
                       where c.event_id = old_row.event_id);
    end if;
    return false;
end $$;

do $$
declare t text;
begin
    foreach t in array array['events', 'chain', 'checkpoints', 'archives'] loop
        execute format('create or replace trigger %I before update or delete on audit.%I '
                       'for each row execute function audit.refuse_change()', t || '_append_only', t);
        execute format('create or replace trigger %I before truncate on audit.%I '
                       'for each statement execute function audit.refuse_change()', t || '_no_truncate', t);
    end loop;
end $$;
