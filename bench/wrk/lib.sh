# Shared by bench/wrk/run and bench/wrk/ab; sourced, not run. The caller
# sets prog (its own name, for messages), duration, conns and threads
# before calling these.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
merchant=pk_bench:sk_bench

# wait_for FILE: until FILE exists and is not empty (a server's ready file).
wait_for() {
	for _ in $(seq 600); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	echo "$prog: $1 did not appear" >&2
	return 1
}

# serve BINARY DB LOG: starts BINARY's serve on DB at a loopback port and
# sets spid and url once it is ready.
serve() {
	rm -f "$work/ready.json"
	"$1" serve --db "$2" --addr 127.0.0.1:0 --merchant "$merchant" --admin-socket "" \
		--ready-file "$work/ready.json" >"$3" 2>&1 &
	spid=$!
	pids+=($spid)
	wait_for "$work/ready.json"
	url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$work/ready.json")
}

# stop_server: stops the server serve started.
stop_server() {
	kill "$spid"
	wait "$spid" 2>/dev/null || true
}

# sessions_for METHOD SECONDS: how many sessions a run of METHOD needs:
# client.transition moves each of its sessions eight times, never twice
# to the same state, so a run needs sessions for 60 000 moves a second;
# the reads cycle through 1 000.
sessions_for() {
	if [ "$1" = client.transition ]; then echo $(($2 * 60000 / 8)); else echo 1000; fi
}

# make_sessions BINARY URL N FILE: N new sessions on the server, as
# `sessiond bench --make-sessions` lists them.
make_sessions() {
	"$1" bench --url "$2" --merchant "$merchant" --make-sessions "$3" >"$4" 2>/dev/null
}

# wrk_run URL METHOD SESSIONS: "req/s p99_ms errors" of one wrk run. A
# run with errors measured something else (a session moved before, a
# refused call): the callers report or refuse it.
wrk_run() {
	local out
	out=$(METHOD=$2 SESSIONS=$3 THREADS=$threads \
		wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$here/rpc.lua" "$1/rpc")
	echo "$out" >>"$work/wrk.log"
	echo "$out" | awk '
		/Requests\/sec:/ { rps = $2 }
		$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
			p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
		/failed responses:/ { errs = $3 }
		/Non-2xx/ { errs += $NF }
		/ran out of sessions/ { errs += 1 }
		END { printf "%.0f %.2f %d\n", rps, p99, errs }'
}

# median_awk defines median(a, k) for awk programs: the median of a[1..k],
# which it sorts in place.
median_awk='
	function median(a, k,    i, j, t) {
		for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}'
