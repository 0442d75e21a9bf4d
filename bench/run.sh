#!/usr/bin/env bash
# Vigil's throughput, latency, memory and start-up, measured with dnsperf on
# loopback against a local stub upstream, with a deterministic list of
# NAMES blocked domains.
#
# Vigil runs pinned to one core (GOMAXPROCS=1), dnsperf and the stub
# upstream to the other, as in the comparison table of the speed issue.
# Every run is bounded (DURATION seconds each, ROUNDS rounds, medians
# reported); only 127.0.0.1 is used. On a fresh machine it installs
# Debian's dnsperf if missing.
#
#   bench/run.sh                       # 1M names, 10 s x 3 rounds per mix
#   NAMES=100000 DURATION=5 ROUNDS=1 bench/run.sh   # quick look
#   QUOTA=20 bench/run.sh              # Vigil held to 20 % of a core: QPS per CPU-second too (lib.sh)
set -euo pipefail

NAMES=${NAMES:-1000000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
VPORT=${VPORT:-15353}
SPORT=${SPORT:-15300}
APIPORT=${APIPORT:-18053}

. "$(dirname "$0")/lib.sh"

ncpu=$(nproc)
VCPU=0
if [ "$ncpu" -lt 2 ]; then
	echo "warning: one CPU only; Vigil and dnsperf share it" >&2
	LCPU=0
fi


echo "building..." >&2
bench_setup cmd/vigil bench/stubdns bench/genlist bench/startup
cg_setup
echo "generating $NAMES names..." >&2
"$work/genlist" -n "$NAMES" -miss 3000000 -out "$work"
split_rounds "$work/miss.txt" # a fresh part per round: every query a cache miss
first_blocked=$(sed -n '3s/^||\(.*\)^$/\1/p' "$work/list.txt")

# write_config FILE STATE_DIR WITH_LIST
write_config() {
	base_config "$1" "$2" "127.0.0.1:$APIPORT"
	cat >>"$1" <<TOML
[log]
level = "warn"
TOML
	if [ "$3" = yes ]; then
		cat >>"$1" <<TOML
[[lists]]
name = "bench"
vendor = "Bench"
sources = ["$work/list.txt"]
format = "adblock"
TOML
	fi
}

# start_vigil CONFIG CPUS -> sets STARTUP_MS, VPID and SPID (the startup
# tool, Vigil's parent, which reaps it when it ends)
start_vigil() {
	local ms=""
	rm -f "$work/vigil.pid" "$work/startup.ms"
	GOMAXPROCS=$(echo "$2" | tr ',' '\n' | wc -l) "$work/startup" -addr "127.0.0.1:$VPORT" -name "$first_blocked" \
		-pidfile "$work/vigil.pid" -- taskset -c "$2" $(cg_cmd "$work/vigil") serve -config "$1" >"$work/startup.ms" &
	SPID=$!
	pids+=("$SPID")
	while [ -z "$ms" ]; do
		kill -0 "$SPID" 2>/dev/null || { echo "vigil did not start" >&2; exit 1; }
		sleep 0.05
		ms=$(cat "$work/startup.ms" 2>/dev/null || true)
	done
	VPID=$(cat "$work/vigil.pid")
	pids+=("$VPID")
	STARTUP_MS=$ms
}

stop_vigil() {
	kill -TERM "$VPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
}

stub_start

echo "run 1: vigil with $NAMES names, cold store (list parsed from its file)..." >&2
write_config "$work/with.toml" "$work/state-with" yes
start_vigil "$work/with.toml" "$VCPU"
cold_ms=$STARTUP_MS
sleep 1
rss_ready=$(rss_kb "$VPID")
warm "$VPORT" "$work/cached.txt"
read -r cached_qps cached_lost cached_failed < <(mix "$VPORT" "$work/cached.txt")
read -r blocked_qps blocked_lost blocked_failed < <(mix "$VPORT" "$work/blocked.txt")
read -r miss_qps miss_lost miss_failed < <(mix "$VPORT" "$work/miss.txt")
warm "$VPORT" "$work/cached.txt" # the miss mix may have evicted them
cached_p99=$(p99 "$VPORT" "$work/cached.txt" 10000)
rss_after=$(rss_kb "$VPID")
stop_vigil

echo "run 1b: the per-client log's cost: blocked mix, log on and off in turn..." >&2
# Alternating fresh processes, so that a change in the machine's load
# during the run hits both sides alike.
sed 's/^\[http\]/[querylog]\nenabled = false\n[http]/' "$work/with.toml" >"$work/nolog.toml"
on_qs="" off_qs=""
for _ in $(seq 1 "$ROUNDS"); do
	for cfg in with nolog; do
		start_vigil "$work/$cfg.toml" "$VCPU"
		read -r q _ < <(ROUNDS=1 mix "$VPORT" "$work/blocked.txt")
		stop_vigil
		if [ "$cfg" = with ]; then on_qs="$on_qs $q"; else off_qs="$off_qs $q"; fi
	done
done
blocked_on_ab=$(echo $on_qs | tr ' ' '\n' | median)
blocked_nolog_qps=$(echo $off_qs | tr ' ' '\n' | median)

echo "run 2: restart from the store..." >&2
start_vigil "$work/with.toml" "$VCPU"
warm_ms=$STARTUP_MS
rss_restart=$(rss_kb "$VPID")
stop_vigil

echo "run 3: scaling, vigil on 2 cores (shared with dnsperf)..." >&2
start_vigil "$work/with.toml" "0,1"
warm "$VPORT" "$work/cached.txt"
read -r cached2_qps _ < <(ROUNDS=1 mix "$VPORT" "$work/cached.txt")
stop_vigil

echo "run 4: vigil without a list..." >&2
write_config "$work/without.toml" "$work/state-without" no
# Without a list nothing is blocked: wait for any answer instead.
GOMAXPROCS=1 taskset -c "$VCPU" $(cg_cmd "$work/vigil") serve -config "$work/without.toml" &
VPID=$!
SPID=$VPID
pids+=("$VPID")
for _ in $(seq 1 100); do
	dnsperf -s 127.0.0.1 -p "$VPORT" -d "$work/cached.txt" -n 1 -l 2 >/dev/null 2>&1 && break
	sleep 0.05
done
read -r nolist_qps _ < <(ROUNDS=1 mix "$VPORT" "$work/cached.txt")
rss_nolist=$(rss_kb "$VPID")
stop_vigil

cat <<EOF

Vigil, $NAMES blocked names, one core for Vigil (GOMAXPROCS=1, taskset -c $VCPU), dnsperf and the stub on core $LCPU
dnsperf: $CLIENTS clients, $OUTSTANDING outstanding, ${DURATION}s per run, median of $ROUNDS

| mix | QPS (good answers) | lost | SERVFAIL or REFUSED |
|---|---|---|---|
| cached (10k names, warm cache) | $cached_qps | $cached_lost | $cached_failed |
| blocked (list names and subdomains) | $blocked_qps | $blocked_lost | $blocked_failed |
| forwarded (unique names, cache misses) | $miss_qps | $miss_lost | $miss_failed |
${QUOTA:+
under a CPU quota of $QUOTA % of a core, QPS per CPU-second: cached $(per_cpu "$cached_qps"), blocked $(per_cpu "$blocked_qps"), forwarded $(per_cpu "$miss_qps") (the scaling and no-list runs are under the quota too)
}

per-client log's cost, blocked mix, $ROUNDS alternating rounds each: log on $blocked_on_ab QPS, off $blocked_nolog_qps QPS ($(awk -v a="$blocked_on_ab" -v b="$blocked_nolog_qps" 'BEGIN {printf "%.1f", (1 - a / b) * 100}') % less with the log)

cached p99 at 10k QPS: ${cached_p99} ms
start-up to first blocked answer: cold ${cold_ms} ms (list parsed from its file), from the store ${warm_ms} ms
RSS with list: ready $((rss_ready / 1024)) MiB, after load $((rss_after / 1024)) MiB, after restart $((rss_restart / 1024)) MiB
RSS without list, after load: $((rss_nolist / 1024)) MiB (cached QPS without list: $nolist_qps)
scaling: cached QPS on 1 core $cached_qps, on 2 cores (shared with dnsperf) $cached2_qps
EOF
