-- Rate limits and failed sign-ins shared by every API instance (api/ratelimit.py,
-- api/signin_throttle.py): kept in the warehouse unless HUB_REDIS_URL points at Redis.
-- Unlogged: counters that a crash resets cost nothing to lose, and skip the WAL on the
-- path of every request (nor do they reach read replicas, which never check limits).
create unlogged table if not exists hub.rate_limits (
    client_id  text primary key,
    capacity   float8 not null,       -- HUB_RATE_LIMIT_PER_MINUTE when last counted
    tokens     float8 not null,       -- what the bucket holds after the last request
    granted    boolean not null,      -- whether the last request got a token
    at         timestamptz not null   -- when (the warehouse's clock)
);

create unlogged table if not exists hub.signin_failures (
    key        text not null,         -- user:<username> or address:<ip>
    failed_at  timestamptz not null
);
create index if not exists signin_failures_key on hub.signin_failures (key, failed_at);
create index if not exists signin_failures_age on hub.signin_failures (failed_at);
