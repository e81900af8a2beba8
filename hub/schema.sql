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

-- OAuth2 clients; secrets are stored only as scrypt hashes.
create table if not exists hub.clients (
    client_id    text primary key,
    name         text not null unique,
    role         text not null,
    secret_hash  text not null,
    created_at   timestamptz not null default now()
);

-- One row per request to a data route, allowed or denied.
create table if not exists audit.events (
    event_id       bigserial primary key,
    occurred_at    timestamptz not null default clock_timestamp(),
    request_id     text not null,
    client_id      text,
    role           text,
    dataset        text,
    dataset_version integer,
    columns        text[],
    filters        jsonb not null default '{}',
    rows_returned  integer not null default 0,
    decision       text not null check (decision in ('allow', 'deny')),
    reason         text not null,
    status_code    integer not null
);
create index if not exists events_dataset_time on audit.events (dataset, occurred_at);
