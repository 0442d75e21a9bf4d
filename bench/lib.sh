# Shared set-up for the benchmark scripts; source it, do not run it.
#
# Sets root (the repository) and work (a temporary directory removed on
# exit), an array pids whose processes are killed on exit, installs
# Debian's dnsperf if missing, and builds the named commands into $work:
#
#   . "$(dirname "$0")/lib.sh"
#   bench_setup cmd/vigil bench/stubdns
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
pids=()
bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	cg_cleanup
	rm -rf "$work"
}
trap bench_cleanup EXIT

bench_setup() {
	if ! command -v dnsperf >/dev/null; then
		echo "installing dnsperf (Debian package)..." >&2
		local sudo=""
		[ "$(id -u)" = 0 ] || sudo="sudo"
		$sudo apt-get update -qq && $sudo apt-get install -y -qq dnsperf >/dev/null
	fi
	local pkg
	for pkg in "$@"; do
		(cd "$root" && go build -o "$work/$(basename "$pkg")" "./$pkg")
	done
}

# CPU quota mode. With QUOTA=P (percent of one core, e.g. QUOTA=20), each
# server runs in a cgroup of its own held to P % of a core, so the load
# generator is never the limit and QPS compares CPU cost: QPS per
# CPU-second = QPS / (P / 100). cgroup v2 (cpu.max) or v1
# (cpu.cfs_quota_us / cpu.cfs_period_us), whichever the machine has; needs
# root. Without QUOTA, servers run unlimited (latency and the ceiling).
QUOTA=${QUOTA:-}
CG=""
cg_setup() {
	[ -n "$QUOTA" ] || return 0
	local period=100000 quota=$((QUOTA * 1000))
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		CG=/sys/fs/cgroup/vigil-bench-$$
		echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		mkdir -p "$CG"
		echo "$quota $period" >"$CG/cpu.max"
	elif [ -d /sys/fs/cgroup/cpu ]; then
		CG=/sys/fs/cgroup/cpu/vigil-bench-$$
		mkdir -p "$CG"
		echo "$period" >"$CG/cpu.cfs_period_us"
		echo "$quota" >"$CG/cpu.cfs_quota_us"
	else
		echo "QUOTA needs cgroup v1 or v2 with the cpu controller" >&2
		exit 1
	fi
	printf '#!/bin/sh\necho $$ >"%s/cgroup.procs" && exec "$@"\n' "$CG" >"$work/incg"
	chmod 755 "$work/incg"
	echo "CPU quota: $QUOTA % of a core per server ($CG)" >&2
}
cg_cleanup() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	# Whatever is left goes back to the root group, then the group goes.
	local root
	root=$(dirname "$CG")
	while read -r p; do echo "$p" >"$root/cgroup.procs" 2>/dev/null || true; done <"$CG/cgroup.procs"
	rmdir "$CG" 2>/dev/null || true
}
# cg_cmd CMD... -> the command line that runs CMD inside the quota group
# (from its first instruction: start-up counts too), or CMD itself.
cg_cmd() {
	if [ -n "$CG" ]; then
		echo "$work/incg $*"
	else
		echo "$*"
	fi
}
# per_cpu QPS -> QPS per CPU-second under the quota ("" without one)
per_cpu() { [ -n "$QUOTA" ] && awk -v q="$1" -v p="$QUOTA" 'BEGIN {printf "%d", q * 100 / p}' || true; }

# The load generator's settings; scripts may override them before use.
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-500}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
LCPU=${LCPU:-1}

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }

# perf PORT FILE -> "qps lost failed": dnsperf at full speed on core LCPU.
# qps counts good answers only: a SERVFAIL or REFUSED (a server giving up
# under load) is counted in failed, not in qps, so a server cannot look
# fast by failing fast.
perf() {
	taskset -c "$LCPU" dnsperf -s 127.0.0.1 -p "$1" -d "$2" -c "$CLIENTS" -q "$OUTSTANDING" -l "$DURATION" -T 1 2>/dev/null |
		awk '/Queries completed/ {c=$3} /Queries per second/ {q=$4} /Queries lost/ {l=$3}
			/Response codes/ {for (i = 3; i < NF; i++) if ($i ~ /^(SERVFAIL|REFUSED)$/) f += $(i + 1)}
			END {if (c > 0) q = q * (c - f) / c; printf "%d %d %d\n", q, l, f}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# split_rounds FILE: FILE.1 .. FILE.$ROUNDS, each a different part of FILE,
# which mix then uses one per round. For the forwarded mix: dnsperf starts
# a file from its top each run, so without this every round after the
# first would ask names the server had just cached.
split_rounds() {
	split -n "l/$ROUNDS" -d -a 3 "$1" "$1.tmp."
	local i=1 f
	for f in "$1".tmp.*; do
		mv "$f" "$1.$i"
		i=$((i + 1))
	done
}

# mix PORT FILE -> "median_qps total_lost total_failed" over ROUNDS runs
# (round i reads FILE.i when split_rounds made it)
mix() {
	local qs="" lost=0 failed=0 i f q l fl
	for i in $(seq 1 "$ROUNDS"); do
		f=$2
		[ -e "$2.$i" ] && f="$2.$i"
		read -r q l fl < <(perf "$1" "$f")
		qs="$qs $q"
		lost=$((lost + l))
		failed=$((failed + fl))
	done
	echo "$(echo $qs | tr ' ' '\n' | median) $lost $failed"
}

# p99 PORT FILE QPS -> p99 latency in ms at a fixed rate
p99() {
	taskset -c "$LCPU" dnsperf -s 127.0.0.1 -p "$1" -d "$2" -c "$CLIENTS" -Q "$3" -l "$DURATION" -T 1 -v 2>/dev/null |
		awk '/^> / {print $NF}' | sort -n | awk '{a[NR]=$1} END {if (NR) printf "%.3f\n", a[int(NR*0.99)]*1000; else print "n/a"}'
}

# warm PORT FILE: every name in FILE once, to fill the server's cache.
warm() { taskset -c "$LCPU" dnsperf -s 127.0.0.1 -p "$1" -d "$2" -n 1 >/dev/null 2>&1 || true; }

# wait_api PORT: until Vigil's HTTP API on PORT answers its health check
# (at most 20 s).
# base_config FILE STATE_DIR HTTP_LISTEN: what every benchmark's Vigil is
# configured with (its port, the stub upstream, no rate limit, its store,
# its API or none); a script appends its own sections.
base_config() {
	cat >"$1" <<TOML
[server]
listen = ["127.0.0.1:$VPORT"]
[upstream]
servers = ["127.0.0.1:$SPORT"]
strategy = "failover"
[ratelimit]
enabled = false
[store]
dir = "$2"
[http]
listen = "$3"
TOML
}

# stub_start runs the stub upstream on $SPORT (on core LCPU, answers kept
# a day), killed on exit.
stub_start() {
	taskset -c "$LCPU" "$work/stubdns" -listen "127.0.0.1:$SPORT" -ttl 86400 2>/dev/null &
	pids+=($!)
	sleep 0.3
}

wait_api() {
	for _ in $(seq 1 400); do
		curl -sf "http://127.0.0.1:$1/api/v1/health" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "vigil's API on port $1 did not answer" >&2
	return 1
}

# vigil_start CONFIG: Vigil on core 0 (in the quota group, if any), started
# by the startup tool, which returns once $first_blocked is answered; sets
# VPID (Vigil) and SPID (the startup tool, its parent). vigil_stop ends it.
vigil_start() {
	rm -f "$work/vigil.pid" "$work/startup.ms"
	"$work/startup" -addr "127.0.0.1:$VPORT" -name "$first_blocked" -pidfile "$work/vigil.pid" -- \
		taskset -c 0 $(cg_cmd "$work/vigil") serve -config "$1" >"$work/startup.ms" &
	SPID=$!
	pids+=("$SPID")
	while [ ! -s "$work/startup.ms" ]; do
		kill -0 "$SPID" 2>/dev/null || { echo "vigil did not start" >&2; exit 1; }
		sleep 0.05
	done
	VPID=$(cat "$work/vigil.pid")
	pids+=("$VPID")
}
vigil_stop() {
	kill -TERM "$VPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
}
