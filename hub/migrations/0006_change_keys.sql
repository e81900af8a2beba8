-- Change feeds read through change-key tables: publishing version M writes the keys that
-- differ between version M-1 and M into history.<relation>__keys_v<M> (hub/change_keys.py),
-- so a feed page looks rows up by key instead of joining two whole versions. `changed_keys`
-- names that table; null for a version published before this file, for one with no kept
-- predecessor, or once retention has dropped it (a feed then falls back to the full diff).
alter table hub.dataset_versions add column if not exists changed_keys text;
