#!/usr/bin/env bash
# Soak test: dnsperf against Vigil for SOAK_SECONDS at a fixed rate below
# saturation, with a mixed load (cached, blocked, forwarded) while the
# blocklist changes and is refreshed every REFRESH_EVERY seconds. Reports
# throughput, lost queries and resident memory at the start and the end.
# Only 127.0.0.1; bounded in time. Installs Debian's dnsperf if missing.
#
#   bench/soak.sh                          # 5 minutes at 20k QPS
#   SOAK_SECONDS=60 QPS=10000 bench/soak.sh
set -euo pipefail

SOAK_SECONDS=${SOAK_SECONDS:-300}
QPS=${QPS:-20000}
NAMES=${NAMES:-200000}
REFRESH_EVERY=${REFRESH_EVERY:-20}
VPORT=${VPORT:-15363}
SPORT=${SPORT:-15310}
APIPORT=${APIPORT:-18063}

. "$(dirname "$0")/lib.sh"

bench_setup cmd/vigil bench/stubdns bench/genlist
"$work/genlist" -n "$NAMES" -blocked 50000 -miss 2000000 -out "$work"
cp "$work/list.txt" "$work/served.txt"
# The mix: mostly cached names, some blocked, some never seen before.
{ head -5000 "$work/cached.txt"; head -3000 "$work/blocked.txt"; } >"$work/base.txt"
awk 'NR % 4 == 0 && ++n <= 200000' "$work/miss.txt" >"$work/fresh.txt"
paste -d'\n' "$work/base.txt" "$work/base.txt" "$work/fresh.txt" | grep . >"$work/mix.txt"

cat >"$work/vigil.toml" <<TOML
[server]
listen = ["127.0.0.1:$VPORT"]
[ratelimit]
enabled = false
[upstream]
servers = ["127.0.0.1:$SPORT"]
[store]
dir = "$work/state"
[http]
listen = "127.0.0.1:$APIPORT"
[log]
level = "warn"
[blocklists]
refresh_interval = "1m"
refresh_jitter = "0s"
[[lists]]
name = "soak"
vendor = "Soak"
sources = ["$work/served.txt"]
TOML

"$work/stubdns" -listen "127.0.0.1:$SPORT" -ttl 300 2>/dev/null &
pids+=($!)
"$work/vigil" serve -config "$work/vigil.toml" &
VPID=$!
pids+=("$VPID")
wait_api "$APIPORT"
rss_start=$(ps -o rss= -p "$VPID" | tr -d ' ')

# Change and refresh the list every REFRESH_EVERY seconds during the soak.
(
	i=0
	while sleep "$REFRESH_EVERY"; do
		i=$((i + 1))
		# Drop a different tenth of the list each time (within max_shrink).
		awk -v k="$i" 'NR % 10 != k % 10' "$work/list.txt" >"$work/served.tmp" && mv "$work/served.tmp" "$work/served.txt"
		"$work/vigil" lists update -config "$work/vigil.toml" >/dev/null 2>&1 || echo "refresh $i failed" >&2
	done
) &
pids+=($!)

echo "soaking for ${SOAK_SECONDS}s at ${QPS} QPS with the list refreshed every ${REFRESH_EVERY}s..." >&2
dnsperf -s 127.0.0.1 -p "$VPORT" -d "$work/mix.txt" -c 8 -Q "$QPS" -l "$SOAK_SECONDS" -S 60 2>/dev/null >"$work/dnsperf.txt"
rss_end=$(ps -o rss= -p "$VPID" | tr -d ' ')
stats=$(curl -sf "http://127.0.0.1:$APIPORT/api/v1/stats" || echo '{}')
lists=$(curl -sf "http://127.0.0.1:$APIPORT/api/v1/lists" | grep -o '"generation": [0-9]*' || true)

grep -E "Queries sent|Queries completed|Queries lost|Queries per second|Average Latency" "$work/dnsperf.txt"
echo "list rebuilds: $lists"
echo "RSS: start $((rss_start / 1024)) MiB, end $((rss_end / 1024)) MiB"
echo "server stats: $(echo "$stats" | tr -d ' \n' | cut -c1-400)"
