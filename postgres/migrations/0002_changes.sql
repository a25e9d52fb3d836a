-- The change log behind the feed across replicas: every save adds a row
-- and notifies its seq (and, when it fits, its data) on the channel
-- sessiond_changes inside the same transaction. A replica whose listening
-- connection dropped reads what it missed from here. at is the database's
-- clock at insert, used only to bound that catch-up and to purge the log.
CREATE TABLE changes (
    seq    bigserial PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    origin text NOT NULL,
    data   json NOT NULL
);
CREATE INDEX changes_at ON changes (at);
