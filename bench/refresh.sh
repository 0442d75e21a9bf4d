#!/usr/bin/env bash
# Resident memory over list refreshes: Vigil with a deterministic list of
# NAMES names, refreshed REFRESHES times through `vigil lists update`, a
# different tenth of the list left out each time (so every refresh really
# rebuilds the matcher). Prints RSS after each refresh; it should stay
# flat. Only 127.0.0.1 and local files; bounded by REFRESHES.
#
#   bench/refresh.sh                    # 1M names, 20 refreshes
#   NAMES=200000 REFRESHES=5 bench/refresh.sh
#   PROFILE=1 bench/refresh.sh          # also the heap's largest holders at the end
set -euo pipefail

NAMES=${NAMES:-1000000}
REFRESHES=${REFRESHES:-20}
VPORT=${VPORT:-15373}
SPORT=${SPORT:-15320}
APIPORT=${APIPORT:-18073}

. "$(dirname "$0")/lib.sh"

bench_setup cmd/vigil bench/stubdns bench/genlist
"$work/genlist" -n "$NAMES" -cached 10 -blocked 10 -miss 10 -out "$work"
cp "$work/list.txt" "$work/served.txt"
cat >"$work/vigil.toml" <<TOML
[server]
listen = ["127.0.0.1:$VPORT"]
[upstream]
servers = ["127.0.0.1:$SPORT"]
[store]
dir = "$work/state"
[http]
listen = "127.0.0.1:$APIPORT"
[log]
level = "warn"
[[lists]]
name = "bench"
vendor = "Bench"
sources = ["$work/served.txt"]
format = "adblock"
TOML

"$work/stubdns" -listen "127.0.0.1:$SPORT" 2>/dev/null &
pids+=($!)
"$work/vigil" serve -config "$work/vigil.toml" &
VPID=$!
pids+=("$VPID")
wait_api "$APIPORT"
rss() { echo $(($(ps -o rss= -p "$VPID") / 1024)); }
echo "refresh 0 (start): RSS $(rss) MiB"
for i in $(seq 1 "$REFRESHES"); do
	awk -v k="$i" 'NR % 10 != k % 10' "$work/list.txt" >"$work/served.tmp" && mv "$work/served.tmp" "$work/served.txt"
	"$work/vigil" lists update -config "$work/vigil.toml" >/dev/null
	sleep 1
	gen=$(curl -sf "http://127.0.0.1:$APIPORT/api/v1/lists" | grep -o '"generation": [0-9]*' | head -1)
	echo "refresh $i ($gen): RSS $(rss) MiB"
done
grep -E "RssAnon|RssFile" "/proc/$VPID/status" | tr -s ' \t' ' ' | tr '\n' ' '; echo
curl -s "http://127.0.0.1:$APIPORT/debug/pprof/heap?debug=1" | grep -E "^# (HeapAlloc|HeapInuse|HeapReleased|NextGC)" | tr '\n' ' '; echo
if [ -n "${PROFILE:-}" ]; then go tool pprof -sample_index=inuse_space -top -nodecount=12 "http://127.0.0.1:$APIPORT/debug/pprof/heap" 2>/dev/null | sed -n 6,22p; fi
echo "store on disk: $(du -sh "$work/state" | cut -f1)"
