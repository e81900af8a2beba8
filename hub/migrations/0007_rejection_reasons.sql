-- Rejecting an access request says why: the reason is kept with the request, put on record
-- in the audit event, and shown to the requester (GET /access-requests, the console).
alter table hub.access_requests add column if not exists decision_reason text;
