#!/usr/bin/env bash
# Two tests against one sessiond, with a reset between them and time made to pass.
set -euo pipefail
SESSIOND=${SESSIOND:-sessiond} # the binary: go build -o sessiond . in a checkout
dir=$(mktemp -d)
"$SESSIOND" serve --sandbox --sandbox-delay 50ms --addr 127.0.0.1:0 --db "$dir/test.db" \
  --ready-file "$dir/ready.json" --merchant pk_test:sk_test --token-ttl 8760h 2>"$dir/server.log" >/dev/null &
server=$!
trap 'kill $server; wait $server || true; rm -rf "$dir"' EXIT
for _ in $(seq 300); do [ -s "$dir/ready.json" ] && break; sleep 0.02; done
URL=$(sed 's/.*"url":"\([^"]*\)".*/\1/' "$dir/ready.json")

rpc() { # rpc METHOD [PARAMS_JSON]: prints the JSON-RPC response
  curl -sf "$URL/rpc" -H 'Content-Type: application/json' ${TOKEN:+-H "Authorization: Bearer $TOKEN"} \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":${2:-{\}}}"
}
field() { # field NAME: the value of NAME in the result read from stdin
  sed -e 's/.*"result"://' | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}
fail() { echo "not ok - $*"; exit 1; }

TOKEN=$(rpc merchant.authorize '{"public_key":"pk_test","secret":"sk_test"}' | field access_token)

# 1: a deposit created with merchant_reference "completed" runs to 12 by itself.
rpc sandbox.reset >/dev/null
ID=$(rpc session.create_deposit '{"amount":"10.00","country_id":"se","merchant_reference":"completed"}' | field id)
for _ in $(seq 300); do
  [ "$(rpc session.state "{\"id\":\"$ID\"}" | field state)" = 12 ] && break
  sleep 0.02
done
[ "$(rpc session.state "{\"id\":\"$ID\"}" | field state)" = 12 ] || fail "completed: not at 12"
echo "ok - completed"

# 2: a deposit nobody finishes expires when 31 minutes pass.
rpc sandbox.reset >/dev/null
ID=$(rpc session.create_deposit '{"amount":"10.00","country_id":"se"}' | field id)
rpc sandbox.advance_time '{"seconds":1860}' >/dev/null
[ "$(rpc session.state "{\"id\":\"$ID\"}" | field error_code)" = expired_session ] || fail "expiry: not expired"
echo "ok - expired"
