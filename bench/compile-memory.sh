#!/usr/bin/env bash
# Memory while compiling big lists: for each size in SIZES, Vigil starts
# with a generated adblock list of that many names, first cold (the list
# read from its file, checked, stored, compiled) and then again from the
# store (the file unchanged: compiled from the stored copy). Per start:
# the time to the first blocked answer, the peak resident size (VmHWM),
# the resident size 3 s after, and the peaks of its two parts, anonymous
# memory (what the process owns) and file-backed pages (Badger's mapped
# files: page cache, reclaimable under pressure). Only 127.0.0.1 and local
# files; each start is bounded by the startup tool's timeout.
#
#   bench/compile-memory.sh                    # 1M and 5M names
#   SIZES="100000 1000000" bench/compile-memory.sh
set -euo pipefail

SIZES=${SIZES:-"1000000 5000000"}
VPORT=${VPORT:-15383}
SPORT=${SPORT:-15384} # nothing listens: blocked answers need no upstream

. "$(dirname "$0")/lib.sh"

bench_setup cmd/vigil bench/genlist bench/startup

# peaks PID -> writes "anon_kB file_kB" peaks to $work/peaks until PID ends
peaks() {
	local a=0 f=0 x y
	while [ -e "/proc/$1/status" ]; do
		read -r x y < <(awk '/RssAnon/ {a=$2} /RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$1/status" 2>/dev/null || echo "0 0")
		[ "$x" -gt "$a" ] && a=$x
		[ "$y" -gt "$f" ] && f=$y
		echo "$a $f" >"$work/peaks"
		sleep 0.02
	done
}

echo "| names | start | first blocked answer, s | VmHWM, MiB | RSS 3 s after, MiB | peak / steady | peak anonymous, MiB | peak file-backed, MiB |"
echo "|---|---|---|---|---|---|---|---|"
for n in $SIZES; do
	d="$work/n$n"
	mkdir -p "$d"
	"$work/genlist" -n "$n" -cached 10 -blocked 10 -miss 10 -out "$d" >/dev/null
	first=$(sed -n '/^||/{s/^||\(.*\)^$/\1/p;q}' "$d/list.txt")
	cat >"$d/vigil.toml" <<-TOML
		[server]
		listen = ["127.0.0.1:$VPORT"]
		[upstream]
		servers = ["127.0.0.1:$SPORT"]
		[store]
		dir = "$d/state"
		[http]
		listen = ""
		[log]
		level = "warn"
		[blocklists]
		max_list_bytes = 1073741824
		[[lists]]
		name = "big"
		sources = ["$d/list.txt"]
	TOML
	for start in cold store; do
		rm -f "$d/pid" "$d/ms"
		"$work/startup" -addr "127.0.0.1:$VPORT" -name "$first" -timeout 300s -pidfile "$d/pid" -- \
			"$work/vigil" serve -config "$d/vigil.toml" >"$d/ms" 2>"$d/log" &
		spid=$!
		pids+=("$spid")
		until [ -s "$d/pid" ]; do sleep 0.01; done
		pid=$(cat "$d/pid")
		peaks "$pid" &
		until [ -s "$d/ms" ]; do
			kill -0 "$spid" 2>/dev/null || { echo "vigil did not start: $(tail -3 "$d/log")" >&2; exit 1; }
			sleep 0.05
		done
		sleep 3
		hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
		rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
		kill -TERM "$pid"
		wait "$spid" 2>/dev/null || true
		sleep 0.1
		read -r pa pf <"$work/peaks"
		awk -v n="$n" -v s="$start" -v ms="$(cat "$d/ms")" -v h="$hwm" -v r="$rss" -v pa="$pa" -v pf="$pf" 'BEGIN {
			printf "| %d | %s | %.2f | %d | %d | %.2f× | %d | %d |\n", n, s, ms / 1000, h / 1024, r / 1024, h / r, pa / 1024, pf / 1024 }'
	done
done
