-- Public releases (docs/open-data.md): the k-anonymous aggregate of an open dataset, one row
-- per publish. The cells are what anyone may read. `published` carries, for every cell ever
-- published, the count it was last published with: the next release's differencing rule
-- compares with it (a cell hidden in between is no way round the rule). Two releases are
-- kept per dataset.
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
    published        jsonb       not null,  -- [key..., count] last published, every cell ever
    primary key (dataset, version)
);
