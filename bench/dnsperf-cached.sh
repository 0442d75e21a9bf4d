#!/usr/bin/env bash
# Cached-hit throughput of Vigil, measured with dnsperf on loopback.
#
# Builds vigil and a local stub upstream (bench/stubdns), starts both on
# 127.0.0.1, warms the cache with a fixed set of names, then runs dnsperf
# against the cached mix and prints its report. Only loopback traffic;
# bounded in time (DURATION seconds of load, a few seconds of setup).
#
#   bench/dnsperf-cached.sh            # 10 s run
#   DURATION=30 CLIENTS=8 bench/dnsperf-cached.sh
set -euo pipefail

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
NAMES=${NAMES:-1000}
VIGIL_PORT=${VIGIL_PORT:-15353}
STUB_PORT=${STUB_PORT:-15300}

. "$(dirname "$0")/lib.sh"


bench_setup cmd/vigil bench/stubdns

cat >"$work/vigil.toml" <<TOML
[server]
listen = ["127.0.0.1:$VIGIL_PORT"]
[upstream]
servers = ["127.0.0.1:$STUB_PORT"]
strategy = "failover"
[store]
dir = "$work/state"
[http]
listen = ""
[log]
level = "warn"
TOML

"$work/stubdns" -listen "127.0.0.1:$STUB_PORT" 2>/dev/null &
pids+=($!)
"$work/vigil" serve -config "$work/vigil.toml" &
pids+=($!)

for i in $(seq 1 "$NAMES"); do echo "host$i.example.com A"; done >"$work/queries.txt"

# Wait for Vigil to answer, then warm the cache with every name once.
for _ in $(seq 1 50); do
	if dnsperf -s 127.0.0.1 -p "$VIGIL_PORT" -d "$work/queries.txt" -n 1 -l 5 >/dev/null 2>&1; then break; fi
	sleep 0.1
done

echo "== vigil cached-hit mix: $NAMES names, $CLIENTS clients, ${DURATION}s =="
dnsperf -s 127.0.0.1 -p "$VIGIL_PORT" -d "$work/queries.txt" -c "$CLIENTS" -l "$DURATION" -T 1 |
	grep -E "Queries sent|Queries completed|Queries lost|Queries per second|Average Latency|Latency StdDev"
