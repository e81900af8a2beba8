-- Public releases (docs/open-data.md): the k-anonymous aggregate of an open dataset, one row
-- per publish. The cells are what anyone may read; the counts of the previous release stay
-- for the next one's differencing rule, so two releases are kept per dataset.
create schema if not exists releases;

create table if not exists releases.versions (
    dataset          text        not null,
    version          integer     not null,
    dataset_version  integer     not null,
    published_at     timestamptz not null default now(),
    k                integer     not null,
    columns          jsonb       not null,  -- the published table's column names, in order
    cells            jsonb       not null,  -- the published rows: arrays in `columns` order
    suppressed       jsonb       not null,  -- how many cells each rule held back
    primary key (dataset, version)
);
