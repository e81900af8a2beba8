-- Attributes of clients and users (issue 15): named values such as a district or the
-- department a 311 request is routed to, which grants' row filters compare rows with. They
-- travel in the hub's access tokens as the `attributes` claim.
alter table hub.clients add column if not exists attributes jsonb not null default '{}';
alter table hub.users add column if not exists attributes jsonb not null default '{}';
