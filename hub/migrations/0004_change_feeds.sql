-- Change feeds: a published version's table is kept in `history` when the next version
-- replaces it (moved, not copied: publishing costs no more than before), so the API can
-- diff any kept version against the newest. `snapshot` names the kept table, and is null
-- once retention (HUB_CHANGE_FEED_VERSIONS) has dropped it or for the version served now.
create schema if not exists history;
alter table hub.dataset_versions add column if not exists snapshot text;
