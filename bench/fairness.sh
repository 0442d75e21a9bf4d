#!/usr/bin/env bash
# Fairness between listening sockets: Vigil on one core (GOMAXPROCS=1)
# listens on 127.0.0.1 and 127.0.0.2; dnsperf floods the first with cached
# queries at full speed while a second dnsperf asks the second at a gentle
# fixed rate (RATE queries a second). Reported: the gentle client's
# average and p99 latency alone, and during the flood. A reader kept busy
# by one socket must not leave the other waiting for the scheduler.
#
# GENTLE=tcp asks the second address over TCP instead: a flood of UDP must
# not keep a TCP (or DoT, DoH) connection waiting either.
#
# Only 127.0.0.1 and 127.0.0.2; every run bounded by DURATION seconds.
#
#   bench/fairness.sh
#   DURATION=5 RATE=500 bench/fairness.sh
#   GENTLE=tcp bench/fairness.sh
set -euo pipefail

DURATION=${DURATION:-8}
RATE=${RATE:-200}
GENTLE=${GENTLE:-udp}
VPORT=${VPORT:-15373}
SPORT=${SPORT:-15374}

. "$(dirname "$0")/lib.sh"

echo "building..." >&2
bench_setup cmd/vigil bench/stubdns bench/genlist bench/startup
"$work/genlist" -n 1000 -miss 10 -out "$work"
first_blocked=$(sed -n '3s/^||\(.*\)^$/\1/p' "$work/list.txt")
base_config "$work/vigil.toml" "$work/state" ""
sed -i "s|^listen = \[\"127.0.0.1:$VPORT\"\]|listen = [\"127.0.0.1:$VPORT\", \"127.0.0.2:$VPORT\"]|" "$work/vigil.toml"
cat >>"$work/vigil.toml" <<TOML
[log]
level = "warn"
[querylog]
enabled = false
[[lists]]
name = "bench"
sources = ["$work/list.txt"]
format = "adblock"
TOML
stub_start
GOMAXPROCS=1 vigil_start "$work/vigil.toml"
warm "$VPORT" "$work/cached.txt"
taskset -c "$LCPU" dnsperf -s 127.0.0.2 -p "$VPORT" -d "$work/cached.txt" -n 1 >/dev/null 2>&1 || true

# gentle -> "average_ms p99_ms" of the gentle client on 127.0.0.2
gentle() {
	taskset -c "$LCPU" dnsperf -m "$GENTLE" -s 127.0.0.2 -p "$VPORT" -d "$work/cached.txt" -c 1 -Q "$RATE" -l "$DURATION" -T 1 -v 2>/dev/null |
		awk '/^> / {print $NF}' | sort -n |
		awk '{a[NR]=$1; s+=$1} END {if (NR) printf "%.3f %.3f\n", s/NR*1000, a[int(NR*0.99)]*1000; else print "n/a n/a"}'
}

read -r alone_avg alone_p99 < <(gentle)
taskset -c "$LCPU" dnsperf -s 127.0.0.1 -p "$VPORT" -d "$work/cached.txt" -c "$CLIENTS" -q "$OUTSTANDING" -l "$((DURATION + 2))" >/dev/null 2>&1 &
flood=$!
sleep 1
read -r busy_avg busy_p99 < <(gentle)
wait "$flood" || true
vigil_stop

cat <<EOF

Vigil on one core (GOMAXPROCS=1), listening on 127.0.0.1 and 127.0.0.2; a gentle client at $RATE QPS over $GENTLE on 127.0.0.2, cached names, ${DURATION}s

| 127.0.0.1 over UDP | gentle client's mean latency, ms | p99, ms |
|---|---|---|
| idle | $alone_avg | $alone_p99 |
| flooded (dnsperf, $CLIENTS clients × $OUTSTANDING outstanding) | $busy_avg | $busy_p99 |
EOF
