-- Claims: work due in the database (sessions to expire, deliveries to
-- attempt, timers) is taken by one replica at a time with FOR UPDATE SKIP
-- LOCKED and held for a lease (claim_owner until claim_until, the
-- claimant's clock); a replica that dies holding a claim loses it when the
-- lease runs out.
ALTER TABLE sessions
    ADD COLUMN claim_owner  text,
    ADD COLUMN claim_until  timestamptz,
    ADD COLUMN last_request timestamptz;

-- Deliveries are claimed host by host (a URL's host with its port, lower
-- case), so that one slow receiver holds only its own share of attempts.
ALTER TABLE deliveries
    ADD COLUMN host        text NOT NULL DEFAULT '',
    ADD COLUMN claim_owner text,
    ADD COLUMN claim_until timestamptz;
UPDATE deliveries SET host = lower(regexp_replace(
    coalesce(substring(data->>'url' FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)'), ''), '^.*@', ''));
CREATE INDEX deliveries_host_due ON deliveries (host, next_attempt, webhook_id) WHERE next_attempt IS NOT NULL;
CREATE INDEX deliveries_pending_created ON deliveries (created) WHERE next_attempt IS NOT NULL;

-- Timers: work the domain asks to be reminded of (the sandbox's next
-- steps), by key.
CREATE TABLE timers (
    key         text PRIMARY KEY,
    due         timestamptz NOT NULL,
    claim_owner text,
    claim_until timestamptz
);
CREATE INDEX timers_due ON timers (due, key);
