-- Residents' feedback on a dataset (POST /open/feedback) and the owning department's
-- answer. No account and no address: a contact email, if given, is kept only as a keyed
-- hash (HMAC), so the department can recognise a returning correspondent without anyone
-- being able to read the address back. The answer and its time are public.
create table if not exists hub.feedback (
    feedback_id      bigint generated always as identity primary key,
    dataset          text not null,
    department       text not null,   -- the owning department when it was posted
    kind             text not null check (kind in ('wrong', 'publish', 'matters', 'other')),
    about            text,            -- the cell or column it is about, in the resident's words
    message          text not null,
    contact_hmac     bytea,           -- HMAC-SHA256 of the lower-cased email; never served
    posted_at        timestamptz not null default now(),
    answer           text,
    answered_by      text,            -- the client that answered, for the audit trail
    answered_at      timestamptz,
    message_public   boolean not null default false,  -- the department chose to show it
    check ((answer is null) = (answered_at is null))
);
create index if not exists feedback_queue on hub.feedback (department, answered_at, posted_at);
create index if not exists feedback_dataset on hub.feedback (dataset, answered_at);
