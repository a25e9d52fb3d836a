-- Bank accounts, and the transaction indexes behind transaction.list, the
-- merchant-reference lookup and refunds (session.AccountStore). Payouts and
-- refunds are transactions without a session: their session_id is ''.
-- Ids are compared byte by byte (COLLATE "C"): they grow with time only in
-- that order.
CREATE TABLE accounts (
    id          text PRIMARY KEY,
    merchant_id text NOT NULL,
    customer_id text NOT NULL,
    created     timestamptz NOT NULL,
    data        json NOT NULL
);
CREATE INDEX accounts_customer ON accounts (merchant_id, customer_id, created, id COLLATE "C");

-- amount is in hundredths, as session.Amount; the refund check sums it.
ALTER TABLE transactions
    ADD COLUMN merchant_id             text,
    ADD COLUMN merchant_reference      text,
    ADD COLUMN original_transaction_id text,
    ADD COLUMN amount                  bigint;
UPDATE transactions SET
    merchant_id             = coalesce(data->>'merchant_id', ''),
    merchant_reference      = nullif(data->>'merchant_reference', ''),
    original_transaction_id = nullif(data->>'original_transaction_id', ''),
    amount                  = round(coalesce((data->>'amount')::numeric, 0) * 100)::bigint;
ALTER TABLE transactions
    ALTER COLUMN merchant_id SET NOT NULL,
    ALTER COLUMN amount SET NOT NULL;
CREATE INDEX transactions_merchant ON transactions (merchant_id, id COLLATE "C");
CREATE INDEX transactions_reference ON transactions (merchant_id, merchant_reference, id COLLATE "C")
    WHERE merchant_reference IS NOT NULL;
CREATE INDEX transactions_refunds ON transactions (original_transaction_id, id COLLATE "C")
    WHERE original_transaction_id IS NOT NULL;
