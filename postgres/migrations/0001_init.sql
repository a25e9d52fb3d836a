-- sessiond's first schema: the same records as the bbolt file, one table
-- each, with the columns the queries select on beside the JSON value the
-- domain reads.

CREATE TABLE merchants (
    id         text PRIMARY KEY,
    public_key text NOT NULL UNIQUE,
    data       json NOT NULL
);

CREATE TABLE tokens (
    hash    bytea PRIMARY KEY,
    expires timestamptz NOT NULL,
    data    json NOT NULL
);
CREATE INDEX tokens_expires ON tokens (expires);

-- expires is NULL once the session is final, so the expiry index holds only
-- the sessions that can still expire.
CREATE TABLE sessions (
    id                 text PRIMARY KEY,
    merchant_id        text NOT NULL,
    merchant_reference text,
    version            integer NOT NULL,
    expires            timestamptz,
    data               json NOT NULL
);
CREATE INDEX sessions_reference ON sessions (merchant_id, merchant_reference, id)
    WHERE merchant_reference IS NOT NULL;
CREATE INDEX sessions_expires ON sessions (expires, id) WHERE expires IS NOT NULL;

CREATE TABLE transactions (
    id         text PRIMARY KEY,
    session_id text NOT NULL,
    state      integer NOT NULL,
    data       json NOT NULL
);

-- next_attempt is NULL unless the delivery is pending.
CREATE TABLE deliveries (
    webhook_id   text PRIMARY KEY,
    session_id   text NOT NULL,
    next_attempt timestamptz,
    created      timestamptz NOT NULL,
    data         json NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt, webhook_id) WHERE next_attempt IS NOT NULL;
CREATE INDEX deliveries_session ON deliveries (session_id, webhook_id);
